/* weights.c - table-driven weight loading (see weights.h).
 *
 * weights_check walks the whole table before anything is converted and stops at the
 * first problem, naming it: a required tensor absent under both names, a shape that
 * differs from the table ("tensor x: expected [8960,1536], found [8960,1024] bf16"),
 * a dtype that is not a float weight type (f32, f16, bf16, f8_e4m3), or an f8 scale of
 * the wrong shape. weights_load then hands every present tensor to the backend's
 * weight_load.
 *
 * FP8 scales: an f8_e4m3 tensor "<name>" takes its scale from "<name>.scale", else, when
 * the name ends in ".weight", from "<stem>.scale_weight" (the ComfyUI "scaled fp8"
 * convention). The scale is a scalar (any shape of one element) applied to every row,
 * or a vector of shape[0] values, one per row; f32, f16 or bf16. An f8 tensor with no
 * scale tensor is a plain cast and gets scale 1 for every row. Scales are converted to
 * a host float32 array for the call and freed afterwards.
 */
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

au_weight_spec *weights_add(au_weight_spec *specs, int *n, int cap, au_tensor *dst, au_weight_kind kind,
                            int ndim, const int64_t *shape, const char *name_fmt, ...) {
    if (*n >= cap || ndim < 0 || ndim > AU_MAX_DIMS)
        return NULL;
    au_weight_spec *s = &specs[*n];
    memset(s, 0, sizeof *s);
    va_list ap;
    va_start(ap, name_fmt);
    vsnprintf(s->name, sizeof s->name, name_fmt, ap);
    va_end(ap);
    s->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        s->shape[i] = shape[i];
    s->kind = kind;
    s->dst = dst;
    (*n)++;
    return s;
}

/* "[a,b,c]" without dtype. */
static const char *dims_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

/* The tensor for a spec under its name or alt_name, and the name it was found under. */
static const au_tensor *spec_find(const st_set *st, const au_weight_spec *s, const char **found_name) {
    const au_tensor *t = st_get(st, s->name);
    *found_name = s->name;
    if (!t && s->alt_name[0]) {
        t = st_get(st, s->alt_name);
        *found_name = s->alt_name;
    }
    return t;
}

/* The scale tensor of an f8 tensor named `name`, and its name; NULL if it has none. */
static const au_tensor *scale_find(const st_set *st, const char *name, char *scale_name, size_t n) {
    snprintf(scale_name, n, "%s.scale", name);
    const au_tensor *t = st_get(st, scale_name);
    size_t len = strlen(name), suffix = strlen(".weight");
    if (!t && len > suffix && strcmp(name + len - suffix, ".weight") == 0) {
        snprintf(scale_name, n, "%.*s.scale_weight", (int)(len - suffix), name);
        t = st_get(st, scale_name);
    }
    return t;
}

static int is_weight_dtype(au_dtype dt) {
    return dt == AU_F32 || dt == AU_F16 || dt == AU_BF16 || dt == AU_F8_E4M3;
}

static int check_scale(const au_tensor *scale, const char *scale_name, const au_tensor *t, au_err *err) {
    char buf[128];
    if (scale->dtype != AU_F32 && scale->dtype != AU_F16 && scale->dtype != AU_BF16)
        return au_errf(err, AU_EFORMAT, "tensor %s: scale must be f32, f16 or bf16, found %s", scale_name,
                       au_dtype_name(scale->dtype));
    int64_t rows = t->ndim ? t->shape[0] : 1;
    if (au_numel(scale) == 1 || (scale->ndim == 1 && scale->shape[0] == rows))
        return 0;
    return au_errf(err, AU_EFORMAT, "tensor %s: expected a scalar or [%lld] scale, found %s", scale_name,
                   (long long)rows, au_shape_str(scale, buf, sizeof buf));
}

int weights_check(const st_set *st, const au_weight_spec *specs, int n, au_err *err) {
    for (int i = 0; i < n; i++) {
        const au_weight_spec *s = &specs[i];
        const char *name;
        const au_tensor *t = spec_find(st, s, &name);
        if (!t) {
            if (s->optional)
                continue;
            if (s->alt_name[0])
                return au_errf(err, AU_ENOTFOUND, "tensor %s: missing (nor found as %s)", s->name, s->alt_name);
            return au_errf(err, AU_ENOTFOUND, "tensor %s: missing", s->name);
        }
        int same = t->ndim == s->ndim;
        for (int d = 0; same && d < s->ndim; d++)
            same = t->shape[d] == s->shape[d];
        if (!same) {
            char want[128], got[128];
            return au_errf(err, AU_EFORMAT, "tensor %s: expected %s, found %s", name,
                           dims_str(s->ndim, s->shape, want, sizeof want), au_shape_str(t, got, sizeof got));
        }
        if (!is_weight_dtype(t->dtype))
            return au_errf(err, AU_EFORMAT, "tensor %s: dtype %s is not a weight type (f32, f16, bf16, f8_e4m3)", name,
                           au_dtype_name(t->dtype));
        if (t->dtype == AU_F8_E4M3) {
            char scale_name[300];
            const au_tensor *scale = scale_find(st, name, scale_name, sizeof scale_name);
            int rc = scale ? check_scale(scale, scale_name, t, err) : 0;
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

size_t weights_bytes(au_backend *be, const st_set *st, const au_weight_spec *specs, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const char *name;
        const au_tensor *t = spec_find(st, &specs[i], &name);
        if (t)
            total += be->ops->weight_bytes(be, t, specs[i].kind);
    }
    return total;
}

/* Host float32 per-row scales for an f8 tensor (checked by weights_check); caller frees. */
static float *scale_rows(const st_set *st, const char *name, const au_tensor *t, au_err *err) {
    int64_t rows = t->ndim ? t->shape[0] : 1;
    float *out = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *out);
    if (!out) {
        au_errf(err, AU_ENOMEM, "tensor %s: out of memory for %lld scales", name, (long long)rows);
        return NULL;
    }
    char scale_name[300];
    const au_tensor *scale = scale_find(st, name, scale_name, sizeof scale_name);
    if (!scale) {
        for (int64_t r = 0; r < rows; r++)
            out[r] = 1.0f;
        return out;
    }
    if (au_numel(scale) == 1) {
        float v;
        au_convert_to_f32(&v, scale->data, scale->dtype, 1);
        for (int64_t r = 0; r < rows; r++)
            out[r] = v;
        return out;
    }
    au_convert_to_f32(out, scale->data, scale->dtype, rows);
    return out;
}

int weights_load(au_backend *be, au_arena *arena, const st_set *st, au_weight_spec *specs, int n, au_err *err) {
    int rc = weights_check(st, specs, n, err);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        au_weight_spec *s = &specs[i];
        const char *name;
        const au_tensor *t = spec_find(st, s, &name);
        if (!t) {
            memset(s->dst, 0, sizeof *s->dst); /* optional and absent */
            continue;
        }
        float *scale = NULL;
        if (t->dtype == AU_F8_E4M3 && !(scale = scale_rows(st, name, t, err)))
            return err ? err->code : AU_ENOMEM;
        rc = be->ops->weight_load(be, arena, t, scale, s->kind, s->dst, err);
        free(scale);
        if (rc < 0)
            return au_err_prefix(err, "tensor %s", name);
    }
    return 0;
}
