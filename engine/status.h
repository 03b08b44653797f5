/* status.h - the one error type shared by every module.
 *
 * A function that can fail returns 0 on success or a negative au_status and
 * fills an au_err whose message names the failing thing, e.g.
 *   "tensor blocks.3.ffn.0.weight: expected [8960,1536] bf16, found [8960,1024]".
 * Callers add context with au_err_prefix() and pass the error up; only main()
 * and the HTTP layer (api/errors.c) turn it into an exit code or a response.
 */
#ifndef AU_STATUS_H
#define AU_STATUS_H

#include <stdarg.h>

typedef enum au_status {
    AU_OK = 0,
    AU_EINVAL = -1,     /* bad argument or input value */
    AU_ENOMEM = -2,     /* host or device allocation failed */
    AU_EIO = -3,        /* file or system I/O failed */
    AU_EFORMAT = -4,    /* malformed file (safetensors, json, tokenizer) */
    AU_ENOTFOUND = -5,  /* missing file, tensor, job */
    AU_ECANCELED = -6,  /* the caller asked to stop */
    AU_EBACKEND = -7,   /* a compute backend call failed (CUDA, cuBLASLt...) */
    AU_EUNSUPPORTED = -8, /* valid but not supported by this build/model */
    AU_EBUSY = -9,      /* queue full, resource busy */
    AU_ECONFLICT = -10, /* wrong state for the operation */
    AU_EINTERNAL = -11, /* a bug: an invariant did not hold */
    AU_ECOMM = -12,     /* another rank failed, timed out or was aborted (comm.h) */
} au_status;

typedef struct au_err {
    int code;          /* an au_status */
    char msg[512];
} au_err;

/* Fill err (if non-NULL) and return code. */
int au_errf(au_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepend "context: " to err->msg; returns err->code. */
int au_err_prefix(au_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void au_err_clear(au_err *err);
const char *au_status_name(int code);

#endif
