/* http.c - libmicrohttpd glue and routing (http.h).
 *
 * Errors found in the headers (401, 404, 405, 415, 413) are answered after the body: a
 * reply queued before libmicrohttpd has read the body closes the connection, which costs
 * keep-alive clients a reconnect and can make a client that sent everything at once read a
 * reset instead of the reply. Up to DRAIN_FACTOR x max_body bytes are read and thrown away;
 * beyond that (declared or sent) the 413 goes out at once and the connection is closed.
 */
#include "http.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "routes.h"

#define DRAIN_FACTOR 8
#define CONNECTION_TIMEOUT_S 30
#define MAX_SEGMENTS 6

struct http_server {
    struct MHD_Daemon *daemon;
    app *app;
    int listen_fd;
};

enum { M_GET = 1, M_POST = 2, M_DELETE = 4 };

typedef struct route_def {
    const char *pattern; /* segments separated by '/', "{id}" matches one segment */
    int open;            /* reachable without an API key */
    int methods;
    int (*get)(http_req *), (*post)(http_req *), (*del)(http_req *);
} route_def;

static const route_def routes[] = {
    {"/v1/videos", 0, M_GET | M_POST, routes_list_videos, routes_create_video, NULL},
    {"/v1/videos/{id}", 0, M_GET | M_DELETE, routes_get_video, NULL, routes_delete_video},
    {"/v1/videos/{id}/content", 0, M_GET, routes_video_content, NULL, NULL},
    {"/v1/videos/{id}/remix", 0, M_POST, NULL, routes_remix_video, NULL},
    {"/v1/models", 0, M_GET, routes_models, NULL, NULL},
    {"/health", 1, M_GET, routes_health, NULL, NULL},
    {"/health/live", 1, M_GET, routes_health_live, NULL, NULL},
    {"/health/ready", 1, M_GET, routes_health_ready, NULL, NULL},
    {"/health/history", 1, M_GET, routes_health_history, NULL, NULL},
    {"/health/run", 0, M_POST, NULL, routes_health_run, NULL},
    {"/metrics", 1, M_GET, routes_metrics, NULL, NULL},
};
#define N_ROUTES ((int)(sizeof routes / sizeof routes[0]))

/* Match url against pattern; fills r->id for "{id}". 1 on a match. */
static int match(const char *pattern, const char *url, http_req *r) {
    const char *p = pattern, *u = url;
    while (*p && *u) {
        if (*p != '/' || *u != '/')
            return 0;
        p++, u++;
        size_t plen = strcspn(p, "/"), ulen = strcspn(u, "/");
        if (ulen == 0)
            return 0;
        if (plen == 4 && strncmp(p, "{id}", 4) == 0) {
            if (ulen < sizeof r->id) {
                memcpy(r->id, u, ulen);
                r->id[ulen] = '\0';
                r->id_too_long = 0;
            } else {
                r->id[0] = '\0';
                r->id_too_long = 1;
            }
        } else if (plen != ulen || strncmp(p, u, plen) != 0) {
            return 0;
        }
        p += plen, u += ulen;
    }
    return *p == '\0' && *u == '\0';
}

const char *http_header(const http_req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(const http_req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static int queue(http_req *r, int status, struct MHD_Response *resp) {
    if (!resp)
        return MHD_NO;
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->status = status;
    if (r->app->met)
        metrics_count_request(r->app->met, r->route, r->method, status);
    return ok;
}

static void add_headers(struct MHD_Response *resp, const char *const *headers) {
    for (int i = 0; headers && headers[i] && headers[i + 1]; i += 2)
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
}

static int reply_buffer(http_req *r, int status, const char *content_type, char *body,
                        const char *const *headers) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    add_headers(resp, headers);
    return queue(r, status, resp);
}

int http_reply_error_headers(http_req *r, const api_error *e, const char *const *headers) {
    char *body = api_error_body(e);
    if (!body)
        body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
                      "\"code\":null}}");
    if (!body)
        return MHD_NO;
    return reply_buffer(r, e->http_status, "application/json", body, headers);
}

int http_reply_error(http_req *r, const api_error *e) {
    return http_reply_error_headers(r, e, NULL);
}

int http_reply_json(http_req *r, int status, char *body) {
    if (!body) {
        api_error e;
        api_errorf(&e, 500, "out_of_memory", NULL, "out of memory while rendering the response");
        return http_reply_error(r, &e);
    }
    return reply_buffer(r, status, "application/json", body, NULL);
}

int http_reply_text(http_req *r, int status, const char *content_type, char *body) {
    if (!body) {
        api_error e;
        api_errorf(&e, 500, "out_of_memory", NULL, "out of memory while rendering the response");
        return http_reply_error(r, &e);
    }
    return reply_buffer(r, status, content_type, body, NULL);
}

int http_reply_empty(http_req *r, int status, const char *const *headers) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    add_headers(resp, headers);
    return queue(r, status, resp);
}

int http_reply_fd(http_req *r, int status, int fd, uint64_t offset, uint64_t length, const char *content_type,
                  const char *const *headers) {
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(length, fd, offset);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    add_headers(resp, headers);
    return queue(r, status, resp);
}

/* Constant-time comparison, so a key cannot be found byte by byte from response times. */
static int key_equal(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (lb ? lb : 1)];
    return diff == 0;
}

static int authorized(const http_req *r) {
    const serve_config *c = r->app->cfg;
    if (c->n_api_keys == 0)
        return 1;
    const char *h = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    int ok = 0;
    for (int i = 0; i < c->n_api_keys; i++)
        ok |= key_equal(h, c->api_keys[i]);
    return ok;
}

static int content_type_is(const char *ct, const char *type) {
    size_t n = strlen(type);
    return ct && strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static void methods_text(int methods, char *out, size_t cap) {
    snprintf(out, cap, "%s%s%s", methods & M_GET ? "GET, HEAD" : "",
             methods & M_POST ? (methods & M_GET ? ", POST" : "POST") : "",
             methods & M_DELETE ? (methods & (M_GET | M_POST) ? ", DELETE" : "DELETE") : "");
}

/* Note an error to answer once the body has been drained. */
static int defer_error(http_req *r, const char *header, const char *value) {
    r->has_pending = 1;
    r->pending_header = header;
    snprintf(r->pending_header_value, sizeof r->pending_header_value, "%s", value ? value : "");
    return MHD_YES;
}

static int too_large(http_req *r) {
    api_error e;
    api_errorf(&e, 413, "request_too_large", NULL, "request body is larger than the limit of %lld bytes",
               r->app->cfg->max_body_bytes);
    return http_reply_error(r, &e);
}

/* Route, authorize and check the headers of a new request. Errors are deferred to the end
 * of the body, except a declared body far over the limit, refused at once. */
static int on_headers(http_req *r, const char *url, const char *method) {
    const route_def *route = NULL;
    for (int i = 0; i < N_ROUTES && !route; i++)
        if (match(routes[i].pattern, url, r))
            route = &routes[i];
    r->route = route ? route->pattern : "unmatched";
    int m = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? M_GET
            : strcmp(method, "POST") == 0                             ? M_POST
            : strcmp(method, "DELETE") == 0                           ? M_DELETE
                                                                      : 0;
    r->method = m == M_GET ? "GET" : m == M_POST ? "POST" : m == M_DELETE ? "DELETE" : "other";
    long long limit = r->app->cfg->max_body_bytes;
    const char *cl = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (*end || errno == ERANGE || n > (unsigned long long)limit) {
            r->body_too_large = 1;
            if (*end || errno == ERANGE || n > (unsigned long long)limit * DRAIN_FACTOR)
                return too_large(r);
        }
    }
    if (!(route && route->open) && !authorized(r)) {
        api_errorf(&r->pending, 401, "invalid_api_key", NULL,
                   "a valid API key is required: send it as \"Authorization: Bearer KEY\"");
        return defer_error(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"auteur\"");
    }
    if (!route) {
        api_errorf(&r->pending, 404, "unknown_url", NULL, "no route for %.200s %.300s", method, url);
        return defer_error(r, NULL, NULL);
    }
    if (!(route->methods & m)) {
        char allow[64];
        methods_text(route->methods, allow, sizeof allow);
        api_errorf(&r->pending, 405, "method_not_allowed", NULL, "%.16s is not allowed on %s; allowed: %s",
                   method, route->pattern, allow);
        return defer_error(r, MHD_HTTP_HEADER_ALLOW, allow);
    }
    r->handler = m == M_GET ? route->get : m == M_POST ? route->post : route->del;
    if (m == M_POST) {
        const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!content_type_is(ct, "application/json") && !content_type_is(ct, "multipart/form-data")) {
            api_errorf(&r->pending, 415, "unsupported_media_type", NULL,
                       "Content-Type must be application/json or multipart/form-data, got %.100s",
                       ct ? ct : "none");
            return defer_error(r, NULL, NULL);
        }
    }
    return MHD_YES;
}

/* Keep (or, past the limit, discard) a chunk of the body. */
static int on_body(http_req *r, const char *data, size_t size) {
    long long limit = r->app->cfg->max_body_bytes;
    if (r->has_pending || r->body_too_large || r->body_len + size > (size_t)limit) {
        r->body_too_large |= !r->has_pending;
        r->body_len += size; /* counted, not kept */
        return r->body_len > (size_t)limit * DRAIN_FACTOR ? too_large(r) : MHD_YES;
    }
    if (r->body_len + size + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + size + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return MHD_NO;
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, size);
    r->body_len += size;
    r->body[r->body_len] = '\0';
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->conn = conn;
        r->app = s->app;
        *con_cls = r;
        return (enum MHD_Result)on_headers(r, url, method);
    }
    if (r->status) { /* answered already: throw the rest of the body away */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        int ok = on_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return (enum MHD_Result)ok;
    }
    if (r->has_pending) {
        const char *h[] = {r->pending_header, r->pending_header_value, NULL};
        return (enum MHD_Result)http_reply_error_headers(r, &r->pending, r->pending_header ? h : NULL);
    }
    if (r->body_too_large)
        return (enum MHD_Result)too_large(r);
    return (enum MHD_Result)r->handler(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    http_req *r = *con_cls;
    if (r) {
        free(r->body);
        free(r);
        *con_cls = NULL;
    }
}

/* A listening socket on host:port; *bound_port gets the port (useful with port 0). */
static int listen_on(const char *host, int port, int *fd_out, int *bound_port, au_err *err) {
    struct addrinfo hints, *res = NULL;
    char port_s[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port_s, sizeof port_s, "%d", port);
    int gai = getaddrinfo(host, port_s, &hints, &res);
    if (gai != 0)
        return au_errf(err, AU_EINVAL, "--host %s: %s", host, gai_strerror(gai));
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 256) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return au_errf(err, AU_EIO, "cannot listen on %s port %d: %s", host, port, strerror(saved));
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return 0;
}

int http_start(http_server **out, app *a, const char *host, int port, int n_threads, int *bound_port,
               au_err *err) {
    *out = NULL;
    http_server *s = calloc(1, sizeof *s);
    if (!s)
        return au_errf(err, AU_ENOMEM, "http: out of memory");
    s->app = a;
    int rc = listen_on(host, port, &s->listen_fd, bound_port, err);
    if (rc) {
        free(s);
        return rc;
    }
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned)n_threads,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_END);
    if (!s->daemon) {
        close(s->listen_fd);
        free(s);
        return au_errf(err, AU_EIO, "libmicrohttpd did not start on %s port %d", host, *bound_port);
    }
    *out = s;
    return 0;
}

void http_stop(http_server *s) {
    if (!s)
        return;
    MHD_socket fd = MHD_quiesce_daemon(s->daemon); /* no new connections from here */
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    MHD_stop_daemon(s->daemon);
    free(s);
}
