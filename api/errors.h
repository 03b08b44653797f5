/* errors.h - the error envelope of the HTTP API, and the one place an au_status becomes an
 * HTTP status.
 *
 * Every error response body is {"error": {"message", "type", "param", "code"}} (OpenAI's
 * shape; param and code are null when not applicable). Statuses map as:
 *   AU_EINVAL, AU_EFORMAT -> 400   AU_ENOTFOUND -> 404   AU_ECONFLICT, AU_ECANCELED -> 409
 *   AU_EUNSUPPORTED -> 422         AU_EBUSY -> 429       everything else -> 500.
 * Protocol errors that have no au_status (401, 405, 413, 415, 503) are made with api_errorf.
 */
#ifndef AU_API_ERRORS_H
#define AU_API_ERRORS_H

#include "status.h"

typedef struct api_error {
    int http_status; /* 400..599 */
    char type[32];   /* "invalid_request_error", "authentication_error", ... */
    char code[48];   /* machine-readable, "" = null */
    char param[48];  /* the request field at fault, "" = null */
    char message[512];
} api_error;

/* Fill e; the type follows from http_status. Returns http_status. */
int api_errorf(api_error *e, int http_status, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Map an engine/store error to an HTTP error; param may be NULL. Returns the HTTP status. */
int api_error_from_status(api_error *e, const au_err *err, const char *param);

/* As api_error_from_status for a pipeline_resolve_params failure, whose message starts with
 * the field name ("frames: must be ..."): that name becomes param. */
int api_error_from_resolve(api_error *e, const au_err *err);

/* The HTTP status for an au_status. */
int api_http_status(int au_code);

/* The JSON body of e; malloc'd, NUL-terminated, NULL only when out of memory. */
char *api_error_body(const api_error *e);

#endif
