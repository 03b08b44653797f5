"""sampler_ref.py - PyTorch/numpy reference of engine/sampler.h and engine/philox.h.

Flow-matching samplers of Wan2.1 text-to-video, written from the maths of the
official FlowUniPCMultistepScheduler (wan/utils/fm_solvers_unipc.py) as
text2video.py drives it (num_train_timesteps 1000, constructed with shift 1,
set_timesteps(steps, shift=shift)), plus a plain Euler on the same schedule.

Schedule (bit-exact with the official code):
  sigma_max = float32(1 - 1/1000) widened to float64, sigma_min = 0
  s_i  = numpy linspace(sigma_max, 0, steps + 1)[i], i < steps      (float64: i*step + start)
  s'_i = shift*s_i / (1 + (shift - 1)*s_i)                           (float64)
  t_i  = int64(s'_i * 1000)      (truncation; the DiT gets this integer as its timestep)
  sigmas = float32([s'_0 .. s'_{steps-1}, 0])

Euler:  x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v_i                 (float32)

UniPC (bh2, order 2, data prediction, lower-order warm-up and final step), with
alpha = 1 - sigma, lambda = log(alpha) - log(sigma), all scalars float32:
  m_i = x_i - sigma_i * v_i                                   (predicted x0)
  corrector (i > 0, order q of the previous predictor): recompute the previous
    step from x_c = last sample with m_{i-1} as anchor, D1_t = m_i - m_{i-1};
    q = 1: rho = [0.5]; q = 2: rho = solve([[1,1],[rk,1]], b) with
    b_k from the phi functions of hh = -h (see _b_coeffs), D1 = (m_{i-2} - m_{i-1}) / rk.
    x_i <- (s_t/s_0) x_c - a_t*expm1(hh)*m_{i-1} - a_t*expm1(hh)*(rho_0*D1 + rho_last*D1_t)
  predictor (order p = min(2, steps - i, i + 1)):
    x_{i+1} = (s_t/s_0) x_i - a_t*expm1(hh)*m_i [- a_t*expm1(hh)*0.5*(m_{i-1} - m_i)/rk]
  with s_0 = sigma_i, s_t = sigma_{i+1}, h = lambda_t - lambda_0,
  rk = (lambda_{i-1} - lambda_i) / h.  On the last step sigma_{i+1} = 0, so
  expm1(-inf) = -1 and x_n = m_{n-1}: the final x is the last x0 prediction.

Note: the official step() finds its first index by looking the timestep up in
the int64 timestep list; when t_0 == t_1 (more than ~250 steps at shift 5) it
starts at index 1 and later fails. Here the step index is always explicit.

Noise (philox_normal_f32): Philox4x32-10 keyed by the seed, two float32 normals per
counter; the exact mapping is documented in engine/philox.h and in philox_normal_f32.
"""

import math

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 1000
KINDS = ("unipc", "euler")


def make_schedule(kind, steps, shift):
    """(timesteps int64 [steps], sigmas float32 [steps + 1]) for sampler `kind`."""
    if kind not in KINDS:
        raise ValueError(f"unknown sampler {kind!r} (expected one of {KINDS})")
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if not shift > 0:
        raise ValueError("shift must be > 0")
    shift = float(shift)
    sigma_max = float(np.float32(1.0 - 1.0 / NUM_TRAIN_TIMESTEPS))
    sigma_min = 0.0
    step = (sigma_min - sigma_max) / steps
    s = np.arange(steps, dtype=np.float64) * step + sigma_max
    s = shift * s / (1.0 + (shift - 1.0) * s)
    timesteps = (s * NUM_TRAIN_TIMESTEPS).astype(np.int64)
    sigmas = np.concatenate([s, [0.0]]).astype(np.float32)
    return timesteps, sigmas


def _f32(v):
    return torch.tensor(v, dtype=torch.float32)


def _lam(sigma):
    """Half log-SNR of a float32 sigma: log(1 - sigma) - log(sigma) in float32."""
    return torch.log(1.0 - sigma) - torch.log(sigma)


def _b_coeffs(hh, b_h, order):
    """Right-hand side b_k = k! * phi_{k+1}(hh) / B(h), k = 0..order-1 (float32)."""
    phi = torch.expm1(hh) / hh - 1.0
    out = []
    fact = 1
    for k in range(1, order + 1):
        out.append(phi * fact / b_h)
        fact *= k + 1
        phi = phi / hh - 1.0 / fact
    return out


class FlowSampler:
    """Reference twin of au_sampler: call step(i, x, v) for i = 0..steps-1 in order."""

    def __init__(self, kind, steps, shift):
        self.kind = kind
        self.n_steps = steps
        self.timesteps, sigmas_np = make_schedule(kind, steps, shift)
        self.sigmas = torch.from_numpy(sigmas_np)
        self.next_step = 0
        self.m = []          # the last (up to 3) x0 predictions, newest last
        self.last = None     # the sample the previous predictor started from
        self.prev_order = 0  # order of the previous predictor

    def timestep(self, i):
        return float(self.timesteps[i])

    def step(self, i, x, v):
        if i != self.next_step:
            raise ValueError(f"step {i} called out of order (expected {self.next_step})")
        x = x.to(torch.float32)
        v = v.to(torch.float32)
        self.next_step += 1
        if self.kind == "euler":
            return x + (self.sigmas[i + 1] - self.sigmas[i]) * v
        return self._unipc(i, x, v)

    def _unipc(self, i, x, v):
        sig = self.sigmas
        m_new = x - sig[i] * v
        if i > 0:
            x = self._correct(i, m_new)
        self.m = (self.m + [m_new])[-3:]
        order = min(2, self.n_steps - i, i + 1)
        self.last = x
        self.prev_order = order
        return self._predict(i, x, order)

    def _predict(self, i, x, order):
        sig = self.sigmas
        s0, st = sig[i], sig[i + 1]
        a_t = 1.0 - st
        h = _lam(st) - _lam(s0)
        hh = -h
        phi1 = torch.expm1(hh)
        b_h = torch.expm1(hh)
        m0 = self.m[-1]
        out = st / s0 * x - a_t * phi1 * m0
        if order == 2:
            rk = (_lam(sig[i - 1]) - _lam(s0)) / h
            d1 = (self.m[-2] - m0) / rk
            out = out - a_t * b_h * (0.5 * d1)
        return out

    def _correct(self, i, m_t):
        sig = self.sigmas
        q = self.prev_order
        s0, st = sig[i - 1], sig[i]
        a_t = 1.0 - st
        h = _lam(st) - _lam(s0)
        hh = -h
        phi1 = torch.expm1(hh)
        b_h = torch.expm1(hh)
        m0 = self.m[-1]
        base = st / s0 * self.last - a_t * phi1 * m0
        d1_t = m_t - m0
        if q == 1:
            return base - a_t * b_h * (0.5 * d1_t)
        rk = (_lam(sig[i - 2]) - _lam(s0)) / h
        d1 = (self.m[-2] - m0) / rk
        b = torch.stack(_b_coeffs(hh, b_h, 2))
        r = torch.stack([torch.ones((), dtype=torch.float32), torch.ones((), dtype=torch.float32)])
        rmat = torch.stack([r, torch.stack([rk, torch.ones((), dtype=torch.float32)])])
        rho = torch.linalg.solve(rmat, b)
        return base - a_t * b_h * (rho[0] * d1 + rho[1] * d1_t)


def run_trajectory(kind, steps, shift, x, velocity):
    """Drive a sampler from x with velocity(x, t, sigma) -> v; returns (x_final, [x_1..x_n])."""
    s = FlowSampler(kind, steps, shift)
    traj = []
    for i in range(steps):
        v = velocity(x, s.timestep(i), float(s.sigmas[i]))
        x = s.step(i, x, v)
        traj.append(x)
    return x, traj


# ---------------------------------------------------------------- Philox noise

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
_MASK32 = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    """Philox4x32-10 on counters ctr (uint32 [N, 4]) with key (k0, k1); returns uint32 [N, 4]."""
    c = [np.asarray(ctr[:, j], dtype=np.uint64) for j in range(4)]
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    for r in range(10):
        if r:
            k0 = (k0 + PHILOX_W0) & _MASK32
            k1 = (k1 + PHILOX_W1) & _MASK32
        p0 = c[0] * np.uint64(PHILOX_M0)
        p1 = c[2] * np.uint64(PHILOX_M1)
        hi0, lo0 = p0 >> np.uint64(32), p0 & np.uint64(_MASK32)
        hi1, lo1 = p1 >> np.uint64(32), p1 & np.uint64(_MASK32)
        c = [hi1 ^ c[1] ^ np.uint64(k0), lo1, hi0 ^ c[3] ^ np.uint64(k1), lo0]
    return np.stack(c, axis=1).astype(np.uint32)


def philox_normal_f32(seed, offset, n):
    """Standard normals, element i from (seed, offset + i), as engine/philox.h.

    key = (seed & 0xffffffff, seed >> 32); element g = offset + i uses counter
    c = g >> 1 as (c & 0xffffffff, c >> 32, 0, 0) -> words (r0, r1, r2, r3);
    u1 = ((r0 << 21 | r1 >> 11) + 1) / 2^53 in (0, 1], u2 = (r2 << 21 | r3 >> 11) / 2^53 in [0, 1);
    rad = sqrt(-2 ln u1), theta = 2 pi u2 (float64); g even -> rad*cos(theta),
    g odd -> rad*sin(theta), rounded to float32.
    """
    g = np.arange(n, dtype=np.uint64) + np.uint64(offset)
    c = g >> np.uint64(1)
    ctr = np.zeros((n, 4), dtype=np.uint32)
    ctr[:, 0] = (c & np.uint64(_MASK32)).astype(np.uint32)
    ctr[:, 1] = (c >> np.uint64(32)).astype(np.uint32)
    r = philox4x32_10(ctr, (seed & _MASK32, (seed >> 32) & _MASK32)).astype(np.uint64)
    a = (r[:, 0] << np.uint64(21)) | (r[:, 1] >> np.uint64(11))
    b = (r[:, 2] << np.uint64(21)) | (r[:, 3] >> np.uint64(11))
    u1 = (a + np.uint64(1)).astype(np.float64) * 2.0**-53
    u2 = b.astype(np.float64) * 2.0**-53
    rad = np.sqrt(-2.0 * np.log(u1))
    theta = 2.0 * math.pi * u2
    out = np.where((g & np.uint64(1)) == 0, rad * np.cos(theta), rad * np.sin(theta))
    return out.astype(np.float32)
