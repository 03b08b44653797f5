"""test_prompt_following.py - the C engine follows prompts on Auteur-Tiny (models/auteur-tiny).

For every held-out prompt of tools/train_tiny/captions.py (48 single-object prompts, colour x
shape x direction, in phrasings the model never saw in training), `auteur generate` makes a
clip (seed 1000 + index, the model's defaults except --steps below), ffmpeg decodes the MP4 to
raw RGB, and tools/train_tiny/judge.py checks that the requested colour is present and that its
centroid moves in the requested direction. The pass rate must be at least 90 %.
Skipped (77) when models/auteur-tiny is missing. Standard library only (judge.py uses numpy
when it is installed). STEPS is chosen for CI time; MODEL_CARD.md gives the pass rates measured
with the PyTorch reference at this and the default step count.
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("AUTEUR_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "train_tiny"))
from harness import binary, ffprobe, skip  # noqa: E402

MODEL = os.path.join(ROOT, "models", "auteur-tiny")
STEPS = 12
MIN_PASS_RATE = 0.90


def decode(path):
    """MP4 -> (raw RGB24 bytes, frames, height, width)."""
    info = ffprobe(path)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    return raw, info["frames"], info["height"], info["width"]  # judge_rgb checks the byte count


def main():
    if not os.path.exists(os.path.join(MODEL, "auteur-model.json")):
        skip("models/auteur-tiny missing")
    bin_path = binary()
    from captions import eval_prompts
    from judge import judge_rgb

    prompts = eval_prompts()
    if len(prompts) < 40:
        print(f"FAIL: only {len(prompts)} held-out prompts, need at least 40")
        return 1
    work = tempfile.mkdtemp(prefix="auteur-follow-")
    passed, t0 = 0, time.time()
    for i, p in enumerate(prompts):
        out = os.path.join(work, f"clip{i}.mp4")
        r = subprocess.run([bin_path, "generate", "--model", MODEL, "--prompt", p["prompt"], "--seed", str(1000 + i),
                            "--steps", str(STEPS), "-o", out], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            print(f"FAIL: auteur generate exited {r.returncode} for {p['prompt']!r}: {r.stderr.strip()}")
            return 1
        raw, frames, h, w = decode(out)
        os.unlink(out)
        v = judge_rgb(raw, frames, h, w, p["color"], p["direction"])
        passed += v["ok"]
        print(f"{i + 1:2d}/{len(prompts)} {'pass' if v['ok'] else 'FAIL'} {p['prompt']!r}: {v['reason']} "
              f"(displacement {v['displacement']})", flush=True)
    os.rmdir(work)
    rate = passed / len(prompts)
    print(f"prompt following: {passed}/{len(prompts)} = {100 * rate:.1f}% "
          f"({(time.time() - t0) / len(prompts):.1f} s per clip, {STEPS} steps)")
    if rate < MIN_PASS_RATE:
        print(f"FAIL: pass rate below {100 * MIN_PASS_RATE:.0f}%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
