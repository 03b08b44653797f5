/* status.c - formatting helpers for au_err (see status.h). */
#include "status.h"

#include <stdio.h>
#include <string.h>

int au_errf(au_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int au_err_prefix(au_err *err, const char *fmt, ...) {
    if (!err)
        return AU_EINTERNAL;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t plen = strlen(prefix) + 2; /* "prefix: " */
    size_t cap = sizeof err->msg;
    if (plen >= cap - 1)
        plen = cap - 2;
    size_t keep = strnlen(err->msg, cap - 1);
    if (keep > cap - 1 - plen)
        keep = cap - 1 - plen;
    memmove(err->msg + plen, err->msg, keep);
    err->msg[plen + keep] = '\0';
    memcpy(err->msg, prefix, plen - 2);
    err->msg[plen - 2] = ':';
    err->msg[plen - 1] = ' ';
    return err->code;
}

void au_err_clear(au_err *err) {
    if (err) {
        err->code = AU_OK;
        err->msg[0] = '\0';
    }
}

const char *au_status_name(int code) {
    switch (code) {
    case AU_OK: return "ok";
    case AU_EINVAL: return "invalid_argument";
    case AU_ENOMEM: return "out_of_memory";
    case AU_EIO: return "io_error";
    case AU_EFORMAT: return "bad_format";
    case AU_ENOTFOUND: return "not_found";
    case AU_ECANCELED: return "canceled";
    case AU_EBACKEND: return "backend_error";
    case AU_EUNSUPPORTED: return "unsupported";
    case AU_EBUSY: return "busy";
    case AU_ECONFLICT: return "conflict";
    case AU_ECOMM: return "rank_failure";
    default: return "internal_error";
    }
}
