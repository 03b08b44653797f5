/* errors.c - error envelope rendering and the au_status -> HTTP status table (errors.h). */
#include "api/errors.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *type_for_status(int http_status) {
    switch (http_status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable_error";
    default: return http_status >= 500 ? "server_error" : "invalid_request_error";
    }
}

static void copy_str(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

int api_errorf(api_error *e, int http_status, const char *code, const char *param, const char *fmt, ...) {
    va_list ap;
    e->http_status = http_status;
    copy_str(e->type, sizeof e->type, type_for_status(http_status));
    copy_str(e->code, sizeof e->code, code);
    copy_str(e->param, sizeof e->param, param);
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return http_status;
}

int api_http_status(int au_code) {
    switch (au_code) {
    case AU_EINVAL:
    case AU_EFORMAT: return 400;
    case AU_ENOTFOUND: return 404;
    case AU_ECONFLICT:
    case AU_ECANCELED: return 409;
    case AU_EUNSUPPORTED: return 422;
    case AU_EBUSY: return 429;
    default: return 500;
    }
}

static const char *code_for_status(int au_code) {
    switch (au_code) {
    case AU_EINVAL:
    case AU_EFORMAT: return "invalid_value";
    case AU_ENOTFOUND: return "not_found";
    case AU_ECONFLICT: return "conflict";
    case AU_ECANCELED: return "canceled";
    case AU_EUNSUPPORTED: return "unsupported";
    case AU_EBUSY: return "queue_full";
    default: return "internal_error";
    }
}

int api_error_from_status(api_error *e, const au_err *err, const char *param) {
    int code = err->code < 0 ? err->code : AU_EINTERNAL;
    return api_errorf(e, api_http_status(code), code_for_status(code), param, "%s",
                      err->msg[0] ? err->msg : au_status_name(code));
}

int api_error_from_resolve(api_error *e, const au_err *err) {
    char param[sizeof e->param] = "";
    size_t n = 0;
    while (n + 1 < sizeof param && (isalnum((unsigned char)err->msg[n]) || err->msg[n] == '_'))
        n++;
    if (n > 0 && err->msg[n] == ':') {
        memcpy(param, err->msg, n);
        param[n] = '\0';
    }
    return api_error_from_status(e, err, param[0] ? param : NULL);
}

/* A JSON string of s; bytes that are not valid UTF-8 (echoed user input) become '?'. */
static json_t *string_lossy(const char *s) {
    json_t *j = json_string(s);
    if (j)
        return j;
    char clean[sizeof((api_error *)0)->message];
    size_t n = 0;
    for (; s[n] && n + 1 < sizeof clean; n++)
        clean[n] = (unsigned char)s[n] < 0x80 ? s[n] : '?';
    clean[n] = '\0';
    return json_string(clean);
}

static json_t *str_or_null(const char *s) {
    return s[0] ? string_lossy(s) : json_null();
}

char *api_error_body(const api_error *e) {
    json_t *inner = json_object();
    json_t *root = json_object();
    char *out = NULL;
    if (inner && root) {
        json_object_set_new(inner, "message", string_lossy(e->message));
        json_object_set_new(inner, "type", json_string(e->type));
        json_object_set_new(inner, "param", str_or_null(e->param));
        json_object_set_new(inner, "code", str_or_null(e->code));
        json_object_set(root, "error", inner);
        out = json_dumps(root, JSON_COMPACT);
    }
    json_decref(inner);
    json_decref(root);
    return out;
}
