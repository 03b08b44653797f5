"""make_sampler_goldens.py - golden files for tests/unit/test_sampler.c.

Writes tests/golden/sampler/<kind>_<steps>_<shift>.safetensors, each holding
  timesteps  I64 [steps]            the int64 timesteps the DiT receives
  sigmas     F32 [steps + 1]        the shifted sigmas, last one 0
  x_init     F32 LATENT             the starting latent
  trajectory F32 [steps, *LATENT]   x after each step
  x_final    F32 LATENT             x after the last step
with metadata kind, steps, shift; and philox_normals.safetensors with Philox
normals (sampler_ref.philox_normal_f32) for a few (seed, offset, n) slices.

The trajectories are driven by a synthetic velocity, reimplemented in the C test:
  d_j  = 0.8 sin(0.37 j + 0.5)                          (j = flat element index)
  v_j  = (x_j - d_j) / sigma_i + 0.3 sin(2 x_j + t_i / 250)
in float64 from the float32 x_j, sigma_i and integer t_i, rounded to float32: the exact
flow towards d plus a smooth nonlinear term, so successive x0 predictions differ
and both UniPC orders and the corrector are exercised. x_init_j = 1.3 sin(0.731 j + 0.3).

--check-official FILE imports the official scheduler (save it with
`git show HEAD:wan/utils/fm_solvers_unipc.py`; needs diffusers) and compares it with
the reference on every UniPC case: schedules must be identical, the max relative
difference of the trajectories is printed.
"""

import argparse
import importlib.util
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sampler_ref  # noqa: E402

LATENT = (16, 2, 4, 6)
CASES = [
    ("unipc", 1, 5.0),
    ("unipc", 2, 5.0),
    ("unipc", 4, 3.0),
    ("unipc", 20, 4.4),  # float32(4.4) widened naively would change 2 sigmas
    ("unipc", 10, 5.0),
    ("unipc", 50, 5.0),
    ("euler", 4, 3.0),
    ("euler", 10, 5.0),
    ("euler", 50, 5.0),
]
PHILOX_SLICES = [  # (seed, offset, n)
    (42, 0, 4096),
    (0x123456789ABCDEF0, (1 << 33) + 5, 999),
    (0, 7, 1),
]


def x_init():
    j = np.arange(np.prod(LATENT), dtype=np.float64)
    return (1.3 * np.sin(0.731 * j + 0.3)).astype(np.float32).reshape(LATENT)


def velocity(x, t, sigma):
    """The synthetic model of the module docstring; x a float32 torch tensor."""
    xd = x.numpy().astype(np.float64).reshape(-1)
    j = np.arange(xd.size, dtype=np.float64)
    d = 0.8 * np.sin(0.37 * j + 0.5)
    v = (xd - d) / float(sigma) + 0.3 * np.sin(2.0 * xd + float(t) / 250.0)
    return torch.from_numpy(v.astype(np.float32).reshape(x.shape))


def case_name(kind, steps, shift):
    return f"{kind}_{steps}_{shift:g}"


def write_case(out_dir, kind, steps, shift):
    ts, sigmas = sampler_ref.make_schedule(kind, steps, shift)
    x0 = torch.from_numpy(x_init())
    x_final, traj = sampler_ref.run_trajectory(kind, steps, shift, x0, velocity)
    tensors = {
        "timesteps": ts.astype(np.int64),
        "sigmas": sigmas.astype(np.float32),
        "x_init": x0.numpy(),
        "trajectory": torch.stack(traj).numpy(),
        "x_final": x_final.numpy(),
    }
    meta = {"kind": kind, "steps": str(steps), "shift": repr(float(shift))}
    path = os.path.join(out_dir, case_name(kind, steps, shift) + ".safetensors")
    save_file(tensors, path, metadata=meta)
    return path


def write_philox(out_dir):
    tensors, meta = {}, {}
    for k, (seed, offset, n) in enumerate(PHILOX_SLICES):
        tensors[f"normals{k}"] = sampler_ref.philox_normal_f32(seed, offset, n)
        meta[f"normals{k}"] = f"{seed} {offset} {n}"
    path = os.path.join(out_dir, "philox_normals.safetensors")
    save_file(tensors, path, metadata=meta)
    return path


def check_philox_kat():
    """Random123 kat_vectors, the three philox4x32 10 lines (counter, key -> output)."""
    kat = [
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
         [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
    ]
    for ctr, key, want in kat:
        got = sampler_ref.philox4x32_10(np.array([ctr], dtype=np.uint32), key)[0]
        if list(map(int, got)) != want:
            raise SystemExit(f"philox KAT failed for ctr {ctr}: got {[hex(v) for v in got]}")


def check_official(path):
    spec = importlib.util.spec_from_file_location("official_unipc", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    worst = 0.0
    for kind, steps, shift in CASES:
        if kind != "unipc":
            continue
        sch = mod.FlowUniPCMultistepScheduler(num_train_timesteps=1000, shift=1, use_dynamic_shifting=False)
        sch.set_timesteps(steps, device="cpu", shift=shift)
        ts, sigmas = sampler_ref.make_schedule(kind, steps, shift)
        if not np.array_equal(sch.timesteps.numpy(), ts):
            raise SystemExit(f"{case_name(kind, steps, shift)}: timesteps differ from the official")
        if not np.array_equal(sch.sigmas.numpy().view(np.uint32), sigmas.view(np.uint32)):
            raise SystemExit(f"{case_name(kind, steps, shift)}: sigmas differ from the official")
        x_off = torch.from_numpy(x_init())[None]
        x_ref, _ = sampler_ref.run_trajectory(kind, steps, shift, x_off[0].clone(), velocity)
        for i, t in enumerate(sch.timesteps):
            v = velocity(x_off[0], int(t), float(sch.sigmas[i]))
            x_off = sch.step(v[None], t, x_off, return_dict=False)[0]
        rel = ((x_off[0] - x_ref).abs().max() / x_off.abs().max()).item()
        worst = max(worst, rel)
        print(f"official check {case_name(kind, steps, shift)}: schedule identical, "
              f"max rel diff of x_final {rel:.3g}")
    print(f"official check: worst max rel diff {worst:.3g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--out", default=os.path.join(root, "tests", "golden", "sampler"))
    ap.add_argument("--check-official", metavar="FILE", help="official fm_solvers_unipc.py to compare with")
    args = ap.parse_args()
    check_philox_kat()
    if args.check_official:
        check_official(args.check_official)
    os.makedirs(args.out, exist_ok=True)
    for kind, steps, shift in CASES:
        print("wrote", write_case(args.out, kind, steps, shift))
    print("wrote", write_philox(args.out))


if __name__ == "__main__":
    main()
