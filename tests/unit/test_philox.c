// deps: au_sampler au_core
/* test_philox.c - Philox4x32-10 known answers and the noise it makes.
 *
 * Known answers: the three "philox4x32 10" lines of Random123's tests/kat_vectors
 * (counter[4], key[2] -> output[4]). Noise: 1e6 normals have mean ~0, std ~1,
 * the right tail mass and kurtosis; any slice (seed, offset, n) equals the same
 * elements of a longer draw; different seeds give different streams.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "philox.h"
#include "check.h"

static void test_kat(void) {
    static const struct {
        uint32_t ctr[4], key[2], want[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t k = 0; k < sizeof kat / sizeof kat[0]; k++) {
        uint32_t out[4];
        philox4x32_10(kat[k].ctr, kat[k].key, out);
        CHECK(memcmp(out, kat[k].want, sizeof out) == 0, "KAT %zu: got %08x %08x %08x %08x", k, out[0], out[1],
              out[2], out[3]);
    }
}

static void test_statistics(void) {
    const size_t n = 1000000;
    float *z = malloc(n * sizeof *z);
    philox_normal_f32(20240611, 0, z, n);
    double sum = 0, sum2 = 0, sum4 = 0, lo = 0, hi = 0;
    size_t beyond3 = 0, finite = 0;
    for (size_t i = 0; i < n; i++) {
        double v = z[i];
        finite += isfinite(v) != 0;
        sum += v;
        sum2 += v * v;
        sum4 += v * v * v * v;
        beyond3 += fabs(v) > 3.0;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    double mean = sum / n, var = sum2 / n - mean * mean, kurt = sum4 / n / (var * var);
    double tail = (double)beyond3 / n;
    printf("philox normals: n=%zu mean=%.5f std=%.5f kurtosis=%.4f P(|z|>3)=%.5f min=%.3f max=%.3f\n", n, mean,
           sqrt(var), kurt, tail, lo, hi);
    CHECK(finite == n, "%zu of %zu finite", finite, n);
    /* Bounds at ~5 standard errors: mean 1e-3, std 7e-4, kurtosis 2.4e-3*5, tail 5e-5*5. */
    CHECK(fabs(mean) < 5e-3, "mean %g", mean);
    CHECK(fabs(sqrt(var) - 1.0) < 4e-3, "std %g", sqrt(var));
    CHECK(fabs(kurt - 3.0) < 0.03, "kurtosis %g", kurt);
    CHECK(fabs(tail - 0.0026998) < 3e-4, "P(|z|>3) %g", tail);
    CHECK(lo < -4.0 && hi > 4.0, "range [%g, %g] too narrow for 1e6 normals", lo, hi);
    /* Neighbours (the cos/sin pair of one counter) must be uncorrelated too. */
    double cov = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        cov += (double)z[i] * z[i + 1];
    cov /= n / 2;
    CHECK(fabs(cov) < 7e-3, "pair correlation %g", cov);
    free(z);
}

static void test_slices(void) {
    enum { N = 1000 };
    float full[N], part[N];
    const uint64_t seed = 0xfedcba9876543210ull;
    philox_normal_f32(seed, 0, full, N);
    static const size_t slices[][2] = {{0, 1}, {1, 1}, {7, 100}, {8, 99}, {333, 667}, {999, 1}, {2, 0}};
    for (size_t k = 0; k < sizeof slices / sizeof slices[0]; k++) {
        size_t off = slices[k][0], n = slices[k][1];
        memset(part, 0, sizeof part);
        philox_normal_f32(seed, off, part, n);
        CHECK(memcmp(part, full + off, n * sizeof(float)) == 0, "slice offset %zu n %zu differs", off, n);
    }
    /* Offsets past 2^32 use the counter's high word. */
    float a[5], b[3];
    uint64_t big = (1ull << 32) * 3 + 11;
    philox_normal_f32(seed, big, a, 5);
    philox_normal_f32(seed, big + 2, b, 3);
    CHECK(memcmp(a + 2, b, sizeof b) == 0, "slice past 2^32 differs");
    float c[5];
    philox_normal_f32(seed, big - (1ull << 33), c, 5); /* same low word, other high word */
    CHECK(memcmp(a, c, sizeof c) != 0, "high counter word ignored");
    /* The seed's high and low words both matter. */
    float d[8], e[8], f[8];
    philox_normal_f32(1, 0, d, 8);
    philox_normal_f32(1 | (1ull << 32), 0, e, 8);
    philox_normal_f32(2, 0, f, 8);
    CHECK(memcmp(d, e, sizeof d) != 0, "seed high word ignored");
    CHECK(memcmp(d, f, sizeof d) != 0, "seed low word ignored");
}

int main(void) {
    test_kat();
    test_statistics();
    test_slices();
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("test_philox: all passed\n");
    return 0;
}
