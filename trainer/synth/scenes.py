"""Scenes of one to three objects and the captions that describe them.

A scene is a list of objects on a 3x3 grid (no two in one cell, no two with the same colour and shape)
over a background. Captions always name the colour and shape of every object, and often its size and
position, in varied phrasings; all in lower case, without punctuation, from ``vocab.all_words()``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from trainer.synth.vocab import COLOURS, SHAPES, SIZES

logger = logging.getLogger(__name__)

# How many objects a scene has: mostly two or three, so that captions tell scenes apart.
N_OBJECTS_P = {1: 0.15, 2: 0.55, 3: 0.3}
P_SIZE = 0.35  # chance that a caption names an object's size
# chance that a caption names an object's position, by number of objects (a lone object needs it more)
P_POSITION = {1: 0.7, 2: 0.3, 3: 0.25}
BACKGROUND_KINDS = ("plain", "gradient", "noise", "stripes", "checker", "blotches")


@dataclass(frozen=True)
class SceneObject:
    """One object: its words, and where and how it is drawn (fractions of the square canvas side)."""

    colour: str
    shape: str
    size: str
    cell: tuple[int, int]  # (row, col) in the 3x3 grid
    cx: float
    cy: float
    radius: float
    angle_deg: float
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    """A scene: objects plus a background recipe (kind, two colours, a seed for its texture)."""

    objects: tuple[SceneObject, ...]
    background: str
    bg_rgb: tuple[int, int, int]
    bg_rgb2: tuple[int, int, int]
    bg_seed: int
    extra: dict[str, float] = field(default_factory=dict)


def _jitter_rgb(
    rgb: tuple[int, int, int], rng: np.random.Generator, amount: int = 18
) -> tuple[int, int, int]:
    out = np.clip(np.array(rgb) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return (int(out[0]), int(out[1]), int(out[2]))


def _background_colour(rng: np.random.Generator, avoid: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """A muted colour (low saturation, mid value) at least ~90 RGB units from every object colour."""
    best, best_d = (128, 128, 128), -1.0
    for _ in range(30):
        h, s, v = rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.35, 0.8)
        i = int(h * 6) % 6
        f = h * 6 - int(h * 6)
        p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
        r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
        rgb = (int(r * 255), int(g * 255), int(b * 255))
        d = min(float(np.linalg.norm(np.subtract(rgb, a))) for a in avoid) if avoid else 999.0
        if d >= 90:
            return rgb
        if d > best_d:
            best, best_d = rgb, d
    return best


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a random scene. Deterministic for the generator's state."""
    n = int(rng.choice(list(N_OBJECTS_P), p=list(N_OBJECTS_P.values())))
    cells = [(r, c) for r in range(3) for c in range(3)]
    chosen = rng.choice(len(cells), size=n, replace=False)
    pairs: set[tuple[str, str]] = set()
    objects = []
    colour_names = list(COLOURS)
    for k in range(n):
        while True:
            colour = colour_names[int(rng.integers(len(colour_names)))]
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            if (colour, shape) not in pairs:
                pairs.add((colour, shape))
                break
        size = SIZES[int(rng.integers(len(SIZES)))]
        row, col = cells[int(chosen[k])]
        base = 0.145 if size == "big" else 0.095
        radius = base * rng.uniform(0.9, 1.08)
        slack = 1 / 6 - radius - 0.005  # keep the object inside its cell
        cx = (col + 0.5) / 3 + rng.uniform(-1, 1) * max(slack, 0.0) * 0.7
        cy = (row + 0.5) / 3 + rng.uniform(-1, 1) * max(slack, 0.0) * 0.7
        objects.append(
            SceneObject(
                colour=colour,
                shape=shape,
                size=size,
                cell=(row, col),
                cx=float(cx),
                cy=float(cy),
                radius=float(radius),
                angle_deg=float(rng.uniform(-15, 15)),
                rgb=_jitter_rgb(COLOURS[colour], rng),
            )
        )
    avoid = [o.rgb for o in objects]
    kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    bg1 = _background_colour(rng, avoid)
    bg2 = _background_colour(rng, avoid)
    return Scene(
        objects=tuple(objects), background=kind, bg_rgb=bg1, bg_rgb2=bg2, bg_seed=int(rng.integers(2**31 - 1))
    )


# --- captions -------------------------------------------------------------------------------------

_CORNER = {
    (0, 0): ("top", "left"),
    (0, 2): ("top", "right"),
    (2, 0): ("bottom", "left"),
    (2, 2): ("bottom", "right"),
}
_EDGE = {(0, 1): "top", (2, 1): "bottom", (1, 0): "left", (1, 2): "right"}


def position_phrase(cell: tuple[int, int], rng: np.random.Generator) -> str:
    """Words for a grid cell: "in the top left corner", "on the left", "in the middle", ..."""
    if cell in _CORNER:
        r, c = _CORNER[cell]
        return str(rng.choice([f"in the {r} {c} corner", f"at the {r} {c}", f"{r} {c}"]))
    if cell in _EDGE:
        side = _EDGE[cell]
        return str(rng.choice([f"on the {side}", f"at the {side}"]))
    return str(rng.choice(["in the middle", "in the center"]))


def _article(next_word: str) -> str:
    return "an" if next_word[0] in "aeiou" else "a"


def object_phrase(
    obj: SceneObject, rng: np.random.Generator, with_position: bool | None = None, n_objects: int = 2
) -> str:
    """ "a big red circle on the left": colour and shape always, size and position often."""
    words = []
    if rng.random() < P_SIZE:
        words.append(obj.size)
    words += [obj.colour, obj.shape]
    phrase = f"{_article(words[0])} {' '.join(words)}"
    if with_position is None:
        with_position = bool(rng.random() < P_POSITION.get(n_objects, 0.3))
    if with_position:
        phrase += " " + position_phrase(obj.cell, rng)
    return phrase


def _join(parts: list[str], rng: np.random.Generator) -> str:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2 and rng.random() < 0.3:
        return f"{parts[0]} with {parts[1]}"
    return " and ".join(parts) if rng.random() < 0.4 else " ".join(parts[:-1]) + " and " + parts[-1]


_TEMPLATES = (
    "{x}",
    "{x}",
    "{x}",
    "{x}",
    "{x}",
    "{x}",
    "there is {x}",
    "i see {x}",
    "a picture of {x}",
    "here is {x}",
)


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """One caption naming every object of the scene, in a random order and phrasing."""
    order = rng.permutation(len(scene.objects))
    parts = [object_phrase(scene.objects[int(i)], rng, n_objects=len(order)) for i in order]
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    return template.format(x=_join(parts, rng))


def query_text(scene: Scene, rng: np.random.Generator) -> str:
    """A short search query for a scene: one or two of its objects, positions rarely."""
    k = 1 if len(scene.objects) == 1 else int(rng.integers(1, 3))
    idx = rng.choice(len(scene.objects), size=k, replace=False)
    parts = [object_phrase(scene.objects[int(i)], rng, with_position=bool(rng.random() < 0.3)) for i in idx]
    return " and ".join(parts)
