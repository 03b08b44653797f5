/* philox.h - counter-based random numbers (Philox4x32-10) and the job's noise.
 *
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11; the Random123 library): a 128-bit counter and a 64-bit key give 128
 * random bits through 10 rounds of
 *   (c0, c1, c2, c3) -> (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))
 * with M0 = 0xD2511F53, M1 = 0xCD9E8D57, the key bumped by (0x9E3779B9, 0xBB67AE85)
 * before every round after the first.
 *
 * Noise mapping (philox_normal_f32), so any backend or rank can draw any slice:
 *   key     = (k0, k1) = (seed & 0xffffffff, seed >> 32)
 *   element g = offset + i (64-bit) uses counter c = g >> 1 laid out as
 *           (c & 0xffffffff, c >> 32, 0, 0) -> words (r0, r1, r2, r3)
 *   u1 = ((r0 << 21 | r1 >> 11) + 1) * 2^-53   in (0, 1]   (53 random bits)
 *   u2 =  (r2 << 21 | r3 >> 11)      * 2^-53   in [0, 1)
 *   Box-Muller in float64: rad = sqrt(-2 ln u1), theta = 2 pi u2;
 *   even g -> rad * cos(theta), odd g -> rad * sin(theta); rounded to float32.
 * Using 53-bit uniforms (not 32-bit) keeps the tails right down to ~8.6 sigma.
 * Results are bit-identical wherever libm's log/sqrt/sin/cos agree in float64
 * (a 1-ulp float64 difference changes the float32 only on a rounding tie-break,
 * ~1e-8 of elements). tools/reference/sampler_ref.py has the numpy twin.
 */
#ifndef AU_PHILOX_H
#define AU_PHILOX_H

#include <stddef.h>
#include <stdint.h>

/* One Philox4x32-10 block: out = philox(ctr, key). */
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* out[i] = standard normal number g = offset + i of stream `seed`, i < n (mapping above). */
void philox_normal_f32(uint64_t seed, uint64_t offset, float *out, size_t n);

#endif
