"""The prompt-following judge: does a clip show the requested colour moving the requested way?

Standard library only (numpy is used when present, for speed, with the same arithmetic), so
tests/e2e/test_prompt_following.py can run it on frames decoded by ffmpeg on a bare machine.
Frames are raw RGB24 bytes, T frames of H x W pixels, row-major.

  colour mask  a pixel whose nearest named colour (palette.py: the 7 object and 7 background
               colours, squared RGB distance) is the requested one, and within 90 of it
  present      a frame with >= 0.2 % of its pixels in the mask; the colour is present when at
               least 30 % of the frames (and 2) are
  moves        centroid of the mask, mean of the first k present frames -> mean of the last k
               (k = min(3, present // 2)): displacement >= 6 % of the frame width, and within
               35 degrees of the requested direction (palette.DIRECTIONS, y pointing down)
A clip passes when the colour is present and moves the right way.
"""
import math

from palette import BACKGROUNDS, COLORS, DIRECTIONS

PALETTE_NAMES = list(COLORS) + ["bg:" + k for k in BACKGROUNDS]
PALETTE = list(COLORS.values()) + list(BACKGROUNDS.values())
MATCH_DISTANCE = 90.0
MIN_AREA = 0.002
MIN_PRESENT = 0.3
MIN_MOVE = 0.06
MAX_ANGLE_DEG = 35.0


def _stats_numpy(np, data, T, H, W, k):
    f = np.frombuffer(data, dtype=np.uint8).reshape(T, H * W, 3).astype(np.int32)
    d2 = ((f[:, :, None, :] - np.array(PALETTE, dtype=np.int32)) ** 2).sum(-1)  # [T, HW, n_palette]
    mask = (d2.argmin(-1) == k) & (d2[..., k] < MATCH_DISTANCE ** 2)
    xs = np.tile(np.arange(W), H)
    ys = np.repeat(np.arange(H), W)
    return [(int(m.sum()), int(xs[m].sum()), int(ys[m].sum())) for m in mask]


def _stats_python(data, T, H, W, k):
    tr, tg, tb = PALETTE[k]
    limit = MATCH_DISTANCE ** 2
    out = []
    for t in range(T):
        n = sx = sy = 0
        base = t * H * W * 3
        for p in range(H * W):
            i = base + 3 * p
            r, g, b = data[i], data[i + 1], data[i + 2]
            if (r - tr) ** 2 + (g - tg) ** 2 + (b - tb) ** 2 >= limit:
                continue  # most pixels: far from the requested colour
            ds = [(r - c[0]) ** 2 + (g - c[1]) ** 2 + (b - c[2]) ** 2 for c in PALETTE]
            if ds.index(min(ds)) != k:  # the first nearest, as argmin
                continue
            n += 1
            sx += p % W
            sy += p // W
        out.append((n, sx, sy))
    return out


def mask_stats(data, T, H, W, color, use_numpy=True):
    """Per frame: (pixels in the colour mask, sum of their x, sum of their y)."""
    if len(data) != T * H * W * 3:
        raise ValueError(f"judge: {len(data)} bytes for {T} frames of {W}x{H} RGB")
    k = PALETTE_NAMES.index(color)
    if use_numpy:
        try:
            import numpy as np
        except ImportError:
            np = None
        if np is not None:
            return _stats_numpy(np, data, T, H, W, k)
    return _stats_python(data, T, H, W, k)


def judge_rgb(data, T, H, W, color, direction, use_numpy=True):
    """Verdict for one clip: dict(ok, present_frames, frames, displacement [dx, dy] px, angle_deg, reason)."""
    stats = mask_stats(data, T, H, W, color, use_numpy)
    present = [(n, sx, sy) for n, sx, sy in stats if n >= MIN_AREA * H * W]
    out = {"ok": False, "present_frames": len(present), "frames": T, "displacement": None, "angle_deg": None}
    if len(present) < max(2, math.ceil(MIN_PRESENT * T)):
        out["reason"] = f"colour {color} present in {len(present)}/{T} frames"
        return out
    cent = [(sx / n, sy / n) for n, sx, sy in present]
    k = min(3, len(cent) // 2)
    dx = sum(c[0] for c in cent[-k:]) / k - sum(c[0] for c in cent[:k]) / k
    dy = sum(c[1] for c in cent[-k:]) / k - sum(c[1] for c in cent[:k]) / k
    out["displacement"] = [round(dx, 2), round(dy, 2)]
    dist = math.hypot(dx, dy)
    if dist < MIN_MOVE * W:
        out["reason"] = f"moved {dist:.1f} px, need {MIN_MOVE * W:.1f}"
        return out
    wx, wy = DIRECTIONS[direction]
    angle = math.degrees(math.acos(max(-1.0, min(1.0, (dx * wx + dy * wy) / dist))))
    out["angle_deg"] = round(angle, 1)
    if angle > MAX_ANGLE_DEG:
        out["reason"] = f"moved {angle:.0f} degrees off {direction}"
        return out
    out["ok"] = True
    out["reason"] = "ok"
    return out
