/* tensor.h - the tensor descriptor every module passes around.
 *
 * A tensor is a dtype, a row-major shape (shape[ndim-1] is contiguous) and a
 * pointer into backend memory: host memory for the CPU backend, device memory
 * for CUDA. Tensors never own memory; arenas (backend.h) and mapped files
 * (safetensors.h) do. Views (rows, reshape) are plain struct copies.
 *
 * FP8 tensors carry `scale`: one float32 per row (per output channel for a
 * weight [out, in], per token for an activation [n_tokens, dim]); the real
 * value of element (r, c) is decode(data[r, c]) * scale[r].
 */
#ifndef AU_TENSOR_H
#define AU_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define AU_MAX_DIMS 6

typedef enum au_dtype {
    AU_F32 = 0,
    AU_F16,
    AU_BF16,
    AU_F8_E4M3,
    AU_I32,
    AU_I64,
    AU_U8,
    AU_DTYPE_COUNT
} au_dtype;

typedef struct au_tensor {
    au_dtype dtype;
    int ndim;
    int64_t shape[AU_MAX_DIMS];
    void *data;  /* backend memory */
    void *scale; /* AU_F8_E4M3 only: float32 [shape[0]] per-row scales, backend memory */
} au_tensor;

size_t au_dtype_size(au_dtype dt);
const char *au_dtype_name(au_dtype dt);          /* "f32", "bf16", ... */
int au_dtype_from_name(const char *safetensors_name, au_dtype *out); /* "F32","BF16","F8_E4M3"...; 0 or AU_EFORMAT */

int64_t au_numel(const au_tensor *t);
size_t au_nbytes(const au_tensor *t);
/* Product of all dims but the last: the number of rows of a [.., dim] tensor. */
int64_t au_rows(const au_tensor *t);

/* Build a descriptor (no memory). */
au_tensor au_tensor_make(au_dtype dt, void *data, int ndim, const int64_t *shape);
/* Rows [row0, row0+n_rows) along dim 0, as a tensor of the same ndim. */
au_tensor au_view_rows(const au_tensor *t, int64_t row0, int64_t n_rows);
/* Same data, new shape of equal numel; returns -1 (and leaves out alone) if numel differs. */
int au_reshape(const au_tensor *t, int ndim, const int64_t *shape, au_tensor *out);
int au_same_shape(const au_tensor *a, const au_tensor *b);
/* "[16,21,60,104] f32" into buf. */
const char *au_shape_str(const au_tensor *t, char *buf, size_t n);

/* Scalar conversions (round to nearest even; f8 saturates to +-448). */
float au_bf16_to_f32(uint16_t h);
uint16_t au_f32_to_bf16(float f);
float au_f16_to_f32(uint16_t h);
uint16_t au_f32_to_f16(float f);
float au_f8e4m3_to_f32(uint8_t v);
uint8_t au_f32_to_f8e4m3(float f);

/* Convert n host elements of src_dt at src into float32 at dst. */
int au_convert_to_f32(float *dst, const void *src, au_dtype src_dt, int64_t n);
/* Convert n host float32 elements into dst_dt (f32, f16, bf16). */
int au_convert_from_f32(void *dst, au_dtype dst_dt, const float *src, int64_t n);

#endif
