/* http.h - the HTTP front: libmicrohttpd glue, routing, body limits, method and
 * content-type checks, API keys, and the reply helpers the route handlers use.
 *
 * A request is handled in three steps. On its headers: the path is matched against the
 * route table (404 unknown path, 405 known path with another method, with Allow), the API
 * key checked when keys are configured (401; /health and /metrics are open), a declared
 * Content-Length over the limit noted (413), and a POST's Content-Type checked (415).
 * Then the body is collected up to the limit (or drained, when an error is already known).
 * Then the handler, or the error found earlier, queues one reply.
 * Every reply is counted in the metrics under its route pattern.
 */
#ifndef AU_HTTP_H
#define AU_HTTP_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "api/errors.h"
#include "api/video.h"
#include "app.h"

typedef struct http_server http_server;

typedef struct http_req {
    struct MHD_Connection *conn;
    app *app;
    const char *method;   /* "GET", ... (HEAD is routed as GET) */
    const char *route;    /* the matched pattern, for metrics */
    char id[API_ID_SIZE]; /* the {id} path segment, "" when absent or longer than an id */
    int id_too_long;
    char *body; /* NUL-terminated */
    size_t body_len, body_cap;
    int body_too_large;
    int status; /* of the queued reply, 0 before */
    /* An error found in the headers, answered once the body is drained so the connection
     * stays usable (a reply queued before the body closes it). */
    int has_pending;
    api_error pending;
    const char *pending_header; /* one extra header name, or NULL */
    char pending_header_value[64];
    int (*handler)(struct http_req *r);
} http_req;

/* Bind host:port (port 0 = any free one) and start serving with threads. *bound_port
 * receives the port actually bound. */
int http_start(http_server **out, app *a, const char *host, int port, int n_threads, int *bound_port,
               au_err *err);
/* Stop accepting connections, finish the requests in flight, free everything. */
void http_stop(http_server *s);

/* Request accessors (NULL when absent). */
const char *http_header(const http_req *r, const char *name);
const char *http_query(const http_req *r, const char *name);

/* Replies; each queues exactly one response and returns MHD_YES/MHD_NO for the callback. */
int http_reply_json(http_req *r, int status, char *body); /* takes body (malloc'd); NULL -> 500 */
int http_reply_error(http_req *r, const api_error *e);
/* As http_reply_error with extra headers: a NULL-terminated list of alternating names and
 * values. */
int http_reply_error_headers(http_req *r, const api_error *e, const char *const *headers);
int http_reply_empty(http_req *r, int status, const char *const *headers);
int http_reply_text(http_req *r, int status, const char *content_type, char *body); /* takes body */
/* Send [offset, offset+length) of fd (taken over), with extra headers as above. */
int http_reply_fd(http_req *r, int status, int fd, uint64_t offset, uint64_t length, const char *content_type,
                  const char *const *headers);

#endif
