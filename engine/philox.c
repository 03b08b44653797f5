/* philox.c - Philox4x32-10 and Box-Muller normals; the mapping is in philox.h. */
#include "philox.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* The two normals of counter c: z[0] = rad cos(theta), z[1] = rad sin(theta). */
static void normal_pair(const uint32_t key[2], uint64_t c, float z[2]) {
    const uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0};
    uint32_t r[4];
    philox4x32_10(ctr, key, r);
    uint64_t a = ((uint64_t)r[0] << 21) | (r[1] >> 11);
    uint64_t b = ((uint64_t)r[2] << 21) | (r[3] >> 11);
    double u1 = (double)(a + 1) * 0x1p-53;
    double u2 = (double)b * 0x1p-53;
    double rad = sqrt(-2.0 * log(u1));
    double theta = (2.0 * M_PI) * u2;
    z[0] = (float)(rad * cos(theta));
    z[1] = (float)(rad * sin(theta));
}

void philox_normal_f32(uint64_t seed, uint64_t offset, float *out, size_t n) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    size_t i = 0;
    float z[2];
    if (n > 0 && (offset & 1)) { /* odd start: the sine half of the first pair */
        normal_pair(key, offset >> 1, z);
        out[i++] = z[1];
    }
    for (; i + 1 < n; i += 2) {
        normal_pair(key, (offset + i) >> 1, z);
        out[i] = z[0];
        out[i + 1] = z[1];
    }
    if (i < n) {
        normal_pair(key, (offset + i) >> 1, z);
        out[i] = z[0];
    }
}
