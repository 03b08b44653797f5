// deps: au_io au_cpu au_core
/* test_weights.c - weights_check / weights_bytes / weights_load (engine/weights.c) on the
 * CPU backend: names and alternative names, optional tensors, every float file dtype,
 * FP8 scales under both naming conventions (scalar and per-row) and unscaled FP8, and
 * the exact error messages for the first missing or mismatched tensor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weights.h"

static int g_failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            g_failures++;                                                                          \
        }                                                                                          \
    } while (0)
#define CHECK_MSG(rc_expr, want_rc, want_msg)                                                      \
    do {                                                                                           \
        int rc_ = (rc_expr);                                                                       \
        if (rc_ != (want_rc) || strcmp(err.msg, want_msg) != 0) {                                  \
            fprintf(stderr, "%s:%d: got %d \"%s\", expected %d \"%s\"\n", __FILE__, __LINE__, rc_,  \
                    err.msg, want_rc, want_msg);                                                   \
            g_failures++;                                                                          \
        }                                                                                          \
    } while (0)

/* The file every case reads. */
static float m_f32[6] = {1, 2, 3, 4, 5, 6};          /* "lin.weight" [2,3] f32 */
static uint16_t m_bf16[6];                            /* "official.w" [3,2] bf16 (found via alt name) */
static uint16_t v_f16[3];                             /* "norm.weight" [3] f16 */
static uint8_t q_rows[6];                             /* "q.weight" [2,3] f8, "q.weight.scale" [2] f32 */
static float q_rows_scale[2] = {0.5f, 2.0f};
static uint8_t q_scalar[4];                           /* "k.weight" [2,2] f8, "k.scale_weight" [] bf16 */
static uint16_t q_scalar_scale;
static uint8_t q_plain[2];                            /* "plain.weight" [1,2] f8, no scale */
static int32_t ids[2] = {1, 2};                       /* "ids" [2] i32 */
static uint8_t bad_q[4];                              /* "bad.weight" [2,2] f8, "bad.weight.scale" [3] */
static float bad_scale[3] = {1, 1, 1};

static int write_model(const char *path) {
    const float vals_bf16[6] = {-1, 0.5f, 2, 4, -8, 16};
    for (int i = 0; i < 6; i++)
        m_bf16[i] = au_f32_to_bf16(vals_bf16[i]);
    const float vals_f16[3] = {0.25f, -3, 1000};
    for (int i = 0; i < 3; i++)
        v_f16[i] = au_f32_to_f16(vals_f16[i]);
    const float qv[6] = {1, -2, 0.5f, 448, -0.25f, 3};
    for (int i = 0; i < 6; i++)
        q_rows[i] = au_f32_to_f8e4m3(qv[i]);
    for (int i = 0; i < 4; i++)
        q_scalar[i] = au_f32_to_f8e4m3((float)(i + 1));
    q_scalar_scale = au_f32_to_bf16(0.125f);
    q_plain[0] = au_f32_to_f8e4m3(1.5f);
    q_plain[1] = au_f32_to_f8e4m3(-6.0f);
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s3[1] = {3}, s2[1] = {2}, s22[2] = {2, 2}, s12[2] = {1, 2};
    st_entry e[] = {
        {"lin.weight", au_tensor_make(AU_F32, m_f32, 2, s23)},
        {"official.w", au_tensor_make(AU_BF16, m_bf16, 2, s32)},
        {"norm.weight", au_tensor_make(AU_F16, v_f16, 1, s3)},
        {"q.weight", au_tensor_make(AU_F8_E4M3, q_rows, 2, s23)},
        {"q.weight.scale", au_tensor_make(AU_F32, q_rows_scale, 1, s2)},
        {"k.weight", au_tensor_make(AU_F8_E4M3, q_scalar, 2, s22)},
        {"k.scale_weight", au_tensor_make(AU_BF16, &q_scalar_scale, 0, NULL)},
        {"plain.weight", au_tensor_make(AU_F8_E4M3, q_plain, 2, s12)},
        {"ids", au_tensor_make(AU_I32, ids, 1, s2)},
        {"bad.weight", au_tensor_make(AU_F8_E4M3, bad_q, 2, s22)},
        {"bad.weight.scale", au_tensor_make(AU_F32, bad_scale, 1, s3)},
    };
    au_err err = {0};
    int rc = st_write(path, e, (int)(sizeof e / sizeof e[0]), NULL, &err);
    if (rc < 0)
        fprintf(stderr, "write: %s\n", err.msg);
    return rc;
}

static void f32_of(float *out, const au_tensor *t) { au_convert_to_f32(out, t->data, t->dtype, au_numel(t)); }

int main(void) {
    char path[] = "/tmp/au_weights_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write_model(path) < 0)
        return 1;
    close(fd);
    au_err err = {0};
    st_set *st = NULL;
    if (st_open(&st, path, &err) < 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    au_backend *be = NULL;
    if (be_cpu_create(&be, 1, &err) < 0) {
        fprintf(stderr, "backend: %s\n", err.msg);
        return 1;
    }

    /* The table a model would build. */
    au_tensor lin, off, norm, q, k, plain, opt;
    au_tensor opt_sentinel = au_tensor_make(AU_F32, (void *)1, 0, NULL);
    opt = opt_sentinel;
    au_weight_spec specs[8];
    int n = 0;
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s3[1] = {3}, s22[2] = {2, 2}, s12[2] = {1, 2};
    CHECK(weights_add(specs, &n, 8, &lin, AU_W_MATRIX, 2, s23, "%s.weight", "lin") != NULL);
    au_weight_spec *alt = weights_add(specs, &n, 8, &off, AU_W_MATRIX, 2, s32, "blocks.%d.w", 0);
    snprintf(alt->alt_name, sizeof alt->alt_name, "official.w");
    weights_add(specs, &n, 8, &norm, AU_W_VECTOR, 1, s3, "norm.weight");
    weights_add(specs, &n, 8, &q, AU_W_MATRIX, 2, s23, "q.weight");
    weights_add(specs, &n, 8, &k, AU_W_MATRIX, 2, s22, "k.weight");
    weights_add(specs, &n, 8, &plain, AU_W_MATRIX, 2, s12, "plain.weight");
    weights_add(specs, &n, 8, &opt, AU_W_VECTOR, 1, s3, "absent.bias")->optional = 1;
    CHECK(n == 7 && strcmp(specs[1].name, "blocks.0.w") == 0);

    CHECK(weights_check(st, specs, n, &err) == 0);
    size_t bytes = weights_bytes(be, st, specs, n);
    size_t expect = 0;
    for (int i = 0; i < n; i++) {
        const au_tensor *t = st_get(st, specs[i].name);
        t = t ? t : st_get(st, specs[i].alt_name);
        expect += t ? be->ops->weight_bytes(be, t, specs[i].kind) : 0;
    }
    CHECK(bytes == expect && bytes > 0);
    au_arena *arena = be_arena_create(be, bytes);
    int rc = weights_load(be, arena, st, specs, n, &err);
    CHECK(rc == 0);
    if (rc < 0)
        fprintf(stderr, "load: %s\n", err.msg);
    CHECK(be_arena_used(arena) <= bytes);
    if (rc == 0) {
        float v[6];
        f32_of(v, &lin);
        CHECK(lin.ndim == 2 && lin.shape[0] == 2 && v[5] == 6.0f);
        f32_of(v, &off);
        CHECK(off.shape[0] == 3 && v[0] == -1.0f && v[5] == 16.0f);
        CHECK(norm.dtype == AU_F32 && ((float *)norm.data)[2] == 1000.0f && ((float *)norm.data)[0] == 0.25f);
        /* f8: the data as stored, the per-row scale from "<name>.scale". */
        CHECK(q.dtype == AU_F8_E4M3 && q.scale != NULL);
        if (q.scale) {
            CHECK(((float *)q.scale)[0] == 0.5f && ((float *)q.scale)[1] == 2.0f);
            CHECK(au_f8e4m3_to_f32(((uint8_t *)q.data)[3]) * ((float *)q.scale)[1] == 896.0f);
        }
        /* A bf16 scalar "<stem>.scale_weight" broadcast to every row. */
        CHECK(k.scale && ((float *)k.scale)[0] == 0.125f && ((float *)k.scale)[1] == 0.125f);
        /* Unscaled f8 is a plain cast. */
        CHECK(plain.scale && ((float *)plain.scale)[0] == 1.0f);
        CHECK(au_f8e4m3_to_f32(((uint8_t *)plain.data)[1]) == -6.0f);
        CHECK(opt.data == NULL && opt.ndim == 0);
    }

    /* First problem named, nothing loaded. */
    au_tensor dst = opt_sentinel;
    au_weight_spec bad[4];
    int nb = 0;
    weights_add(bad, &nb, 4, &dst, AU_W_MATRIX, 2, s23, "lin.weight");
    weights_add(bad, &nb, 4, &dst, AU_W_MATRIX, 2, s23, "blocks.%d.ffn.0.weight", 3);
    CHECK_MSG(weights_check(st, bad, nb, &err), AU_ENOTFOUND, "tensor blocks.3.ffn.0.weight: missing");
    snprintf(bad[1].alt_name, sizeof bad[1].alt_name, "blocks.3.ffn.fc1");
    CHECK_MSG(weights_check(st, bad, nb, &err), AU_ENOTFOUND,
              "tensor blocks.3.ffn.0.weight: missing (nor found as blocks.3.ffn.fc1)");
    CHECK_MSG(weights_load(be, arena, st, bad, nb, &err), AU_ENOTFOUND,
              "tensor blocks.3.ffn.0.weight: missing (nor found as blocks.3.ffn.fc1)");
    CHECK(dst.data == (void *)1); /* the first, valid entry was not loaded either */

    nb = 0;
    weights_add(bad, &nb, 4, &dst, AU_W_MATRIX, 2, s32, "lin.weight");
    CHECK_MSG(weights_check(st, bad, nb, &err), AU_EFORMAT, "tensor lin.weight: expected [3,2], found [2,3] f32");
    nb = 0;
    weights_add(bad, &nb, 4, &dst, AU_W_VECTOR, 1, s3, "lin.weight");
    CHECK_MSG(weights_check(st, bad, nb, &err), AU_EFORMAT, "tensor lin.weight: expected [3], found [2,3] f32");
    nb = 0;
    weights_add(bad, &nb, 4, &dst, AU_W_VECTOR, 1, (int64_t[]){2}, "ids");
    CHECK_MSG(weights_check(st, bad, nb, &err), AU_EFORMAT,
              "tensor ids: dtype i32 is not a weight type (f32, f16, bf16, f8_e4m3)");
    nb = 0;
    weights_add(bad, &nb, 4, &dst, AU_W_MATRIX, 2, s22, "bad.weight");
    CHECK_MSG(weights_check(st, bad, nb, &err), AU_EFORMAT,
              "tensor bad.weight.scale: expected a scalar or [2] scale, found [3] f32");
    /* An optional entry that is present is still checked. */
    nb = 0;
    weights_add(bad, &nb, 4, &dst, AU_W_MATRIX, 2, s32, "lin.weight")->optional = 1;
    CHECK(weights_check(st, bad, nb, &err) == AU_EFORMAT);

    /* A full table refuses more entries. */
    nb = 4;
    CHECK(weights_add(bad, &nb, 4, &dst, AU_W_MATRIX, 2, s23, "x") == NULL && nb == 4);

    be_arena_destroy(arena);
    be_destroy(be);
    st_close(st);
    unlink(path);
    if (g_failures) {
        fprintf(stderr, "%d check(s) failed\n", g_failures);
        return 1;
    }
    printf("test_weights: all checks passed\n");
    return 0;
}
