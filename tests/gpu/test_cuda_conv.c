// deps: au_cuda au_cpu au_core
/* test_cuda_conv.c - the CUDA backend's conv3d (implicit-GEMM kernel, kernels/cuda_conv.cu)
 * against the float32 CPU backend on odd shapes: input channels that are not a multiple of the
 * kernel's 32-channel k step, output channels that leave a block partly empty (3, 40, 72, 200)
 * or span several blocks (384), position counts that are odd or not a multiple of the 128-wide
 * tile (scalar stores at the row ends), every padding and stride the VAE uses (causal 3x3x3 over
 * a history, 1x3x3 with stride 2 and right/bottom padding, 3x1x1 with time stride 2, 1x1x1),
 * kernels larger than one side of the input, f32 inputs and outputs, f8 weights with per-row
 * scales, and a case without bias; widths that are multiples of 8 (the 16-byte gather path,
 * edges included: padding 1, 3 and 7, groups of 8 cut by both edges at once) and other widths
 * (the 2-byte path). Outputs are poisoned first, so an element left unwritten
 * fails; inputs are fresh random values per case. Tolerance: bf16 level, 1e-2 relative l2
 * (the kernel multiplies bf16 operands with float32 accumulation; an f32 x is rounded to bf16).
 */
#include "test_cuda_util.h"

typedef struct conv_case {
    int64_t cin, t, h, w, cout;
    int kt, kh, kw;
    int stride[3], pad[6];
    au_dtype x_dt, w_dt, y_dt;
    int bias;
} conv_case;

static int64_t conv_out(int64_t in, int k, int s, int p0, int p1) { return (in + p0 + p1 - k) / s + 1; }

static void run_case(tctx *T, const conv_case *c, size_t i) {
    int64_t to = conv_out(c->t, c->kt, c->stride[0], c->pad[0], c->pad[1]);
    int64_t ho = conv_out(c->h, c->kh, c->stride[1], c->pad[2], c->pad[3]);
    int64_t wo = conv_out(c->w, c->kw, c->stride[2], c->pad[4], c->pad[5]);
    float w_amp = 1.0f / sqrtf((float)(c->cin * c->kt * c->kh * c->kw));
    pair w = in_pair(T, c->w_dt, SHAPE(c->cout, c->cin, c->kt, c->kh, c->kw), 2.0f * w_amp);
    pair x = in_pair(T, c->x_dt, SHAPE(c->cin, c->t, c->h, c->w), 1.0f);
    pair b = in_pair(T, AU_F32, SHAPE(c->cout), 0.5f);
    pair y = out_pair(T, c->y_dt, SHAPE(c->cout, to, ho, wo));
    au_err err = {0};
    int rc = be_conv3d(T->gpu, &y.g, &x.g, &w.g, c->bias ? &b.g : NULL, c->stride, c->pad, &err);
    CHECK(rc == 0, "[%s] conv3d case %zu: %s", T->name, i, err.msg);
    MUST(be_conv3d(T->cpu, &y.c, &x.c, &w.c, c->bias ? &b.c : NULL, c->stride, c->pad, err));
    char what[200];
    snprintf(what, sizeof what, "x [%lld,%lld,%lld,%lld] %s k %dx%dx%d s %d%d%d p %d%d%d%d%d%d -> %lld %s w %s%s",
             (long long)c->cin, (long long)c->t, (long long)c->h, (long long)c->w, au_dtype_name(c->x_dt), c->kt, c->kh,
             c->kw, c->stride[0], c->stride[1], c->stride[2], c->pad[0], c->pad[1], c->pad[2], c->pad[3], c->pad[4],
             c->pad[5], (long long)c->cout, au_dtype_name(c->y_dt), au_dtype_name(c->w_dt), c->bias ? "" : " no bias");
    compare(T, what, &y, TOL_BF16);
}

static void test_shapes(tctx *T) {
    static const conv_case cases[] = {
        /* causal 3x3x3 over [history, x]: 40 channels (a partial k step), 72 outputs (a padded block) */
        {40, 5, 13, 17, 72, 3, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        /* the VAE's level-3 width, an odd position count (3 x 9 x 31 = 837) */
        {96, 5, 9, 31, 96, 3, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        /* several output blocks (384 = 3 x 128) and k steps over 192 channels x 27 taps */
        {192, 4, 20, 28, 384, 3, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        /* 200 outputs: two 128-row blocks, the second mostly empty; causal time padding */
        {64, 3, 7, 11, 200, 3, 3, 3, {1, 1, 1}, {2, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        /* upsample's conv2d 1x3x3, and the head's 3 outputs */
        {48, 3, 10, 14, 24, 1, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        {96, 4, 11, 13, 3, 3, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        /* down2d: zero pad right and bottom, stride 2 over odd sides */
        {24, 3, 17, 23, 24, 1, 3, 3, {1, 2, 2}, {0, 0, 0, 1, 0, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        /* down3d's time conv 3x1x1 stride 2; up3d's 3x1x1 C -> 2C */
        {33, 5, 6, 7, 40, 3, 1, 1, {2, 1, 1}, {0, 0, 0, 0, 0, 0}, AU_BF16, AU_BF16, AU_BF16, 1},
        {48, 4, 5, 9, 96, 3, 1, 1, {1, 1, 1}, {0, 0, 0, 0, 0, 0}, AU_BF16, AU_BF16, AU_BF16, 0},
        /* 1x1x1: the shortcut (bf16) and the latent denormalisation (f32 in and out, 16 x 16) */
        {24, 2, 5, 7, 48, 1, 1, 1, {1, 1, 1}, {0, 0, 0, 0, 0, 0}, AU_BF16, AU_BF16, AU_BF16, 1},
        {16, 1, 6, 10, 16, 1, 1, 1, {1, 1, 1}, {0, 0, 0, 0, 0, 0}, AU_F32, AU_F32, AU_F32, 1},
        /* the encoder's first conv: 3 channels, f32 x, f32 y */
        {3, 5, 6, 6, 8, 3, 3, 3, {1, 1, 1}, {2, 0, 1, 1, 1, 1}, AU_F32, AU_BF16, AU_F32, 0},
        /* a kernel wider than the input (1 x 2 x 2 under a 3x3 kernel, padding keeps it valid) */
        {8, 3, 2, 2, 8, 3, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        /* widths that are multiples of 8 take the 16-byte gather (shifted by the tap, element by
         * element where a group of 8 crosses the left or right edge): the same kinds of shapes */
        {96, 6, 12, 32, 96, 3, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        {40, 5, 7, 16, 72, 3, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        {192, 4, 10, 24, 384, 3, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        {48, 4, 5, 8, 96, 3, 1, 1, {1, 1, 1}, {0, 0, 0, 0, 0, 0}, AU_BF16, AU_BF16, AU_BF16, 1},
        {48, 3, 10, 16, 24, 1, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        {96, 4, 6, 8, 3, 3, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1},
        {20, 4, 3, 24, 40, 3, 3, 3, {1, 1, 1}, {2, 0, 1, 1, 1, 1}, AU_F32, AU_BF16, AU_F32, 1},
        {16, 5, 9, 16, 32, 3, 3, 3, {2, 2, 1}, {1, 1, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 0},
        {24, 3, 4, 8, 40, 3, 3, 3, {1, 1, 1}, {0, 0, 2, 2, 3, 7}, AU_BF16, AU_F8_E4M3, AU_BF16, 1},
        /* f8 weights with per-output-row scales; strides in all three dims */
        {32, 4, 9, 11, 64, 3, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_F8_E4M3, AU_BF16, 1},
        {16, 7, 9, 10, 32, 3, 3, 3, {2, 2, 3}, {1, 1, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_F32, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(T, &cases[i], i);
}

/* The same op twice on fresh data at the same shapes: the packed weights in scratch are
 * rebuilt per call, so the second result must follow the second weights. */
static void test_repeat(tctx *T) {
    conv_case c = {40, 4, 9, 12, 72, 3, 3, 3, {1, 1, 1}, {0, 0, 1, 1, 1, 1}, AU_BF16, AU_BF16, AU_BF16, 1};
    run_case(T, &c, 100);
    run_case(T, &c, 101);
}

static void test_errors(tctx *T) {
    pair x = in_pair(T, AU_BF16, SHAPE(8, 3, 5, 5), 1.0f);
    pair w = in_pair(T, AU_BF16, SHAPE(4, 8, 3, 3, 3), 0.1f);
    pair y = out_pair(T, AU_BF16, SHAPE(4, 1, 5, 4));
    int stride[3] = {1, 1, 1}, pad[6] = {0, 0, 1, 1, 1, 1};
    au_err err = {0};
    int rc = be_conv3d(T->gpu, &y.g, &x.g, &w.g, NULL, stride, pad, &err);
    CHECK(rc == AU_EINVAL && strstr(err.msg, "expected [4,1,5,5]"), "[%s] conv3d with a wrong y: rc %d, %s", T->name,
          rc, err.msg);
    pair y8 = out_pair(T, AU_F8_E4M3, SHAPE(4, 1, 5, 5));
    rc = be_conv3d(T->gpu, &y8.g, &x.g, &w.g, NULL, stride, pad, &err);
    CHECK(rc == AU_EINVAL && strstr(err.msg, "conv3d"), "[%s] conv3d into f8: rc %d, %s", T->name, rc, err.msg);
    printf("  ok   [%s] conv3d refuses a wrong output shape and an f8 output\n", T->name);
}

static void run_all(tctx *T) {
    test_shapes(T);
    test_repeat(T);
    test_errors(T);
}

int main(void) { return run_precisions(run_all); }
