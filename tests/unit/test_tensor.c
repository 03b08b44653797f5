// deps: au_core
/* test_tensor.c - tensor descriptors, views, reshape and dtype conversions.
 *
 * Conversions are checked exhaustively where the format is small (every bf16,
 * f16 and f8 code round-trips) and against an independent brute-force nearest-
 * value search with ties to even for f8, and against the compiler's _Float16
 * for f16 when it has one.
 */
#include "tensor.h"
#include "status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* e4m3fn value of a code from first principles, in double. */
static double f8_ref(int code) {
    int s = code >> 7, e = (code >> 3) & 15, m = code & 7;
    double v = e == 0 ? ldexp(m / 8.0, -6) : ldexp(1.0 + m / 8.0, e - 7);
    return s ? -v : v;
}

/* Nearest finite e4m3 code to x, ties to the even code, saturating at 448. */
static uint8_t f8_encode_ref(float x) {
    double ax = fabs((double)x);
    int best = 0;
    double best_d = INFINITY;
    for (int c = 0; c < 0x7f; c++) { /* 0x7f is NaN */
        double d = fabs(f8_ref(c) - ax);
        if (d < best_d || (d == best_d && (c & 1) == 0)) {
            best = c;
            best_d = d;
        }
    }
    if (ax >= 448.0)
        best = 0x7e;
    return (uint8_t)(best | (signbit(x) ? 0x80 : 0));
}

static void test_dtypes(void) {
    CHECK(au_dtype_size(AU_F32) == 4 && au_dtype_size(AU_BF16) == 2 && au_dtype_size(AU_F16) == 2 &&
              au_dtype_size(AU_F8_E4M3) == 1 && au_dtype_size(AU_I64) == 8 && au_dtype_size(AU_I32) == 4 &&
              au_dtype_size(AU_U8) == 1,
          "dtype sizes");
    const char *names[] = {"F32", "F16", "BF16", "F8_E4M3", "I32", "I64", "U8"};
    au_dtype want[] = {AU_F32, AU_F16, AU_BF16, AU_F8_E4M3, AU_I32, AU_I64, AU_U8};
    for (int i = 0; i < 7; i++) {
        au_dtype d = AU_DTYPE_COUNT;
        CHECK(au_dtype_from_name(names[i], &d) == 0 && d == want[i], "from_name %s", names[i]);
    }
    au_dtype d;
    CHECK(au_dtype_from_name("F64", &d) == AU_EFORMAT, "F64 rejected");
    CHECK(au_dtype_from_name("bf16", &d) == AU_EFORMAT, "names are case-sensitive");
    CHECK(strcmp(au_dtype_name(AU_BF16), "bf16") == 0 && strcmp(au_dtype_name(AU_F8_E4M3), "f8_e4m3") == 0,
          "dtype names");
}

static void test_bf16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = au_bf16_to_f32((uint16_t)h);
        if (isnan(f))
            continue;
        if (au_f32_to_bf16(f) != h)
            bad++;
    }
    CHECK(bad == 0, "%d bf16 codes do not round-trip", bad);
    CHECK(au_f32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3f80, "tie 1+2^-8 goes to even 1.0");
    CHECK(au_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)) == 0x3f82, "tie 1+3*2^-8 goes to even 1+2^-6");
    CHECK(au_f32_to_bf16(1.0f + ldexpf(1.0f, -8) + ldexpf(1.0f, -20)) == 0x3f81, "above the tie rounds up");
    CHECK(isnan(au_bf16_to_f32(au_f32_to_bf16(NAN))), "NaN stays NaN");
    CHECK(au_bf16_to_f32(au_f32_to_bf16(INFINITY)) == INFINITY, "inf stays inf");
    CHECK(au_bf16_to_f32(au_f32_to_bf16(-2.5f)) == -2.5f, "-2.5");
}

static void test_f16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = au_f16_to_f32((uint16_t)h);
        if (isnan(f))
            continue;
        if (au_f32_to_f16(f) != h)
            bad++;
    }
    CHECK(bad == 0, "%d f16 codes do not round-trip", bad);
    CHECK(au_f16_to_f32(0x3c00) == 1.0f && au_f16_to_f32(0xc000) == -2.0f &&
              au_f16_to_f32(0x7bff) == 65504.0f,
          "f16 decode of 1, -2, max");
    CHECK(au_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "smallest subnormal");
    CHECK(au_f32_to_f16(65519.0f) == 0x7bff, "65519 -> 65504");
    CHECK(au_f32_to_f16(65520.0f) == 0x7c00, "65520 -> inf");
    CHECK(au_f32_to_f16(ldexpf(1.0f, -25)) == 0x0000, "2^-25 ties to even 0");
    CHECK(au_f32_to_f16(3 * ldexpf(1.0f, -25)) == 0x0002, "3*2^-25 ties to even 2*2^-24");
    CHECK(au_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00, "tie 1+2^-11 goes to even 1.0");
    CHECK(au_f32_to_f16(-INFINITY) == 0xfc00, "-inf");
    CHECK(isnan(au_f16_to_f32(au_f32_to_f16(NAN))), "NaN stays NaN");
#ifdef __FLT16_MAX__
    int mismatch = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = rng_u32();
        u = (u & 0x80000000u) | (0x30000000u + u % 0x18000000u); /* magnitudes ~2^-31 .. 2^17 */
        float f;
        memcpy(&f, &u, 4);
        _Float16 ref = (_Float16)f;
        uint16_t rb;
        memcpy(&rb, &ref, 2);
        if (au_f32_to_f16(f) != rb)
            mismatch++;
    }
    CHECK(mismatch == 0, "%d of 2M random floats differ from the compiler's _Float16", mismatch);
#endif
}

static void test_f8(void) {
    int bad_decode = 0, bad_trip = 0;
    for (int c = 0; c < 256; c++) {
        float f = au_f8e4m3_to_f32((uint8_t)c);
        if ((c & 0x7f) == 0x7f) {
            CHECK(isnan(f), "code 0x%02x must be NaN", c);
            continue;
        }
        if ((double)f != f8_ref(c))
            bad_decode++;
        if (au_f32_to_f8e4m3(f) != c)
            bad_trip++;
    }
    CHECK(bad_decode == 0, "%d f8 codes decode wrongly", bad_decode);
    CHECK(bad_trip == 0, "%d f8 codes do not round-trip", bad_trip);
    CHECK(au_f8e4m3_to_f32(0x7e) == 448.0f && au_f8e4m3_to_f32(0x01) == ldexpf(1.0f, -9) &&
              au_f8e4m3_to_f32(0x08) == ldexpf(1.0f, -6),
          "max, min subnormal, min normal");
    CHECK(au_f32_to_f8e4m3(448.0f) == 0x7e && au_f32_to_f8e4m3(464.0f) == 0x7e &&
              au_f32_to_f8e4m3(1e6f) == 0x7e,
          "saturate to 448");
    CHECK(au_f32_to_f8e4m3(INFINITY) == 0x7e && au_f32_to_f8e4m3(-INFINITY) == 0xfe, "inf saturates");
    CHECK(isnan(au_f8e4m3_to_f32(au_f32_to_f8e4m3(NAN))), "NaN stays NaN");
    CHECK(au_f32_to_f8e4m3(ldexpf(1.0f, -10)) == 0x00, "2^-10 ties to even 0");
    CHECK(au_f32_to_f8e4m3(3 * ldexpf(1.0f, -10)) == 0x02, "3*2^-10 ties to even 2*2^-9");
    CHECK(au_f32_to_f8e4m3(-0.0f) == 0x80, "-0");
    CHECK(au_f32_to_f8e4m3(1.0625f) == 0x38, "tie 1+1/16 goes to even 1.0");
    CHECK(au_f32_to_f8e4m3(1.1875f) == 0x3a, "tie 1+3/16 goes to even 1.25");
    int mismatch = 0;
    for (int i = 0; i < 200000; i++) {
        uint32_t u = rng_u32();
        u = (u & 0x80000000u) | (0x37000000u + u % 0x0d000000u); /* magnitudes ~2^-17 .. 2^10 */
        float f;
        memcpy(&f, &u, 4);
        if (au_f32_to_f8e4m3(f) != f8_encode_ref(f))
            mismatch++;
    }
    /* exact ties too: midpoints of every pair of neighbouring codes */
    for (int c = 0; c < 0x7e; c++) {
        float mid = (float)((f8_ref(c) + f8_ref(c + 1)) / 2);
        if (au_f32_to_f8e4m3(mid) != f8_encode_ref(mid))
            mismatch++;
    }
    CHECK(mismatch == 0, "%d f8 encodings differ from the brute-force nearest-even reference", mismatch);
}

static void test_arrays(void) {
    float src[7] = {0.0f, 1.0f, -1.5f, 3.140625f, 1e-3f, -65504.0f, 100.0f}, back[7];
    uint16_t h[7];
    CHECK(au_convert_from_f32(h, AU_BF16, src, 7) == 0, "to bf16");
    CHECK(au_convert_to_f32(back, h, AU_BF16, 7) == 0, "from bf16");
    for (int i = 0; i < 7; i++)
        CHECK(back[i] == au_bf16_to_f32(au_f32_to_bf16(src[i])), "bf16 array element %d", i);
    CHECK(au_convert_from_f32(h, AU_F16, src, 7) == 0 && au_convert_to_f32(back, h, AU_F16, 7) == 0,
          "f16 arrays");
    for (int i = 0; i < 7; i++)
        CHECK(back[i] == au_f16_to_f32(au_f32_to_f16(src[i])), "f16 array element %d", i);
    int32_t ints[3] = {-3, 0, 70000};
    CHECK(au_convert_to_f32(back, ints, AU_I32, 3) == 0 && back[0] == -3.0f && back[2] == 70000.0f,
          "i32 to f32");
    int32_t out[3];
    CHECK(au_convert_from_f32(out, AU_I32, src, 3) == AU_EINVAL, "f32 to i32 is refused");
}

static void test_views(void) {
    float data[24];
    float scale[4] = {1, 2, 3, 4};
    int64_t shape[3] = {4, 3, 2};
    au_tensor t = au_tensor_make(AU_F32, data, 3, shape);
    CHECK(au_numel(&t) == 24 && au_nbytes(&t) == 96 && au_rows(&t) == 12, "numel/nbytes/rows");
    au_tensor v = au_view_rows(&t, 1, 2);
    CHECK(v.data == data + 6 && v.shape[0] == 2 && v.shape[1] == 3 && v.ndim == 3, "view rows");
    au_tensor q = au_tensor_make(AU_F8_E4M3, data, 3, shape);
    q.scale = scale;
    au_tensor qv = au_view_rows(&q, 3, 1);
    CHECK(qv.data == (uint8_t *)data + 18 && qv.scale == scale + 3, "f8 view moves data and scale");
    int64_t flat[2] = {8, 3};
    au_tensor r;
    CHECK(au_reshape(&t, 2, flat, &r) == 0 && r.ndim == 2 && r.shape[0] == 8 && r.data == data, "reshape");
    int64_t wrong[2] = {5, 5};
    au_tensor keep = r;
    CHECK(au_reshape(&t, 2, wrong, &r) == -1 && memcmp(&keep, &r, sizeof r) == 0,
          "bad reshape leaves out alone");
    CHECK(au_same_shape(&t, &t) && !au_same_shape(&t, &r), "same_shape");
    char buf[64];
    int64_t s4[4] = {16, 21, 60, 104};
    au_tensor big = au_tensor_make(AU_F32, NULL, 4, s4);
    CHECK(strcmp(au_shape_str(&big, buf, sizeof buf), "[16,21,60,104] f32") == 0, "shape_str gave %s", buf);
    char tiny[6];
    au_shape_str(&big, tiny, sizeof tiny);
    CHECK(strlen(tiny) == 5, "shape_str truncates safely");
}

int main(void) {
    test_dtypes();
    test_bf16();
    test_f16();
    test_f8();
    test_arrays();
    test_views();
    if (failures) {
        fprintf(stderr, "test_tensor: %d failures\n", failures);
        return 1;
    }
    printf("test_tensor: ok\n");
    return 0;
}
