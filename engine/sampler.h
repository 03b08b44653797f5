/* sampler.h - flow-matching samplers of Wan2.1: UniPC (the official default) and Euler.
 *
 * Schedule, bit-exact with the official FlowUniPCMultistepScheduler as
 * wan/text2video.py sets it up (1000 training steps, set_timesteps(n, shift)):
 *   sigma_max = float32(1 - 1/1000), s_i = sigma_max + i * (0 - sigma_max)/n  (float64, i < n,
 *   numpy linspace), s'_i = shift*s_i / (1 + (shift-1)*s_i) (float64),
 *   timestep t_i = int64(s'_i * 1000) (truncated; the DiT's t), sigma_i = float32(s'_i),
 *   sigma_n = 0.
 * The float shift is widened to the shortest decimal that names it (3.3f -> 3.3), the value
 * the official code gets from the same number typed as a Python float.
 *
 * The model predicts a velocity v (x_t = (1 - sigma) x0 + sigma noise, v = noise - x0).
 *   Euler: x_{i+1} = x_i + (sigma_{i+1} - sigma_i) v_i.
 *   UniPC: bh2 predictor-corrector of order 2 on the data prediction m_i = x_i - sigma_i v_i,
 *   with lambda = log(1 - sigma) - log(sigma); order 1 on the first and last steps
 *   (warm-up and lower_order_final); the last step lands on x_n = m_{n-1}. The formulas are
 *   at the top of sampler.c and in tools/reference/sampler_ref.py (its Python twin).
 * All tensor maths is through backend ops (be_lincomb, be_copy), so it runs on any backend;
 * the history (the last three x0 predictions and the last sample) and the step's coefficients
 * come from state_arena at create time, so a step allocates nothing. Every step issues the
 * same ops on the same memory (terms a step does not use get coefficient 0), so a caller can
 * record one step and replay it for all the others (engine/replay.h).
 */
#ifndef AU_SAMPLER_H
#define AU_SAMPLER_H

#include "backend.h"

typedef enum au_sampler_kind { AU_SAMPLER_UNIPC = 0, AU_SAMPLER_EULER } au_sampler_kind;

/* "unipc" or "euler" -> kind; AU_EINVAL for anything else (NULL included). */
int sampler_kind_from_name(const char *name, au_sampler_kind *out);

typedef struct au_sampler au_sampler;

/* latent_like gives the latent shape (float32 only); history tensors come from
 * state_arena, which must outlive the sampler. n_steps >= 1, shift > 0. */
int sampler_create(au_sampler **out, au_backend *be, au_arena *state_arena, au_sampler_kind kind, int n_steps,
                   float shift, const au_tensor *latent_like, au_err *err);
void sampler_free(au_sampler *s);

int sampler_n_steps(const au_sampler *s);
/* The model's t for step 0 <= step < n_steps, the integer timestep the official code passes
 * (as float); NAN for a step out of range. */
float sampler_timestep(const au_sampler *s, int step);
/* sigma_i for 0 <= i <= n_steps (sigma_n = 0); NAN out of range. */
float sampler_sigma(const au_sampler *s, int i);

/* x <- next latent, given the model's velocity v at step `step` (steps called in order
 * 0..n-1); x and v float32 of the latent shape, on the sampler's backend.
 * Same as sampler_load(s, step) then sampler_apply(s, x, v). */
int sampler_step(au_sampler *s, int step, au_tensor *x, const au_tensor *v, au_err *err);

/* The two halves of a step, for a caller that records it. sampler_load uploads the step's
 * coefficients, the step's only host values (steps loaded in order 0..n-1, each once);
 * sampler_apply then issues the update's ops, which read them from backend memory and
 * change no host state, so a recording of it serves every step. */
int sampler_load(au_sampler *s, int step, au_err *err);
int sampler_apply(au_sampler *s, au_tensor *x, const au_tensor *v, au_err *err);

/* key mixed with what sampler_apply's ops depend on (kind and memory), for a replay key. */
uint64_t sampler_replay_key(const au_sampler *s, uint64_t key);

#endif
