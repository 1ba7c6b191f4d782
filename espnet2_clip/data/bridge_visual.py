"""Visual signatures of the bridge world: a textured, coloured shape on a random background.

numpy + PIL only. A :class:`Pose` (centre, radius, angle) is drawn at random and drifts a little
between frames (:func:`render_clip`); every frame is an ``(S, S, 3)`` uint8 RGB array.
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

COLOURS: Dict[str, Tuple[int, int, int]] = {
    "red": (220, 30, 30), "blue": (30, 70, 230), "yellow": (240, 210, 20),
    "green": (30, 170, 40), "orange": (250, 130, 10), "purple": (140, 40, 190),
    "cyan": (20, 200, 210), "pink": (250, 110, 180), "white": (245, 245, 245),
    "brown": (130, 75, 30),
}
TEXTURES = ("plain", "striped", "dotted", "checkered")
# shapes whose rotation must stay small to remain unambiguous (square vs diamond)
_MAX_ROT = {"square": 15.0, "diamond": 15.0, "heart": 25.0, "moon": 40.0, "cross": 30.0,
            # instruments upright or level as they are usually pictured (flute and clarinet stay apart)
            "flute": 25.0, "trombone": 25.0, "shaker": 25.0, "drum": 15.0, "bird": 25.0, "bell": 20.0,
            "woodblock": 20.0, "clarinet": 25.0, "whistle": 25.0, "contrabass": 15.0}
_SS = 2  # supersampling factor of the shape mask


def _regular(n, r, angle, start=-math.pi / 2, aspect=1.0):
    pts = []
    for k in range(n):
        a = start + 2 * math.pi * k / n
        pts.append((r * math.cos(a) * aspect, r * math.sin(a)))
    return _rotate(pts, angle)


def _rotate(pts, angle):
    c, s = math.cos(angle), math.sin(angle)
    return [(x * c - y * s, x * s + y * c) for x, y in pts]


def _star(r, angle):
    pts = []
    for k in range(10):
        a = -math.pi / 2 + math.pi * k / 5
        rr = r if k % 2 == 0 else 0.42 * r
        pts.append((rr * math.cos(a), rr * math.sin(a)))
    return _rotate(pts, angle)


def _cross(r, angle):
    w = 0.34 * r
    pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w),
           (-r, w), (-r, -w), (-w, -w)]
    return _rotate(pts, angle)


def _heart(r, angle):
    pts = []
    for k in range(48):
        t = 2 * math.pi * k / 48
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        pts.append((x * r / 17, (y + 2) * r / 17))
    return _rotate(pts, angle)


# --- instrument pictograms (the recorded-sound world's objects) ------------------------------------
# Each is a list of (polygon, fill) parts in units of the pose radius, drawn in order (255 adds, 0 cuts),
# inside the unit disk so that a pose keeps the whole object in the frame.
Part = Tuple[List[Tuple[float, float]], int]


def _ell(x: float, y: float, rx: float, ry: float, n: int = 28) -> List[Tuple[float, float]]:
    return [(x + rx * math.cos(2 * math.pi * k / n), y + ry * math.sin(2 * math.pi * k / n)) for k in range(n)]


def _box(x0: float, y0: float, x1: float, y1: float) -> List[Tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _flute() -> List[Part]:  # a long thin tube, its lip plate and six finger holes
    return ([(_box(-0.96, -0.15, 0.96, 0.15), 255), (_ell(-0.62, 0.0, 0.17, 0.21), 255)]
            + [(_ell(-0.1 + 0.19 * k, 0.0, 0.06, 0.06, 10), 0) for k in range(6)])


def _trombone() -> List[Part]:  # the slide (a long U of two tubes) and the flared bell on the upper tube
    return [(_box(-0.9, -0.3, 0.35, -0.21), 255), (_box(-0.9, 0.13, 0.35, 0.22), 255),
            (_box(-0.9, -0.3, -0.8, 0.22), 255), (_box(0.2, -0.3, 0.3, 0.22), 255),
            ([(0.3, -0.31), (0.82, -0.52), (0.82, 0.08), (0.3, -0.2)], 255)]


def _shaker() -> List[Part]:  # two maracas: oval heads on handles, in a V
    parts: List[Part] = []
    for side in (-1.0, 1.0):
        parts += [(_ell(0.38 * side, -0.42, 0.3, 0.4), 255),
                  ([(0.24 * side - 0.05, -0.05), (0.24 * side + 0.05, -0.05), (0.08 * side + 0.04, 0.92),
                    (0.08 * side - 0.04, 0.92)], 255)]
    return parts


def _drum() -> List[Part]:  # a cylinder with its rim and a stick resting on the head
    return [(_box(-0.75, -0.3, 0.75, 0.5), 255), (_ell(0.0, 0.5, 0.75, 0.2), 255), (_ell(0.0, -0.3, 0.75, 0.2), 255),
            (_ell(0.0, -0.3, 0.68, 0.15), 0), (_ell(0.0, -0.3, 0.62, 0.11), 255),
            ([(-0.5, -0.8), (-0.42, -0.85), (0.2, -0.42), (0.12, -0.37)], 255)]


def _bird() -> List[Part]:  # body, head, beak, tail, legs and an eye
    return [(_ell(-0.05, 0.1, 0.55, 0.34), 255), (_ell(0.45, -0.3, 0.22, 0.22), 255),
            ([(0.63, -0.36), (0.92, -0.28), (0.63, -0.2)], 255),
            ([(-0.5, 0.0), (-0.9, -0.3), (-0.88, 0.08), (-0.5, 0.24)], 255),
            (_box(-0.12, 0.38, -0.07, 0.8), 255), (_box(0.1, 0.38, 0.15, 0.8), 255),
            (_ell(0.5, -0.34, 0.05, 0.05, 10), 0)]


def _bell() -> List[Part]:  # a hand bell: knob, dome, flared skirt and the clapper below it
    return [(_ell(0.0, -0.82, 0.12, 0.12), 255),
            ([(-0.22, -0.72), (0.22, -0.72), (0.4, -0.4), (0.48, 0.2), (0.78, 0.52), (-0.78, 0.52), (-0.48, 0.2),
              (-0.4, -0.4)], 255),
            (_ell(0.0, 0.72, 0.16, 0.14), 255)]


def _woodblock() -> List[Part]:  # a slit wooden block and its beater
    return [(_box(-0.85, -0.35, 0.6, 0.35), 255), (_box(-0.65, -0.06, 0.45, 0.04), 0),
            ([(0.45, -0.75), (0.53, -0.8), (0.85, -0.2), (0.77, -0.15)], 255), (_ell(0.81, -0.12, 0.11, 0.11), 255)]


def _clarinet() -> List[Part]:  # upright: mouthpiece, a straight tube with keys, and a small bell
    return ([([(-0.07, -0.98), (0.07, -0.98), (0.12, -0.8), (-0.12, -0.8)], 255), (_box(-0.13, -0.8, 0.13, 0.6), 255),
             ([(-0.13, 0.58), (0.13, 0.58), (0.33, 0.9), (-0.33, 0.9)], 255)]
            + [(_ell(0.0, -0.55 + 0.2 * k, 0.05, 0.05, 10), 0) for k in range(6)])


def _whistle() -> List[Part]:  # a referee's whistle: round chamber, mouthpiece, the ring of its lanyard
    return [(_ell(-0.15, 0.2, 0.5, 0.5), 255), (_box(-0.15, -0.3, 0.9, 0.05), 255), (_ell(-0.15, 0.2, 0.14, 0.14), 0),
            (_ell(-0.66, -0.32, 0.2, 0.2), 255), (_ell(-0.66, -0.32, 0.11, 0.11), 0)]


def _contrabass() -> List[Part]:  # upright: waisted body with f-holes, long neck, scroll, endpin
    return [(_ell(0.0, -0.02, 0.36, 0.3), 255), (_ell(0.0, 0.45, 0.48, 0.38), 255), (_box(-0.25, 0.0, 0.25, 0.3), 255),
            (_box(-0.06, -0.9, 0.06, -0.2), 255), (_ell(0.0, -0.92, 0.08, 0.08), 255),
            (_box(-0.02, 0.8, 0.02, 0.98), 255),
            (_box(-0.22, 0.15, -0.18, 0.45), 0), (_box(0.18, 0.15, 0.22, 0.45), 0)]


PICTOGRAMS = {
    "flute": _flute, "trombone": _trombone, "shaker": _shaker, "drum": _drum, "bird": _bird, "bell": _bell,
    "woodblock": _woodblock, "clarinet": _clarinet, "whistle": _whistle, "contrabass": _contrabass,
}


def shape_mask(shape: str, size: int, cx: float, cy: float, r: float, angle_deg: float) -> np.ndarray:
    """Anti-aliased alpha mask (float32 ``(size, size)`` in [0, 1]) of ``shape``."""
    ss = _SS
    img = Image.new("L", (size * ss, size * ss), 0)
    d = ImageDraw.Draw(img)
    a = math.radians(angle_deg)
    cx, cy, r = cx * ss, cy * ss, r * ss

    def poly(pts):
        d.polygon([(cx + x, cy + y) for x, y in pts], fill=255)

    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ri = 0.58 * r
        d.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=0)
    elif shape == "moon":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ox, oy = _rotate([(0.5 * r, -0.25 * r)], a)[0]
        d.ellipse([cx + ox - 0.85 * r, cy + oy - 0.85 * r, cx + ox + 0.85 * r, cy + oy + 0.85 * r], fill=0)
    elif shape == "triangle":
        poly(_regular(3, r, a, start=-math.pi / 2))
    elif shape == "square":
        poly(_regular(4, r * 1.05, a, start=-math.pi / 4))
    elif shape == "diamond":
        poly(_regular(4, r * 1.1, a, start=-math.pi / 2, aspect=0.62))
    elif shape == "hexagon":
        poly(_regular(6, r, a, start=0.0))
    elif shape == "star":
        poly(_star(r * 1.1, a))
    elif shape == "cross":
        poly(_cross(r, a))
    elif shape == "heart":
        poly(_heart(r, a))
    elif shape in PICTOGRAMS:
        for pts, fill in PICTOGRAMS[shape]():
            d.polygon([(cx + x, cy + y) for x, y in _rotate([(x * r, y * r) for x, y in pts], a)], fill=fill)
    else:
        raise KeyError(f"unknown shape {shape!r}")
    img = img.resize((size, size), Image.BOX)
    return np.asarray(img, dtype=np.float32) / 255.0


def texture_map(texture: str, size: int, cx: float, cy: float, angle_deg: float, period: float) -> np.ndarray:
    """1 where the main colour shows, 0 where the secondary (darker) colour shows."""
    if texture == "plain":
        return np.ones((size, size), np.float32)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    a = math.radians(angle_deg + 45.0)
    u = (x - cx) * math.cos(a) + (y - cy) * math.sin(a)
    v = -(x - cx) * math.sin(a) + (y - cy) * math.cos(a)
    if texture == "striped":
        m = (np.floor(u / (period / 2)) % 2) == 0
    elif texture == "checkered":
        m = ((np.floor(u / period) + np.floor(v / period)) % 2) == 0
    elif texture == "dotted":
        du = (u % period) - period / 2
        dv = (v % period) - period / 2
        m = du * du + dv * dv > (0.3 * period) ** 2
    else:
        raise KeyError(f"unknown texture {texture!r}")
    return m.astype(np.float32)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Muted random colour with a linear gradient, a few faint blobs and pixel noise (float)."""
    grey = rng.uniform(50, 200)
    base = np.clip(grey + rng.uniform(-30, 30, size=3), 0, 255)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    a = rng.uniform(0, 2 * math.pi)
    grad = (x * math.cos(a) + y * math.sin(a))[..., None] * rng.uniform(-60, 60, size=3)
    img = base + grad
    for _ in range(rng.integers(0, 4)):  # faint blobs (low-contrast clutter)
        bx, by, br = rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(0.08, 0.25)
        blob = np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * br * br))[..., None]
        img = img + blob * rng.uniform(-35, 35, size=3)
    return img


@dataclass
class Pose:
    cx: float
    cy: float
    r: float
    angle: float
    vx: float
    vy: float
    va: float


def random_pose(rng: np.random.Generator, shape: str, size: int) -> Pose:
    r = rng.uniform(0.2, 0.34) * size
    max_rot = _MAX_ROT.get(shape, 180.0)
    return Pose(
        cx=rng.uniform(r + 1, size - r - 1), cy=rng.uniform(r + 1, size - r - 1), r=r,
        angle=rng.uniform(-max_rot, max_rot),
        vx=rng.uniform(-0.025, 0.025) * size, vy=rng.uniform(-0.025, 0.025) * size,
        va=rng.uniform(-4, 4) if max_rot > 90 else rng.uniform(-1, 1),
    )


def step_pose(p: Pose, shape: str, size: int) -> Pose:
    """Advance one frame: drift, bounce at the borders, keep rotation within limits."""
    cx, cy, vx, vy = p.cx + p.vx, p.cy + p.vy, p.vx, p.vy
    lo, hi = p.r + 1, size - p.r - 1
    if not lo <= cx <= hi:
        vx, cx = -vx, min(max(cx, lo), hi)
    if not lo <= cy <= hi:
        vy, cy = -vy, min(max(cy, lo), hi)
    angle, va = p.angle + p.va, p.va
    max_rot = _MAX_ROT.get(shape, 180.0)
    if max_rot <= 90 and abs(angle) > max_rot:
        va, angle = -va, max(-max_rot, min(max_rot, angle))
    return Pose(cx, cy, p.r, angle, vx, vy, va)


def render_frame(
    rng: np.random.Generator, shape: str, colour: str, texture: str, size: int,
    pose: Pose, bg: np.ndarray, colour_jitter: np.ndarray, period: float,
) -> np.ndarray:
    alpha = shape_mask(shape, size, pose.cx, pose.cy, pose.r, pose.angle)[..., None]
    main = np.clip(np.array(COLOURS[colour], np.float32) + colour_jitter, 0, 255)
    second = main * 0.45
    tex = texture_map(texture, size, pose.cx, pose.cy, pose.angle, period)[..., None]
    obj = tex * main + (1 - tex) * second
    img = bg * (1 - alpha) + obj * alpha
    img = img + rng.normal(0, 4.0, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_clip(rng: np.random.Generator, shape: str, colour: str, texture: str, size: int,
                num_frames: int) -> np.ndarray:
    """``(num_frames, size, size, 3)`` uint8 frames of one object moving a little."""
    bg = background(rng, size)
    pose = random_pose(rng, shape, size)
    jitter = rng.uniform(-20, 20, size=3).astype(np.float32)
    period = rng.uniform(0.14, 0.22) * pose.r * 2
    frames: List[np.ndarray] = []
    for _ in range(num_frames):
        frames.append(render_frame(rng, shape, colour, texture, size, pose, bg, jitter, period))
        pose = step_pose(pose, shape, size)
    return np.stack(frames)


def render_image(rng: np.random.Generator, shape: str, colour: str, texture: str, size: int) -> np.ndarray:
    """One still ``(size, size, 3)`` uint8 image."""
    return render_clip(rng, shape, colour, texture, size, 1)[0]
