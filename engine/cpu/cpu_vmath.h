/* cpu_vmath.h - 16-lane float vectors (GCC vector extensions) and the vector
 * math the CPU backend's hot loops share, plus run-time ISA dispatch.
 *
 * Vector code is written once as an always-inline body and compiled three times
 * on x86-64 by CPU_SIMD_VARIANTS: AVX-512, AVX2+FMA and the baseline, picked by
 * CPU feature tests at run time (feature tests rather than target_clones "arch="
 * variants, which only match Intel models). Elsewhere (aarch64) only the
 * baseline exists and the compiler maps the vectors to NEON.
 *
 * vf_exp: exp(x) = 2^n p(r), n = round(x log2 e), r = x - n ln 2 (ln 2 split
 * in two parts), p the Cephes expf polynomial; x clamped to [-87, 88] so 2^n
 * stays a normal float, and exactly 0 below -87 (where expf is denormal, under
 * 1.2e-38). Relative error about 2e-7 elsewhere. Vectors go by pointer:
 * returning a 64-byte vector by value raises an ABI warning on the baseline
 * target, and these helpers are always inlined anyway.
 */
#ifndef AU_CPU_VMATH_H
#define AU_CPU_VMATH_H

#include <stdint.h>

#define VF_LANES 16
typedef float vf __attribute__((vector_size(VF_LANES * 4)));
typedef int32_t vi __attribute__((vector_size(VF_LANES * 4)));

#define VF_INLINE static inline __attribute__((always_inline))

/* *acc = max(*acc, *v) lane by lane. */
VF_INLINE void vf_max_into(vf *acc, const vf *v) {
    vi take_v = *v > *acc;
    *acc = (vf)(((vi)*v & take_v) | ((vi)*acc & ~take_v));
}

VF_INLINE void vf_exp_inplace(vf *px) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    vf x = (vf){0} - 87.0f, hi = (vf){0} + 88.0f;
    vf_max_into(&x, px);
    vi over = x > hi;
    x = (vf)(((vi)hi & over) | ((vi)x & ~over));
    vf t = x * 1.44269504088896341f + magic;
    vf n = t - magic;
    vf r = x - n * 0.693359375f + n * 2.12194440e-4f;
    vf p = (vf){0} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    vi e = ((vi)t - (vi)((vf){0} + magic) + 127) << 23;
    vi under = *px < -87.0f; /* exp underflows: exactly 0 rather than exp(-87) */
    *px = (vf)((vi)(p * (vf)e) & ~under);
}

/* 1 / (1 + e^-z) without overflow: with e = exp(-|z|) <= 1, it is 1/(1+e) for z >= 0
 * and e/(1+e) for z < 0. */
VF_INLINE void vf_sigmoid_inplace(vf *pz) {
    vi neg = *pz < 0.0f;
    vf e = (vf)((vi)*pz | ((vi){0} + INT32_MIN)); /* -|z|: set the sign bit */
    vf_exp_inplace(&e);
    vf pos = 1.0f / (1.0f + e);
    vf negv = e * pos;
    *pz = (vf)(((vi)negv & neg) | ((vi)pos & ~neg));
}

#if defined(__x86_64__) && defined(__GNUC__)
#define CPU_SIMD_X86 1
#else
#define CPU_SIMD_X86 0
#endif

/* Defines `static void name params` that calls name##_body args compiled for the best
 * ISA of the running CPU. name##_body must be a VF_INLINE void function. */
#if CPU_SIMD_X86
#define CPU_SIMD_VARIANTS(name, params, args)                                                                \
    static void name##_generic params {                                                                      \
        name##_body args;                                                                                    \
    }                                                                                                        \
    __attribute__((target("avx512f,avx2,fma"))) static void name##_avx512 params {                           \
        name##_body args;                                                                                    \
    }                                                                                                        \
    __attribute__((target("avx2,fma"))) static void name##_avx2 params {                                     \
        name##_body args;                                                                                    \
    }                                                                                                        \
    static void name params {                                                                                \
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))                              \
            name##_avx512 args;                                                                              \
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))                            \
            name##_avx2 args;                                                                                \
        else                                                                                                 \
            name##_generic args;                                                                             \
    }
#else
#define CPU_SIMD_VARIANTS(name, params, args)                                                                \
    static void name params {                                                                                \
        name##_body args;                                                                                    \
    }
#endif

#endif
