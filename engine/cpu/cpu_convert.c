/* cpu_convert.c - reading any float dtype as float32 and writing float32 back,
 * for the CPU backend, plus the activation functions.
 *
 * f8 e4m3 elements are decode(v) * scale[r] with r the dim-0 row (tensor.h);
 * decoding goes through a 256-entry table built once.
 *   GELU(tanh): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)));  SiLU: x / (1 + e^-x).
 */
#include "cpu_internal.h"

#include <math.h>
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
    case AU_F16: {
        const uint16_t *s = (const uint16_t *)t->data + start;
        for (int64_t i = 0; i < n; i++)
            dst[i] = au_f16_to_f32(s[i]);
        break;
    }
    case AU_F8_E4M3: read_f8(t, start, n, dst); break;
    default: au_convert_to_f32(dst, (const char *)t->data + (size_t)start * au_dtype_size(t->dtype), t->dtype, n);
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

void cpu_act_apply(float *x, int64_t n, au_act act) {
    switch (act) {
    case AU_ACT_GELU_TANH:
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
        }
        break;
    case AU_ACT_SILU:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    default: break;
    }
}
