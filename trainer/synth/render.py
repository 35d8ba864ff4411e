"""Draw a Scene with PIL: antialiased (drawn large, then downsampled), slightly rotated shapes.

The objects live in the central square of the canvas, so a photo-like 4:3 image centre-cropped to a
square (CLIP's preprocessing) shows the whole scene; the background fills the rest.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from trainer.synth.scenes import Scene, SceneObject

logger = logging.getLogger(__name__)

MIN_IMAGE_SIZE = 8  # the smallest image side (px) that still shows the shapes


def _star(n: int, r_in: float) -> list[tuple[float, float]]:
    pts = []
    for k in range(2 * n):
        r = 1.0 if k % 2 == 0 else r_in
        a = math.pi * k / n - math.pi / 2
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _heart() -> list[tuple[float, float]]:
    pts = []
    for k in range(64):
        t = 2 * math.pi * k / 64
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 17.0, -y / 17.0 + 0.1))
    return pts


_POLYGONS: dict[str, list[tuple[float, float]]] = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": [(0.0, -0.95), (0.95, 0.75), (-0.95, 0.75)],
    "star": _star(5, 0.42),
    "heart": _heart(),
    "cross": [
        (-0.3, -0.95),
        (0.3, -0.95),
        (0.3, -0.3),
        (0.95, -0.3),
        (0.95, 0.3),
        (0.3, 0.3),
        (0.3, 0.95),
        (-0.3, 0.95),
        (-0.3, 0.3),
        (-0.95, 0.3),
        (-0.95, -0.3),
        (-0.3, -0.3),
    ],
    "diamond": [(0.0, -1.0), (0.65, 0.0), (0.0, 1.0), (-0.65, 0.0)],
    "arrow": [
        (-0.95, -0.25),
        (0.2, -0.25),
        (0.2, -0.65),
        (0.95, 0.0),
        (0.2, 0.65),
        (0.2, 0.25),
        (-0.95, 0.25),
    ],
}


def _object_mask(obj: SceneObject, w: int, h: int, side: float, x0: float, y0: float) -> Image.Image:
    """An 'L' mask (255 inside the object) for a (w, h) canvas whose scene square is `side` px at x0,y0."""
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy, r = x0 + obj.cx * side, y0 + obj.cy * side, obj.radius * side
    box = (cx - r, cy - r, cx + r, cy + r)
    if obj.shape == "circle":
        draw.ellipse(box, fill=255)
    elif obj.shape == "ring":
        draw.ellipse(box, fill=255)
        ri = r * 0.55
        draw.ellipse((cx - ri, cy - ri, cx + ri, cy + ri), fill=0)
    elif obj.shape == "moon":
        draw.ellipse(box, fill=255)
        off = r * 0.55
        draw.ellipse((cx - r + off, cy - r - off * 0.3, cx + r + off, cy + r - off * 0.3), fill=0)
    else:
        a = math.radians(obj.angle_deg)
        ca, sa = math.cos(a), math.sin(a)
        pts = [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in _POLYGONS[obj.shape]]
        draw.polygon(pts, fill=255)
    if obj.shape == "moon" and abs(obj.angle_deg) > 0:
        mask = mask.rotate(obj.angle_deg * 3, resample=Image.Resampling.BILINEAR, center=(cx, cy))
    return mask


def _background(scene: Scene, w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(scene.bg_seed)
    c1, c2 = np.array(scene.bg_rgb, np.float32), np.array(scene.bg_rgb2, np.float32)
    kind = scene.background
    if kind == "plain":
        arr = np.broadcast_to(c1, (h, w, 3)).copy()
    elif kind == "gradient":
        a = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (xx / w - 0.5) * math.cos(a) + (yy / h - 0.5) * math.sin(a)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        arr = c1 * (1 - t[..., None]) + c2 * t[..., None]
    elif kind in ("stripes", "checker"):
        period = max(4, int(min(w, h) * rng.uniform(0.05, 0.15)))
        yy, xx = np.mgrid[0:h, 0:w]
        if kind == "stripes":
            m = ((xx + yy * int(rng.integers(0, 2))) // period) % 2
        else:
            m = (xx // period + yy // period) % 2
        c2 = c1 + (c2 - c1) * 0.35  # low contrast, so the objects stay on top
        arr = np.where(m[..., None] == 1, c2, c1)
    elif kind == "blotches":
        small = rng.normal(0, 1, size=(6, 8, 1)).astype(np.float32)
        t = (
            np.array(
                Image.fromarray(((small[..., 0] + 3) * 40).clip(0, 255).astype(np.uint8)).resize(
                    (w, h), Image.Resampling.BICUBIC
                ),
                np.float32,
            )[..., None]
            / 255.0
        )
        arr = c1 * (1 - t) + c2 * t
    else:  # noise: smooth-ish grain at a quarter of the resolution
        arr = np.broadcast_to(c1, (h, w, 3)).copy()
        gh, gw = max(1, h // 4), max(1, w // 4)
        grain = rng.normal(0, rng.uniform(6, 16), size=(gh, gw, 1)).astype(np.float32)
        g = (
            np.array(
                Image.fromarray((grain[..., 0] + 128).clip(0, 255).astype(np.uint8)).resize(
                    (w, h), Image.Resampling.BILINEAR
                ),
                np.float32,
            )[..., None]
            - 128
        )
        arr = arr + g
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def render(scene: Scene, width: int, height: int | None = None, supersample: int = 3) -> Image.Image:
    """Render a scene to an RGB image of (width, height); objects in the central square.

    Drawn at `supersample` times the size, then downsampled with a Lanczos filter (antialiasing).
    """
    height = height or width
    w, h = width * supersample, height * supersample
    side = float(min(w, h))
    x0, y0 = (w - side) / 2, (h - side) / 2
    img = _background(scene, w, h)
    for obj in scene.objects:
        mask = _object_mask(obj, w, h, side, x0, y0)
        img.paste(Image.new("RGB", (w, h), obj.rgb), (0, 0), mask)
    if supersample > 1:
        img = img.resize((width, height), Image.Resampling.LANCZOS)
    blur = scene.extra.get("blur", 0.0)
    if blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return img
