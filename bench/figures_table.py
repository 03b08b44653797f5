#!/usr/bin/env python3
"""figures_table.py - the closing tables of bench/cuda_figures.sh, in Markdown, from its log.

Reads the lines the benchmarks print:
  RESULT <kind> <name> <impl> <ms> <TFLOP/s|->   ours: fp8, bf16; PyTorch: torch-<variant>
  ERROR <kind> <name> <impl> <rel>               relative l2 error (reference named per table)
  FLOPS <kind> <name> <flop>                     FLOP of one call, for rows that print "-"
  VIDEO <key> <value>                            bench_video's stages
Ratios are PyTorch's best bf16 time over ours (> 1: ours faster); "best" excludes float32 runs.
Usage: figures_table.py LOG
"""
import sys
from collections import defaultdict


def parse(path):
    res, err, flops, video = defaultdict(dict), defaultdict(dict), {}, {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            p = line.split()
            if len(p) == 6 and p[0] == "RESULT":
                res[(p[1], p[2])][p[3]] = (float(p[4]), None if p[5] == "-" else float(p[5]))
            elif len(p) == 5 and p[0] == "ERROR":
                err[(p[1], p[2])][p[3]] = p[4]
            elif len(p) == 4 and p[0] == "FLOPS":
                flops[(p[1], p[2])] = float(p[3])
            elif len(p) >= 3 and p[0] == "VIDEO":
                video[p[1]] = " ".join(p[2:])
    return res, err, flops, video


def cell(key, impl, res, flops):
    if impl not in res[key]:
        return "-"
    ms, tf = res[key][impl]
    if tf is None and key in flops:
        tf = flops[key] / (ms * 1e-3) / 1e12
    t = f"{ms / 1e3:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"
    return f"{t} ({tf:.0f} TF/s)" if tf is not None else t


def best_torch(key, res):
    times = {impl: v[0] for impl, v in res[key].items() if impl.startswith("torch-") and impl != "torch-f32"}
    if not times:
        return None, None
    impl = min(times, key=times.get)
    return impl, times[impl]


def ratio(key, impl, res):
    _, best = best_torch(key, res)
    return f"{best / res[key][impl][0]:.2f}x" if best is not None and impl in res[key] else "-"


def parts_table(res, err, flops):
    keys = [k for k in res if k[0] in ("umt5", "vae")]
    if not keys:
        return
    print("| part | ours fp8 | ours bf16 | torch bf16 eager | torch.compile | torch f32 (ref) | fp8 / bf16 vs best torch |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for k in keys:
        cells = [cell(k, i, res, flops) for i in ("fp8", "bf16", "torch-bf16", "torch-compile", "torch-f32")]
        print(f"| {k[0]} {k[1]} | " + " | ".join(cells) + f" | {ratio(k, 'fp8', res)} / {ratio(k, 'bf16', res)} |")
    print("\n| part: error vs PyTorch float32 (TF32 off) | ours fp8 | ours bf16 | torch bf16 | torch.compile |")
    print("| --- | --- | --- | --- | --- |")
    for k in keys:
        print(f"| {k[0]} {k[1]} | " + " | ".join(err[k].get(i, "-") for i in ("fp8", "bf16", "torch-bf16", "torch-compile"))
              + " |")


def dit_table(res, err, flops):
    keys = [k for k in res if k[0] == "dit"]
    if not keys:
        return
    print("\n| DiT forward | ours fp8 | ours bf16 | torch bf16 cudnn | torch bf16 flash | fp8 / bf16 vs best torch "
          "| ours vs torch bf16 (rel, fp8 / bf16) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for k in keys:
        cells = [cell(k, i, res, flops) for i in ("fp8", "bf16", "torch-cudnn", "torch-flash")]
        e = err[k]
        print(f"| {k[1]} | " + " | ".join(cells) + f" | {ratio(k, 'fp8', res)} / {ratio(k, 'bf16', res)} | "
              f"{e.get('fp8-vs-torch-bf16', '-')} / {e.get('bf16-vs-torch-bf16', '-')} |")


def video_table(v):
    if "total_s" not in v:
        return
    print(f"\n| whole video {v.get('size', '?')}, {v.get('steps', '?')} steps, CFG, {v.get('backend', '?')} | value |")
    print("| --- | --- |")
    rows = [("text: tokenize, UMT5 x2, text embedding", "text_s", "s"),
            (f"{v.get('steps', '?')} steps (2 DiT forwards + sampler each)", "steps_s", "s"),
            ("one step: mean / min / max", None, None),
            ("decode: VAE + frames to host", "decode_s", "s"),
            ("**total**", "total_s", "s"),
            ("peak GPU memory, device-wide (context included)", "peak_gib", "GiB"),
            ("peak GPU memory above the start of the program", "peak_above_start_gib", "GiB"),
            ("model load (pipeline_open), not in the total", "load_s", "s"),
            ("warm-up job, not in the total (0: the job measured is the first)", "warmup_s", "s")]
    for label, key, unit in rows:
        if key is None:
            print(f"| {label} | {v.get('step_mean_s', '-')} / {v.get('step_min_s', '-')} / {v.get('step_max_s', '-')} s |")
        elif key in v:
            print(f"| {label} | {v[key]} {unit} |")


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: figures_table.py LOG")
    res, err, flops, video = parse(sys.argv[1])
    parts_table(res, err, flops)
    dit_table(res, err, flops)
    video_table(video)
    print("\n(ratios: best PyTorch bf16 time over ours, > 1 = ours faster)")


if __name__ == "__main__":
    main()
