/* cpu_convert.c - reading any float dtype as float32 and writing float32 back,
 * for the CPU backend, plus the activation functions.
 *
 * f8 e4m3 elements are decode(v) * scale[r] with r the dim-0 row (tensor.h);
 * decoding goes through a 256-entry table built once. f16 is decoded 16 lanes
 * at a time with integer vector ops (normal, subnormal and inf/NaN selected by
 * masks).
 *   GELU(tanh): 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
 *   SiLU: x sigmoid(x)
 * both with the overflow-free vector sigmoid of cpu_vmath.h.
 */
#include "cpu_internal.h"
#include "cpu_vmath.h"

#include <pthread.h>
#include <string.h>

static float f8_table[256];
static pthread_once_t f8_once = PTHREAD_ONCE_INIT;

static void f8_table_init(void) {
    for (int i = 0; i < 256; i++)
        f8_table[i] = au_f8e4m3_to_f32((uint8_t)i);
}

static void read_f8(const au_tensor *t, int64_t start, int64_t n, float *dst) {
    pthread_once(&f8_once, f8_table_init);
    const uint8_t *s = (const uint8_t *)t->data;
    const float *scale = (const float *)t->scale;
    int64_t row_len = t->ndim > 0 && t->shape[0] > 0 ? au_numel(t) / t->shape[0] : 1;
    int64_t i = 0;
    while (i < n) {
        int64_t e = start + i;
        int64_t row = e / row_len;
        int64_t seg = (row + 1) * row_len - e;
        if (seg > n - i)
            seg = n - i;
        float sc = scale[row];
        for (int64_t j = 0; j < seg; j++)
            dst[i + j] = f8_table[s[e + j]] * sc;
        i += seg;
    }
}

typedef uint16_t vh __attribute__((vector_size(VF_LANES * 2)));

/* IEEE half to float: normals rebias the exponent (+112), inf/NaN get exponent 255,
 * zeros and subnormals are man * 2^-24. */
VF_INLINE void f16_decode_body(const uint16_t *src, int64_t n, float *dst) {
    int64_t i = 0;
    for (; i + VF_LANES <= n; i += VF_LANES) {
        vh h16;
        memcpy(&h16, src + i, sizeof h16);
        vi h = __builtin_convertvector(h16, vi);
        vi em = h & 0x7fff, sign = (h & 0x8000) << 16;
        vi normal = (em << 13) + (112 << 23);
        vi is_special = em >= 0x7c00, is_small = em < 0x400;
        normal += is_special & (112 << 23);
        vf small = __builtin_convertvector(em, vf) * 5.9604644775390625e-08f;
        vi bits = (normal & ~is_small) | ((vi)small & is_small);
        vf out = (vf)(bits | sign);
        memcpy(dst + i, &out, sizeof out);
    }
    for (; i < n; i++)
        dst[i] = au_f16_to_f32(src[i]);
}

CPU_SIMD_VARIANTS(f16_decode, (const uint16_t *src, int64_t n, float *dst), (src, n, dst))

void cpu_read_f32(const au_tensor *t, int64_t start, int64_t n, float *dst) {
    switch (t->dtype) {
    case AU_F32: memcpy(dst, (const float *)t->data + start, (size_t)n * sizeof(float)); break;
    case AU_BF16: {
        const uint16_t *s = (const uint16_t *)t->data + start;
        uint32_t *d = (uint32_t *)dst;
        for (int64_t i = 0; i < n; i++)
            d[i] = (uint32_t)s[i] << 16;
        break;
    }
    case AU_F16: f16_decode((const uint16_t *)t->data + start, n, dst); break;
    case AU_F8_E4M3: read_f8(t, start, n, dst); break;
    default:
        au_convert_to_f32(dst, (const char *)t->data + (size_t)start * au_dtype_size(t->dtype), t->dtype, n);
    }
}

void cpu_weight_rows_f32(const au_tensor *w, int64_t row0, int64_t n_rows, float *dst) {
    int64_t row_len = w->shape[0] > 0 ? au_numel(w) / w->shape[0] : 0;
    cpu_read_f32(w, row0 * row_len, n_rows * row_len, dst);
}

void cpu_write_f32(au_tensor *t, int64_t start, int64_t n, const float *src) {
    switch (t->dtype) {
    case AU_F32: memmove((float *)t->data + start, src, (size_t)n * sizeof(float)); break;
    case AU_BF16: au_convert_from_f32((uint16_t *)t->data + start, AU_BF16, src, n); break;
    case AU_F16: au_convert_from_f32((uint16_t *)t->data + start, AU_F16, src, n); break;
    default: break; /* callers check the dtype first */
    }
}

/* x sigmoid(z) with z = x (SiLU) or z = 2u (GELU: 0.5 (1 + tanh u) = sigmoid(2u)). */
VF_INLINE void act_vec(vf *x, au_act act) {
    vf z = *x;
    if (act == AU_ACT_GELU_TANH)
        z = 2.0f * 0.7978845608028654f * (z + 0.044715f * z * z * z);
    vf_sigmoid_inplace(&z);
    *x = *x * z;
}

VF_INLINE void act_isa_body(float *x, int64_t n, au_act act) {
    int64_t i = 0;
    for (; i + VF_LANES <= n; i += VF_LANES) {
        vf v;
        memcpy(&v, x + i, sizeof v);
        act_vec(&v, act);
        memcpy(x + i, &v, sizeof v);
    }
    if (i < n) {
        vf v = (vf){0};
        memcpy(&v, x + i, (size_t)(n - i) * sizeof(float));
        act_vec(&v, act);
        memcpy(x + i, &v, (size_t)(n - i) * sizeof(float));
    }
}

CPU_SIMD_VARIANTS(act_isa, (float *x, int64_t n, au_act act), (x, n, act))

void cpu_act_apply(float *x, int64_t n, au_act act) {
    if (act == AU_ACT_GELU_TANH || act == AU_ACT_SILU)
        act_isa(x, n, act);
}
