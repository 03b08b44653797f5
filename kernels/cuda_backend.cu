/* cuda_backend.cu - the CUDA backend: creation, device memory, transfers, weight loading,
 * scratch, argument checks and the ops table (API in cuda_backend.h).
 *
 * Weights are converted on the device: host rows (any file dtype) are staged in scratch in
 * chunks of at most WEIGHT_STAGE_BYTES and converted by a kernel into the arena:
 *   AU_W_MATRIX  fp8: e4m3 codes + float32 scale per dim-0 row (per output channel),
 *                     scale = max|row| / 448; an f8 file tensor keeps its codes and scales;
 *                     convolution kernels (more than 2 dims) bf16, as backend.h promises.
 *                bf16: bf16 (f8 files dequantized with their scales).
 *   AU_W_MATRIX16 bf16 in both precisions.
 *   AU_W_EMBED   bf16.   AU_W_VECTOR, AU_W_F32: float32.
 * weight_bytes reports exactly the 256-byte-rounded allocations weight_load makes.
 */
#include "cuda_internal.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKSPACE_BYTES ((size_t)64 << 20)     /* cuBLASLt workspace */
#define WEIGHT_STAGE_BYTES ((size_t)64 << 20)  /* host rows staged per conversion launch */
#define CUDA_ATTN_ROWS_DEFAULT 32              /* flash kernel variant: 32 measured faster (bench/NOTES.md) */

/* ---- errors ---- */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int cuda_fail_rt(au_err *err, const char *op, const char *what, const char *file, int line, cudaError_t e) {
    cudaGetLastError(); /* clear a non-sticky error so that later calls start clean */
    return au_errf(err, e == cudaErrorMemoryAllocation ? AU_ENOMEM : AU_EBACKEND, "%s: %s failed at %s:%d: %s (%s)",
                   op, what, base_name(file), line, cudaGetErrorString(e), cudaGetErrorName(e));
}

int cuda_fail_lt(au_err *err, const char *op, const char *what, const char *file, int line, cublasStatus_t s) {
    return au_errf(err, s == CUBLAS_STATUS_ALLOC_FAILED ? AU_ENOMEM : AU_EBACKEND, "%s: %s failed at %s:%d: %s (%s)",
                   op, what, base_name(file), line, cublasLtGetStatusString(s), cublasLtGetStatusName(s));
}

/* ---- scratch ---- */

int cuda_scratch(cuda_state *cs, size_t bytes, void **out, const char *op, au_err *err) {
    if (bytes > cs->scratch_bytes) {
        if (cs->recording) /* the recording would keep the old buffer */
            return au_errf(err, AU_ECONFLICT, "%s: needs %zu bytes of scratch (has %zu) while recording", op, bytes,
                           cs->scratch_bytes);
        size_t n = cs->scratch_bytes + cs->scratch_bytes / 2;
        n = cuda_round256(n > bytes ? n : bytes);
        if (cs->scratch) {
            CUDA_TRY(cudaFree(cs->scratch)); /* waits for work still using it */
            cs->scratch = NULL;
            cs->scratch_bytes = 0;
        }
        cudaError_t e = cudaMalloc(&cs->scratch, n);
        if (e != cudaSuccess) {
            cs->scratch = NULL;
            cudaGetLastError();
            return au_errf(err, AU_ENOMEM, "%s: cannot allocate %zu bytes of device scratch: %s", op, n,
                           cudaGetErrorString(e));
        }
        cs->scratch_bytes = n;
        cs->stats.scratch_allocs++;
        cs->stats.scratch_bytes = n;
    }
    *out = cs->scratch;
    return 0;
}

/* ---- argument checks ---- */

int cuda_check_readable(const char *op, const char *name, const au_tensor *t, au_err *err) {
    TRY_RC(be_check_tensor(op, name, t, err));
    char s[96];
    switch (t->dtype) {
    case AU_F32:
    case AU_F16:
    case AU_BF16: return 0;
    case AU_F8_E4M3:
        if (!t->scale && au_numel(t) > 0)
            return au_errf(err, AU_EINVAL, "%s: %s %s has no per-row scale", op, name, au_shape_str(t, s, sizeof s));
        return 0;
    default:
        return au_errf(err, AU_EINVAL, "%s: %s %s: dtype not supported (f32, f16, bf16, f8_e4m3)", op, name,
                       au_shape_str(t, s, sizeof s));
    }
}

int cuda_check_writable(const char *op, const char *name, const au_tensor *t, int allow_f8, au_err *err) {
    TRY_RC(cuda_check_readable(op, name, t, err));
    if (t->dtype == AU_F8_E4M3 && !allow_f8) {
        char s[96];
        return au_errf(err, AU_EINVAL, "%s: %s %s cannot be f8 for this op", op, name, au_shape_str(t, s, sizeof s));
    }
    return 0;
}

int cuda_check_vec(const char *op, const char *name, const au_tensor *t, int64_t n, au_err *err) {
    TRY_RC(be_check_tensor(op, name, t, err));
    char s[96];
    if (t->dtype != AU_F32 || au_numel(t) != n)
        return au_errf(err, AU_EINVAL, "%s: %s %s must be f32 with %lld elements", op, name,
                       au_shape_str(t, s, sizeof s), (long long)n);
    return 0;
}

int cuda_check_numel(const char *op, const char *na, const au_tensor *a, const char *nb, const au_tensor *b,
                     au_err *err) {
    if (au_numel(a) != au_numel(b)) {
        char sa[96], sb[96];
        return au_errf(err, AU_EINVAL, "%s: %s %s and %s %s differ in size", op, na, au_shape_str(a, sa, sizeof sa),
                       nb, au_shape_str(b, sb, sizeof sb));
    }
    return 0;
}

/* ---- memory and transfers ---- */

static void *cuda_mem_alloc(au_backend *be, size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cuda_mem_free(au_backend *be, void *ptr) {
    if (ptr)
        cudaFree(ptr);
}

static int cuda_upload(au_backend *be, au_tensor *dst, const void *host_src, au_err *err) {
    const char *op = "upload";
    TRY_RC(be_check_tensor(op, "dst", dst, err));
    size_t n = au_nbytes(dst);
    if (!n)
        return 0;
    if (!host_src)
        return au_errf(err, AU_EINVAL, "%s: host source is NULL", op);
    /* From pageable memory the call returns once host_src has been staged. */
    CUDA_TRY(cudaMemcpyAsync(dst->data, host_src, n, cudaMemcpyHostToDevice, cuda_of(be)->stream));
    return 0;
}

static int cuda_download(au_backend *be, void *host_dst, const au_tensor *src, au_err *err) {
    const char *op = "download";
    TRY_RC(be_check_tensor(op, "src", src, err));
    size_t n = au_nbytes(src);
    if (!n)
        return 0;
    if (!host_dst)
        return au_errf(err, AU_EINVAL, "%s: host destination is NULL", op);
    cudaStream_t s = cuda_of(be)->stream;
    CUDA_TRY(cudaMemcpyAsync(host_dst, src->data, n, cudaMemcpyDeviceToHost, s));
    CUDA_TRY(cudaStreamSynchronize(s));
    return 0;
}

static int cuda_sync(au_backend *be, au_err *err) {
    const char *op = "sync";
    CUDA_TRY(cudaStreamSynchronize(cuda_of(be)->stream));
    CUDA_TRY(cudaGetLastError());
    return 0;
}

/* ---- weights ---- */

static au_dtype weight_dtype(const cuda_state *cs, au_weight_kind kind, int ndim) {
    switch (kind) {
    case AU_W_MATRIX: return cs->precision == BE_CUDA_FP8 && ndim <= 2 ? AU_F8_E4M3 : AU_BF16;
    case AU_W_MATRIX16:
    case AU_W_EMBED: return AU_BF16;
    default: return AU_F32;
    }
}

static size_t cuda_weight_bytes(au_backend *be, const au_tensor *src, au_weight_kind kind) {
    au_dtype dt = weight_dtype(cuda_of(be), kind, src->ndim);
    size_t n = cuda_round256((size_t)au_numel(src) * au_dtype_size(dt));
    if (dt == AU_F8_E4M3)
        n += cuda_round256((size_t)(src->ndim ? src->shape[0] : 1) * sizeof(float));
    return n;
}

static int cuda_weight_load(au_backend *be, au_arena *arena, const au_tensor *src, const float *src_scale,
                            au_weight_kind kind, au_tensor *dst, au_err *err) {
    const char *op = "weight_load";
    cuda_state *cs = cuda_of(be);
    au_tensor in = *src;
    if (in.dtype == AU_F8_E4M3 && src_scale)
        in.scale = (void *)src_scale;
    TRY_RC(cuda_check_readable(op, "src", &in, err));
    if (!arena || !dst)
        return au_errf(err, AU_EINVAL, "%s: arena or dst is NULL", op);
    if (kind != AU_W_MATRIX && kind != AU_W_MATRIX16 && kind != AU_W_VECTOR && kind != AU_W_EMBED &&
        kind != AU_W_F32)
        return au_errf(err, AU_EINVAL, "%s: unknown weight kind %d", op, (int)kind);
    char s[96];
    au_dtype dt = weight_dtype(cs, kind, in.ndim);
    int64_t numel = au_numel(&in), rows = in.shape[0], row_len = rows > 0 ? numel / rows : 0;
    au_tensor out = in;
    out.dtype = dt;
    out.scale = NULL;
    out.data = be_arena_alloc(arena, (size_t)numel * au_dtype_size(dt), err);
    if (!out.data)
        return au_err_prefix(err, "%s: %s", op, au_shape_str(src, s, sizeof s));
    if (dt == AU_F8_E4M3) {
        out.scale = be_arena_alloc(arena, (size_t)rows * sizeof(float), err);
        if (!out.scale)
            return au_err_prefix(err, "%s: scales of %s", op, au_shape_str(src, s, sizeof s));
    }
    if (numel > 0) {
        if (in.dtype == dt && dt != AU_F8_E4M3) {
            CUDA_TRY(cudaMemcpyAsync(out.data, in.data, au_nbytes(&in), cudaMemcpyHostToDevice, cs->stream));
        } else if (in.dtype == AU_F8_E4M3 && dt == AU_F8_E4M3) {
            CUDA_TRY(cudaMemcpyAsync(out.data, in.data, (size_t)numel, cudaMemcpyHostToDevice, cs->stream));
            CUDA_TRY(cudaMemcpyAsync(out.scale, in.scale, (size_t)rows * sizeof(float), cudaMemcpyHostToDevice,
                                     cs->stream));
        } else {
            /* Stage chunks of rows (and their f8 scales) in scratch, convert on the device. */
            size_t esz = au_dtype_size(in.dtype), row_bytes = (size_t)row_len * esz;
            int64_t chunk = (int64_t)(WEIGHT_STAGE_BYTES / (row_bytes ? row_bytes : 1));
            chunk = chunk < 1 ? 1 : (chunk > rows ? rows : chunk);
            void *stage;
            TRY_RC(cuda_scratch(cs, cuda_round256((size_t)chunk * row_bytes) + (size_t)chunk * sizeof(float), &stage,
                                op, err));
            float *stage_scale = (float *)((char *)stage + cuda_round256((size_t)chunk * row_bytes));
            for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
                int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
                CUDA_TRY(cudaMemcpyAsync(stage, (const char *)in.data + (size_t)r0 * row_bytes, (size_t)nr * row_bytes,
                                         cudaMemcpyHostToDevice, cs->stream));
                cu_ref sr;
                sr.data = stage;
                sr.dtype = (int)in.dtype;
                sr.row_len = row_len;
                sr.scale = NULL;
                if (in.dtype == AU_F8_E4M3) {
                    CUDA_TRY(cudaMemcpyAsync(stage_scale, (const float *)in.scale + r0, (size_t)nr * sizeof(float),
                                             cudaMemcpyHostToDevice, cs->stream));
                    sr.scale = stage_scale;
                }
                if (dt == AU_F8_E4M3) {
                    TRY_RC(cuda_quantize_rows(cs, (uint8_t *)out.data + (size_t)r0 * row_len, (float *)out.scale + r0,
                                              &sr, nr, row_len, op, err));
                } else {
                    cu_ref dr;
                    dr.data = (char *)out.data + (size_t)(r0 * row_len) * au_dtype_size(dt);
                    dr.dtype = (int)dt;
                    dr.scale = NULL;
                    dr.row_len = 1;
                    TRY_RC(cuda_convert(cs, &dr, &sr, nr * row_len, op, err));
                }
                /* The next chunk reuses the staging buffer; the host rows may be unmapped after return. */
                CUDA_TRY(cudaStreamSynchronize(cs->stream));
            }
        }
        CUDA_TRY(cudaStreamSynchronize(cs->stream));
    }
    *dst = out;
    return 0;
}

/* ---- creation ---- */

static void cuda_destroy(au_backend *be) {
    if (!be)
        return;
    cuda_state *cs = (cuda_state *)be->impl;
    if (cs) {
        if (cs->stream)
            cudaStreamSynchronize(cs->stream);
        cuda_plans_free(cs);
        if (cs->lt)
            cublasLtDestroy(cs->lt);
        cudaFree(cs->workspace);
        cudaFree(cs->scratch);
        if (cs->stream)
            cudaStreamDestroy(cs->stream);
        free(cs);
    }
    free(be);
}

static au_backend_ops make_ops(void) {
    au_backend_ops o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    o.destroy = cuda_destroy;
    o.mem_alloc = cuda_mem_alloc;
    o.mem_free = cuda_mem_free;
    o.upload = cuda_upload;
    o.download = cuda_download;
    o.sync = cuda_sync;
    o.weight_bytes = cuda_weight_bytes;
    o.weight_load = cuda_weight_load;
    o.linear = cuda_linear;
    o.embed = cuda_embed;
    o.layernorm = cuda_layernorm;
    o.rmsnorm = cuda_rmsnorm;
    o.rmsnorm_channels = cuda_rmsnorm_channels;
    o.rope = cuda_rope;
    o.rmsnorm_rope = cuda_rmsnorm_rope;
    o.add_gated_layernorm = cuda_add_gated_layernorm;
    o.attention = cuda_attention;
    o.add = cuda_add;
    o.mul = cuda_mul;
    o.add_gated = cuda_add_gated;
    o.activate = cuda_activate;
    o.lincomb = cuda_lincomb;
    o.clamp = cuda_clamp;
    o.copy = cuda_copy;
    o.fill = cuda_fill;
    o.patchify = cuda_patchify;
    o.unpatchify = cuda_unpatchify;
    o.transpose = cuda_transpose;
    o.swap01 = cuda_swap01;
    o.concat = cuda_concat;
    o.slice = cuda_slice;
    o.conv3d = cuda_conv3d;
    o.upsample2x = cuda_upsample2x;
    o.time_interleave = cuda_time_interleave;
    o.to_rgb8 = cuda_to_rgb8;
    o.record_begin = cuda_record_begin;
    o.record_end = cuda_record_end;
    o.graph_run = cuda_graph_run;
    o.graph_free = cuda_graph_free;
    return o;
}

static const au_backend_ops cuda_ops = make_ops();

extern "C" int be_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" int be_cuda_create(au_backend **out, const be_cuda_opts *opts, au_err *err) {
    const char *op = "cuda backend";
    if (!out || !opts)
        return au_errf(err, AU_EINVAL, "%s: out or opts is NULL", op);
    *out = NULL;
    if (opts->precision != BE_CUDA_FP8 && opts->precision != BE_CUDA_BF16)
        return au_errf(err, AU_EINVAL, "%s: precision %d is neither fp8 (%d) nor bf16 (%d)", op, opts->precision,
                       BE_CUDA_FP8, BE_CUDA_BF16);
    int n_dev = be_cuda_device_count();
    if (n_dev == 0)
        return au_errf(err, AU_EUNSUPPORTED, "%s: no CUDA device", op);
    if (opts->device < 0 || opts->device >= n_dev)
        return au_errf(err, AU_EINVAL, "%s: device %d of %d", op, opts->device, n_dev);
    CUDA_TRY(cudaSetDevice(opts->device));
    cudaDeviceProp prop;
    CUDA_TRY(cudaGetDeviceProperties(&prop, opts->device));
    if (prop.major < 8)
        return au_errf(err, AU_EUNSUPPORTED, "%s: %s has compute capability %d.%d; bf16 tensor cores need 8.0+", op,
                       prop.name, prop.major, prop.minor);
    if (opts->precision == BE_CUDA_FP8 && prop.major * 10 + prop.minor < 89)
        return au_errf(err, AU_EUNSUPPORTED, "%s: %s has compute capability %d.%d; FP8 needs 8.9+ (use bf16)", op,
                       prop.name, prop.major, prop.minor);

    au_backend *be = (au_backend *)calloc(1, sizeof *be);
    cuda_state *cs = (cuda_state *)calloc(1, sizeof *cs);
    if (!be || !cs) {
        free(be);
        free(cs);
        return au_errf(err, AU_ENOMEM, "%s: out of host memory", op);
    }
    be->ops = &cuda_ops;
    be->impl = cs;
    be->act_dtype = AU_BF16;
    be->gemm_in_dtype = opts->precision == BE_CUDA_FP8 ? AU_F8_E4M3 : AU_BF16;
    cs->device = opts->device;
    cs->precision = opts->precision;
    cs->attn_rows_per_warp = CUDA_ATTN_ROWS_DEFAULT;
    cs->n_sm = prop.multiProcessorCount;
    cs->max_smem_optin = (int)prop.sharedMemPerBlockOptin;
    snprintf(cs->stats.device_name, sizeof cs->stats.device_name, "%s", prop.name);
    cs->stats.sm_major = prop.major;
    cs->stats.sm_minor = prop.minor;
    int rc = 0;
    cublasStatus_t ls;
    cudaError_t e;
    if ((e = cudaStreamCreateWithFlags(&cs->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        rc = cuda_fail_rt(err, op, "cudaStreamCreateWithFlags", __FILE__, __LINE__, e);
        goto fail;
    }
    if ((ls = cublasLtCreate(&cs->lt)) != CUBLAS_STATUS_SUCCESS) {
        rc = cuda_fail_lt(err, op, "cublasLtCreate", __FILE__, __LINE__, ls);
        goto fail;
    }
    cs->workspace_bytes = WORKSPACE_BYTES;
    if ((e = cudaMalloc(&cs->workspace, cs->workspace_bytes)) != cudaSuccess) {
        rc = cuda_fail_rt(err, op, "cudaMalloc(workspace)", __FILE__, __LINE__, e);
        goto fail;
    }
    if (cuda_plans_init(cs) < 0) {
        rc = au_errf(err, AU_ENOMEM, "%s: plan cache", op);
        goto fail;
    }
    if (opts->precision == BE_CUDA_FP8)
        cs->fp8_outer_vec = cuda_probe_fp8_outer_vec(cs);
    cs->attn_wgmma = cuda_attention_wgmma_probe(cs); /* the sm_90a kernels of both precisions */
    cs->stats.fp8_outer_vec = cs->fp8_outer_vec;
    *out = be;
    return 0;
fail:
    cuda_destroy(be);
    return rc;
}

extern "C" int be_cuda_set_attention_variant(au_backend *be, int rows_per_warp, au_err *err) {
    if (!be || be->ops != &cuda_ops)
        return au_errf(err, AU_EINVAL, "cuda attention variant: not a CUDA backend");
    if (rows_per_warp != 16 && rows_per_warp != 32)
        return au_errf(err, AU_EINVAL, "cuda attention variant: %d queries per warp (16 or 32)", rows_per_warp);
    cuda_of(be)->attn_rows_per_warp = rows_per_warp;
    return 0;
}

extern "C" int be_cuda_get_stats(au_backend *be, be_cuda_stats *stats, au_err *err) {
    if (!be || !stats || be->ops != &cuda_ops)
        return au_errf(err, AU_EINVAL, "cuda stats: not a CUDA backend");
    *stats = cuda_of(be)->stats;
    return 0;
}
