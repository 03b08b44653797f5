/* tensor.c - tensor descriptors, views and scalar dtype conversions (see tensor.h).
 *
 * Bit layouts (all round to nearest, ties to even):
 *  - bf16: the top 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 mantissa).
 *  - f16: IEEE half, 1 sign, 5 exponent (bias 15), 10 mantissa, subnormals,
 *    infinities; float32 values >= 65520 in magnitude become infinity.
 *  - f8 e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa; no infinities, the
 *    only NaNs are 0x7f and 0xff; largest finite value 448 = 1.75 * 2^8;
 *    smallest subnormal 2^-9. Encoding saturates to +-448 (also for +-inf).
 */
#include "tensor.h"
#include "status.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

size_t au_dtype_size(au_dtype dt) {
    switch (dt) {
    case AU_F32: return 4;
    case AU_F16: return 2;
    case AU_BF16: return 2;
    case AU_F8_E4M3: return 1;
    case AU_I32: return 4;
    case AU_I64: return 8;
    case AU_U8: return 1;
    default: return 0;
    }
}

const char *au_dtype_name(au_dtype dt) {
    switch (dt) {
    case AU_F32: return "f32";
    case AU_F16: return "f16";
    case AU_BF16: return "bf16";
    case AU_F8_E4M3: return "f8_e4m3";
    case AU_I32: return "i32";
    case AU_I64: return "i64";
    case AU_U8: return "u8";
    default: return "invalid";
    }
}

int au_dtype_from_name(const char *safetensors_name, au_dtype *out) {
    static const struct {
        const char *name;
        au_dtype dt;
    } names[] = {{"F32", AU_F32}, {"F16", AU_F16}, {"BF16", AU_BF16}, {"F8_E4M3", AU_F8_E4M3},
                 {"I32", AU_I32}, {"I64", AU_I64}, {"U8", AU_U8}};
    if (!safetensors_name)
        return AU_EFORMAT;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(safetensors_name, names[i].name) == 0) {
            *out = names[i].dt;
            return 0;
        }
    }
    return AU_EFORMAT;
}

int64_t au_numel(const au_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t au_nbytes(const au_tensor *t) {
    return (size_t)au_numel(t) * au_dtype_size(t->dtype);
}

int64_t au_rows(const au_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i + 1 < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

au_tensor au_tensor_make(au_dtype dt, void *data, int ndim, const int64_t *shape) {
    au_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = ndim < 0 ? 0 : (ndim > AU_MAX_DIMS ? AU_MAX_DIMS : ndim);
    for (int i = 0; i < t.ndim; i++)
        t.shape[i] = shape[i];
    t.data = data;
    return t;
}

au_tensor au_view_rows(const au_tensor *t, int64_t row0, int64_t n_rows) {
    au_tensor v = *t;
    if (t->ndim == 0)
        return v;
    int64_t row_elems = 1;
    for (int i = 1; i < t->ndim; i++)
        row_elems *= t->shape[i];
    v.shape[0] = n_rows;
    if (t->data)
        v.data = (char *)t->data + (size_t)(row0 * row_elems) * au_dtype_size(t->dtype);
    if (t->scale)
        v.scale = (float *)t->scale + row0;
    return v;
}

int au_reshape(const au_tensor *t, int ndim, const int64_t *shape, au_tensor *out) {
    if (ndim < 0 || ndim > AU_MAX_DIMS)
        return -1;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    if (n != au_numel(t))
        return -1;
    au_tensor r = *t;
    r.ndim = ndim;
    for (int i = 0; i < AU_MAX_DIMS; i++)
        r.shape[i] = i < ndim ? shape[i] : 0;
    *out = r;
    return 0;
}

int au_same_shape(const au_tensor *a, const au_tensor *b) {
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

const char *au_shape_str(const au_tensor *t, char *buf, size_t n) {
    if (!buf || n == 0)
        return "";
    size_t at = 0;
    int w = snprintf(buf, n, "[");
    at = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < t->ndim && at < n; i++) {
        w = snprintf(buf + at, n - at, i ? ",%lld" : "%lld", (long long)t->shape[i]);
        if (w > 0)
            at += (size_t)w;
    }
    if (at < n)
        snprintf(buf + at, n - at, "] %s", au_dtype_name(t->dtype));
    return buf;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float au_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

uint16_t au_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet and a NaN */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float au_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) { /* zero or subnormal: man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    if (exp == 31) /* inf or NaN */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t au_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    u &= 0x7fffffffu;
    if (u >= 0x7f800000u) /* inf stays inf, NaN stays a quiet NaN */
        return (uint16_t)(sign | 0x7c00u | (u > 0x7f800000u ? 0x200u : 0u));
    if (u >= 0x477ff000u) /* >= 65520 rounds past 65504 */
        return (uint16_t)(sign | 0x7c00u);
    if (u < 0x38800000u) { /* below 2^-14: f16 subnormal, units of 2^-24 */
        uint32_t q = (uint32_t)nearbyintf(bits_f32(u) * 16777216.0f);
        return (uint16_t)(sign | q); /* q == 0x400 is the smallest normal, encoded alike */
    }
    u += 0xfffu + ((u >> 13) & 1u);
    uint32_t exp = (u >> 23) - 112u;
    return (uint16_t)(sign | (exp << 10) | ((u >> 13) & 0x3ffu));
}

float au_f8e4m3_to_f32(uint8_t v) {
    uint32_t exp = (v >> 3) & 0xfu;
    uint32_t man = v & 7u;
    float r;
    if (exp == 15 && man == 7)
        return (v & 0x80) ? -NAN : NAN;
    if (exp == 0)
        r = (float)man * 0.001953125f; /* man * 2^-9 */
    else
        r = bits_f32(((exp + 120u) << 23) | (man << 20));
    return (v & 0x80) ? -r : r;
}

uint8_t au_f32_to_f8e4m3(float f) {
    uint32_t u = f32_bits(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u)
        return (uint8_t)(sign | 0x7f);
    if (u >= 0x43e00000u) /* >= 448 (and inf): saturate */
        return (uint8_t)(sign | 0x7e);
    if (u < 0x3c800000u) { /* below 2^-6: subnormal, units of 2^-9 */
        uint32_t q = (uint32_t)nearbyintf(bits_f32(u) * 512.0f);
        return (uint8_t)(sign | q); /* q == 8 is the smallest normal, encoded alike */
    }
    u += 0x7ffffu + ((u >> 20) & 1u);
    uint32_t exp = (u >> 23) - 120u;
    return (uint8_t)(sign | (exp << 3) | ((u >> 20) & 7u));
}

int au_convert_to_f32(float *dst, const void *src, au_dtype src_dt, int64_t n) {
    switch (src_dt) {
    case AU_F32: memmove(dst, src, (size_t)n * 4); return 0;
    case AU_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = au_f16_to_f32(s[i]);
        return 0;
    }
    case AU_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = bits_f32((uint32_t)s[i] << 16);
        return 0;
    }
    case AU_F8_E4M3: {
        const uint8_t *s = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = au_f8e4m3_to_f32(s[i]);
        return 0;
    }
    case AU_I32: {
        const int32_t *s = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)s[i];
        return 0;
    }
    case AU_I64: {
        const int64_t *s = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)s[i];
        return 0;
    }
    case AU_U8: {
        const uint8_t *s = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)s[i];
        return 0;
    }
    default: return AU_EINVAL;
    }
}

int au_convert_from_f32(void *dst, au_dtype dst_dt, const float *src, int64_t n) {
    switch (dst_dt) {
    case AU_F32: memmove(dst, src, (size_t)n * 4); return 0;
    case AU_F16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++)
            d[i] = au_f32_to_f16(src[i]);
        return 0;
    }
    case AU_BF16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++)
            d[i] = au_f32_to_bf16(src[i]);
        return 0;
    }
    default: return AU_EINVAL;
    }
}
