/* weights.h - table-driven weight loading shared by the model files.
 *
 * Each model lists the tensors it expects (name, shape, kind, where to put it)
 * and calls weights_load(), which checks every entry against the safetensors
 * set before converting anything, and fails naming the first missing or
 * mismatched tensor:
 *   "tensor blocks.3.ffn.0.weight: expected [8960,1536], found [8960,1024] bf16".
 * The same table gives the bytes to plan the weight arena (weights_bytes()).
 * An f8_e4m3 tensor in the file takes its per-row scale from "<name>.scale"
 * or, for "<x>.weight", "<x>.scale_weight" when present (scalar or per-row).
 */
#ifndef AU_WEIGHTS_H
#define AU_WEIGHTS_H

#include "backend.h"
#include "safetensors.h"

typedef struct au_weight_spec {
    char name[128];     /* name in the file */
    char alt_name[128]; /* second accepted name ("" if none), e.g. the official .pth naming */
    int ndim;
    int64_t shape[AU_MAX_DIMS];
    au_weight_kind kind;
    int optional;       /* absent is fine: dst->data stays NULL */
    au_tensor *dst;
} au_weight_spec;

/* Append a spec; name is a printf format. Returns the spec for further edits. */
au_weight_spec *weights_add(au_weight_spec *specs, int *n, int cap, au_tensor *dst, au_weight_kind kind,
                            int ndim, const int64_t *shape, const char *name_fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* Check all, then load all. */
int weights_check(const st_set *st, const au_weight_spec *specs, int n, au_err *err);
size_t weights_bytes(au_backend *be, const st_set *st, const au_weight_spec *specs, int n);
int weights_load(au_backend *be, au_arena *arena, const st_set *st, au_weight_spec *specs, int n,
                 au_err *err);

#endif
