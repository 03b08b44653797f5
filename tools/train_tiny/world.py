"""The synthetic world of Auteur-Tiny: seeded procedural clips of moving coloured shapes.

A scene is a background (plain, or a linear gradient between two named colours) and one or
two objects. Each object has a shape (circle, square, triangle, star), a named colour, a start
centre, a constant velocity in one of 8 directions (or none, or bouncing off the borders),
a size that may grow or shrink linearly, and an angle that may turn. Scenes are sampled with a
numpy Generator, so a seed fixes everything; rendering is plain array arithmetic written once
for numpy (tests, evaluation) and torch (GPU rendering during training).

Rendering, per frame t (0..T-1) and pixel centre p = (x + 0.5, y + 0.5), y pointing down:
  centre c(t) = c0 + v t (bouncing: folded back into [m, size - m] like a ball on the walls)
  radius r(t) = r0 (1 + g t / (T - 1)),  angle a(t) = a0 + w t
  signed distance d(p) to the shape (negative inside), coverage alpha = clip(0.5 - d, 0, 1)
  frame = background, then frame = frame (1 - alpha) + colour alpha for each object in order.
Shapes (r = the object's size parameter): circle of radius r; square of half side 0.82 r;
equilateral triangle of circumradius 1.2 r pointing up; five-pointed star of outer radius
1.3 r and inner radius 0.5 of that, one tip up. Values are RGB in [0, 1]; video tensors for the
models are [3, T, H, W] in [-1, 1].
"""
import math

import numpy as np

from palette import BACKGROUNDS, COLORS, DIRECTIONS, SHAPES

SIZE_CHANGES = {"none": 0.0, "grow": 0.6, "shrink": -0.45}


def _unit(rgb):
    return tuple(c / 255.0 for c in rgb)


def sample_scene(rng, size=128, frames=17, n_objects=None, motion=None, color=None, shape=None):
    """One scene as a dict of plain Python values (the caption grammar reads it).

    Optional arguments pin the first object's motion/colour/shape and the object count."""
    if n_objects is None:
        n_objects = 1 if rng.random() < 0.7 else 2
    bg_names = list(BACKGROUNDS)
    bg = {"kind": "plain", "colors": [bg_names[rng.integers(len(bg_names))]]}
    u = rng.random()
    if u < 0.35:
        second = bg_names[rng.integers(len(bg_names))]
        while second == bg["colors"][0]:
            second = bg_names[rng.integers(len(bg_names))]
        bg = {"kind": "vertical" if u < 0.2 else "horizontal", "colors": [bg["colors"][0], second]}
    objects, used_colors = [], set()
    for k in range(n_objects):
        first = k == 0
        c = color if (first and color) else None
        while c is None or c in used_colors:
            c = list(COLORS)[rng.integers(len(COLORS))]
        used_colors.add(c)
        s = shape if (first and shape) else SHAPES[rng.integers(len(SHAPES))]
        if first and motion:
            m = motion
        else:
            u = rng.random()
            m = "still" if u < 0.06 else "bounce" if u < 0.11 else list(DIRECTIONS)[rng.integers(len(DIRECTIONS))]
        r0 = float(rng.uniform(0.08, 0.15) * size)
        u = rng.random()
        change = "grow" if u < 0.12 else "shrink" if u < 0.24 else "none"
        spin = 0.0
        if s != "circle" and rng.random() < 0.2:
            spin = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.22))
        speed = float(rng.uniform(0.018, 0.028) * size)  # pixels per frame
        if m in DIRECTIONS:
            vx, vy = (speed * d for d in DIRECTIONS[m])
        elif m == "bounce":
            ang = rng.uniform(0, 2 * math.pi)
            vx, vy = 1.6 * speed * math.cos(ang), 1.6 * speed * math.sin(ang)
        else:
            vx = vy = 0.0
        margin = _margin(r0, change)
        span = frames - 1
        if m == "bounce":
            x0, y0 = (float(rng.uniform(margin, size - margin)) for _ in range(2))
        else:  # the whole path inside the frame when it fits, else centred on the frame
            lo_hi = [(margin - min(0.0, v * span), size - margin - max(0.0, v * span)) for v in (vx, vy)]
            x0, y0 = (float(rng.uniform(lo, hi)) if lo <= hi else (size - v * span) / 2
                      for (lo, hi), v in zip(lo_hi, (vx, vy)))
        objects.append({"shape": s, "color": c, "motion": m, "x0": x0, "y0": y0, "vx": vx, "vy": vy, "r0": r0,
                        "size_change": change, "angle0": float(rng.uniform(-0.3, 0.3)) if spin == 0.0 else
                        float(rng.uniform(0, 2 * math.pi)), "spin": spin})
    return {"size": size, "frames": frames, "background": bg, "objects": objects}


def _margin(r0, change):
    """Distance kept between an object's centre and the border: its largest radius."""
    return r0 * max(1.0, 1.0 + SIZE_CHANGES[change]) + 1.0


def _bounce(p, lo, hi):
    """Fold an unbounded coordinate back into [lo, hi] (reflection at both walls)."""
    span = hi - lo
    q = (p - lo) % (2 * span)
    return lo + span - abs(q - span)


def object_tracks(scene):
    """Per object: centres [T, 2] (x, y in pixels), radii [T], angles [T] as numpy float64."""
    T, size = scene["frames"], scene["size"]
    t = np.arange(T, dtype=np.float64)
    tracks = []
    for o in scene["objects"]:
        r = o["r0"] * (1.0 + SIZE_CHANGES[o["size_change"]] * t / max(T - 1, 1))
        x, y = o["x0"] + o["vx"] * t, o["y0"] + o["vy"] * t
        if o["motion"] == "bounce":
            m = _margin(o["r0"], o["size_change"])
            x, y = _bounce(x, m, size - m), _bounce(y, m, size - m)
        tracks.append((np.stack([x, y], axis=1), r, o["angle0"] + o["spin"] * t))
    return tracks


def pack_scenes(scenes):
    """Scenes -> dict of numpy float32 arrays for batched rendering (2 object slots, an empty
    second slot has alpha 0): bg0/bg1 [B,3], bg_dir [B,2] (gradient direction, zero = plain),
    cx/cy/r/ang [B,2,T], shape [B,2] (index in SHAPES), color [B,2,3], on [B,2]."""
    B, T = len(scenes), scenes[0]["frames"]
    out = {"bg0": np.zeros((B, 3)), "bg1": np.zeros((B, 3)), "bg_dir": np.zeros((B, 2)),
           "cx": np.zeros((B, 2, T)), "cy": np.zeros((B, 2, T)), "r": np.ones((B, 2, T)), "ang": np.zeros((B, 2, T)),
           "shape": np.zeros((B, 2)), "color": np.zeros((B, 2, 3)), "on": np.zeros((B, 2))}
    for b, sc in enumerate(scenes):
        if sc["frames"] != T or sc["size"] != scenes[0]["size"]:
            raise ValueError("pack_scenes: all scenes of a batch need the same size and frame count")
        bg = sc["background"]
        out["bg0"][b] = _unit(BACKGROUNDS[bg["colors"][0]])
        out["bg1"][b] = _unit(BACKGROUNDS[bg["colors"][-1]])
        out["bg_dir"][b] = {"plain": (0, 0), "vertical": (0, 1), "horizontal": (1, 0)}[bg["kind"]]
        for k, (o, (c, r, a)) in enumerate(zip(sc["objects"], object_tracks(sc))):
            out["cx"][b, k], out["cy"][b, k], out["r"][b, k], out["ang"][b, k] = c[:, 0], c[:, 1], r, a
            out["shape"][b, k] = SHAPES.index(o["shape"])
            out["color"][b, k] = _unit(COLORS[o["color"]])
            out["on"][b, k] = 1.0
    return {k: v.astype(np.float32) for k, v in out.items()}


def _shape_distance(xp, shape_id, dx, dy, r, ang):
    """Signed distance in pixels (negative inside) of every shape kind, selected per object.

    dx, dy: offsets from the centre [..., H, W]; r, ang, shape_id broadcast against them."""
    c, s = xp.cos(ang), xp.sin(ang)
    qx, qy = c * dx + s * dy, -s * dx + c * dy  # into the object's frame (rotate by -ang)
    rho = xp.sqrt(qx * qx + qy * qy)
    d_circle = rho - r
    d_square = xp.maximum(xp.abs(qx), xp.abs(qy)) - 0.82 * r
    # triangle: three edges at inradius 0.6 r with outward normals at -90+180 (down), 30 and 150 deg
    # (apex up in image coordinates, y down)
    tri = None
    for deg in (90.0, 210.0, 330.0):
        a = math.radians(deg)
        e = qx * math.cos(a) + qy * math.sin(a)
        tri = e if tri is None else xp.maximum(tri, e)
    d_triangle = tri - 0.6 * r
    # star: fold the polar angle (tip up = -90 deg) into one half-spike, distance to its edge
    outer, inner = 1.3 * r, 0.65 * r
    phi = xp.arctan2(qy, qx) + math.pi / 2
    sector = 2 * math.pi / 5
    a = xp.remainder(phi, sector)
    a = xp.minimum(a, sector - a)
    px, py = rho * xp.cos(a), rho * xp.sin(a)
    ix, iy = inner * math.cos(sector / 2), inner * math.sin(sector / 2)
    ex, ey = ix - outer, iy  # edge from the tip (outer, 0) to the inner vertex
    norm = xp.sqrt(ex * ex + ey * ey)
    d_star = ((px - outer) * ey - py * ex) / norm  # cross product: negative on the centre's side
    return xp.where(shape_id == 0, d_circle, xp.where(shape_id == 1, d_square,
                                                        xp.where(shape_id == 2, d_triangle, d_star)))


class _Numpy:
    """The few array functions the renderer needs, for numpy arrays."""
    cos, sin, sqrt, abs, maximum, minimum, arctan2, remainder, where = (
        np.cos, np.sin, np.sqrt, np.abs, np.maximum, np.minimum, np.arctan2, np.remainder, np.where)

    @staticmethod
    def clip(x, lo, hi):
        return np.clip(x, lo, hi)

    @staticmethod
    def grid(n, like):
        return np.arange(n, dtype=np.float32) + 0.5


class _Torch:
    """The same functions for torch tensors (on any device)."""

    def __init__(self):
        import torch
        self.t = torch
        self.cos, self.sin, self.sqrt, self.abs = torch.cos, torch.sin, torch.sqrt, torch.abs
        self.maximum, self.minimum, self.arctan2 = torch.maximum, torch.minimum, torch.atan2
        self.remainder, self.where = torch.remainder, torch.where

    def clip(self, x, lo, hi):
        return x.clamp(lo, hi)

    def grid(self, n, like):
        return self.t.arange(n, dtype=self.t.float32, device=like.device) + 0.5


def render(packed, size, xp=None, with_coverage=False):
    """Packed scenes (numpy arrays, or torch tensors of the same names) -> video [B, 3, T, H, W]
    in [-1, 1] (float32, numpy or torch like the input). Frames are rendered all at once.
    with_coverage: also return the objects' coverage [B, T, H, W] in [0, 1] (their union)."""
    if xp is None:
        xp = _Numpy if isinstance(packed["cx"], np.ndarray) else _Torch()
    B, _, T = packed["cx"].shape
    g = xp.grid(size, packed["cx"])
    gx, gy = g[None, None, None, :], g[None, None, :, None]  # [1,1,1,W], [1,1,H,1]
    # background [B, 3, 1, H, W]: t = projection on the gradient direction, 0 at one side, 1 at the other
    bd = packed["bg_dir"]
    tpos = (gx * bd[:, 0, None, None, None] + gy * bd[:, 1, None, None, None]) / size  # [B,1,H,W]
    bg0, bg1 = packed["bg0"][:, :, None, None, None], packed["bg1"][:, :, None, None, None]
    frame = bg0 + (bg1 - bg0) * tpos[:, None]  # [B,3,1,H,W]
    frame = frame + 0.0 * packed["cx"][:, 0, None, :, None, None]  # broadcast to [B,3,T,H,W]
    coverage = 0.0 * frame[:, 0]
    for k in range(packed["cx"].shape[1]):
        cx = packed["cx"][:, k, :, None, None]  # [B,T,1,1]
        cy = packed["cy"][:, k, :, None, None]
        r = packed["r"][:, k, :, None, None]
        ang = packed["ang"][:, k, :, None, None]
        sid = packed["shape"][:, k, None, None, None]
        d = _shape_distance(xp, sid, gx[0] - cx, gy[0] - cy, r, ang)  # [B,T,H,W]
        alpha = xp.clip(0.5 - d, 0.0, 1.0) * packed["on"][:, k, None, None, None]
        col = packed["color"][:, k, :, None, None, None]  # [B,3,1,1,1]
        frame = frame + (col - frame) * alpha[:, None]
        coverage = coverage + (1.0 - coverage) * alpha
    return (frame * 2.0 - 1.0, coverage) if with_coverage else frame * 2.0 - 1.0


def render_scenes(scenes):
    """Scenes -> numpy video [B, 3, T, H, W] in [-1, 1]."""
    return render(pack_scenes(scenes), scenes[0]["size"])
