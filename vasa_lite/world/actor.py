"""Actors of the talking-head world: one identity per integer seed, every trait a continuous number.

An actor is everything about a person that stays fixed through a clip: head shape, colours, hair, eyes,
accessories, clothing, the background behind them and the light on them. The per-frame factors (pose and
dynamics) live in `params.py`; the renderer combines the two. Seed ranges are split so that validation and
test identities are never seen in training, which is what makes cross-identity metrics honest.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from vasa_lite.errors import InputError

SPLITS = {"train": (0, 100_000), "val": (100_000, 110_000), "test": (110_000, 120_000)}
DEFAULT_ACTOR_SEED = 56   # a friendly face for demos and figures

# Natural palettes; traits interpolate between neighbouring entries, so colours vary continuously.
SKIN_TONES = np.array([
    [0.98, 0.86, 0.78], [0.95, 0.79, 0.68], [0.87, 0.69, 0.57], [0.76, 0.57, 0.45],
    [0.62, 0.45, 0.34], [0.49, 0.34, 0.25], [0.37, 0.25, 0.18],
], np.float32)
HAIR_COLOURS = np.array([
    [0.07, 0.06, 0.06], [0.17, 0.11, 0.07], [0.33, 0.21, 0.12], [0.50, 0.32, 0.17],
    [0.62, 0.30, 0.14], [0.80, 0.64, 0.40], [0.93, 0.82, 0.58], [0.72, 0.71, 0.70],
], np.float32)
DYED_HAIR = np.array([[0.20, 0.35, 0.75], [0.80, 0.30, 0.55], [0.45, 0.20, 0.60], [0.20, 0.55, 0.45]], np.float32)
IRIS_COLOURS = np.array([
    [0.25, 0.14, 0.07], [0.40, 0.24, 0.10], [0.45, 0.40, 0.18], [0.25, 0.45, 0.30],
    [0.30, 0.50, 0.75], [0.50, 0.58, 0.65],
], np.float32)
LIP_TINTS = np.array([[0.80, 0.42, 0.42], [0.72, 0.33, 0.36], [0.86, 0.50, 0.48], [0.60, 0.28, 0.30]], np.float32)

_SYLLABLES = ("ka", "lo", "mi", "ra", "ne", "su", "ta", "vi", "de", "no", "ja", "ri", "el", "an", "ko", "sa",
              "mo", "li", "be", "tu", "fa", "zo", "ni", "ma")

# Background kinds: plain colour with vignette, two-colour gradient, blurred crop of a real photograph.
BG_PLAIN, BG_GRADIENT, BG_TEXTURE = 0, 1, 2


@dataclass
class Actor:
    """One identity. Lengths are in head units (half the head width is about 1); colours are RGB in [0, 1]."""

    seed: int
    name: str
    # head shape
    head_width: float
    head_length: float
    head_depth: float
    jaw_width: float
    cheeks: float
    chin: float
    skin: tuple
    # hair
    hair_volume: float
    hair_length: float
    fringe: float
    hair_part: float
    bald: float
    hair_colour: tuple
    # eyes and brows
    eye_size: float
    eye_spacing: float
    iris_colour: tuple
    brow_thickness: float
    brow_arch: float
    brow_tilt: float
    brow_colour: tuple
    # nose, mouth, ears
    nose_size: float
    nose_width: float
    lip_width: float
    lip_thickness: float
    lip_colour: tuple
    ear_size: float
    blush: float
    # accessories
    glasses: float
    glasses_colour: tuple
    glasses_shape: float
    beard: float
    moustache: float
    # body
    neck_width: float
    shoulder_width: float
    cloth_colour: tuple
    cloth_colour2: tuple
    stripes: float
    neckline: float
    # scene
    bg_kind: int
    bg_colour: tuple
    bg_colour2: tuple
    bg_texture: int
    bg_crop: tuple
    bg_angle: float
    light_dir: tuple
    light_colour: tuple
    ambient: float

    def scalar_fields(self) -> dict:
        """The numeric traits the renderer reads as tensors (colours and directions have 3 channels)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ("seed", "name", "bg_crop", "bg_kind", "bg_texture"):
                continue
            out[f.name] = getattr(self, f.name)
        return out

    def to_tensors(self, device=None) -> dict[str, torch.Tensor]:
        """Every trait as a float32 tensor: scalars have shape [], colours and directions shape [3]."""
        return {k: torch.as_tensor(np.asarray(v, np.float32), device=device) for k, v in self.scalar_fields().items()}

    @staticmethod
    def stack(actors: "list[Actor]", device=None) -> dict[str, torch.Tensor]:
        """Traits of several actors, batched along a first axis: scalars [N], colours [N, 3]."""
        if isinstance(actors, Actor):
            actors = [actors]
        if not actors:
            raise InputError("Actor.stack got an empty list; give at least one Actor")
        keys = actors[0].scalar_fields().keys()
        rows = [a.scalar_fields() for a in actors]
        return {k: torch.as_tensor(np.asarray([r[k] for r in rows], np.float32), device=device) for k in keys}

    def describe(self) -> str:
        """One line a person can read: the traits that change how the actor looks the most."""
        hair = "bald" if self.bald > 0.8 else f"hair length {self.hair_length:.2f}"
        extras = [w for w, on in (("glasses", self.glasses > 0.5), ("beard", self.beard > 0.3),
                                  ("moustache", self.moustache > 0.3)) if on]
        bg = ("plain", "gradient", "photo")[self.bg_kind]
        return f"{self.name} (seed {self.seed}): {hair}, {bg} background" + (", " + ", ".join(extras) if extras else "")


def _palette(rng: np.random.Generator, table: np.ndarray, jitter: float = 0.03) -> tuple:
    """A colour between two neighbouring palette entries, with a small random shift."""
    x = rng.uniform(0, len(table) - 1)
    i = min(int(x), len(table) - 2)
    c = table[i] * (1 - (x - i)) + table[i + 1] * (x - i)
    c = c + rng.normal(0, jitter, 3)
    return tuple(float(v) for v in np.clip(c, 0.02, 0.98))


def _hsv(h: float, s: float, v: float) -> tuple:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"actor seed must be an integer, got {seed!r}; use a seed from actor_seeds(split, n)")
    seed = int(seed)
    if seed < 0:
        raise InputError(f"actor seed must be >= 0, got {seed}; splits use seeds in {SPLITS}")
    return seed


def actor_name(seed: int) -> str:
    """A pronounceable name that is a pure function of the seed (for figure titles and logs)."""
    rng = np.random.default_rng([_check_seed(seed), 991])
    n = int(rng.integers(2, 4))
    return "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), n)).capitalize()


def sample_actor(seed: int) -> Actor:
    """The actor of an integer seed. Same seed, same actor, on every machine (numpy's PCG64 generator)."""
    seed = _check_seed(seed)
    rng = np.random.default_rng([seed, 20240417])
    u = rng.uniform

    hair_colour = _palette(rng, DYED_HAIR if u() < 0.05 else HAIR_COLOURS, 0.02)
    # Brows are usually darker than the hair; very light or grey hair gets mid-brown brows.
    hc = np.asarray(hair_colour)
    brow = np.clip(hc * 0.7 if hc.mean() < 0.5 else hc * 0.5 + 0.02, 0.03, 0.6)
    bald = float(u(0.85, 1.0)) if u() < 0.08 else float(np.clip(u(-0.6, 0.5), 0.0, 1.0))
    masculine = u()  # drives facial-hair and hair-length odds only, traits stay continuous
    beard = float(u(0.2, 1.0)) if (masculine > 0.6 and u() < 0.45) else 0.0
    moustache = float(max(beard, u(0.3, 1.0))) if (masculine > 0.6 and u() < 0.25) else beard
    length = float(u(0.0, 1.0) ** (1.6 if masculine > 0.5 else 0.6))

    bg_kind = int(rng.choice(3, p=[0.3, 0.3, 0.4]))
    bg_hue = u()
    bg1 = _hsv(bg_hue, u(0.1, 0.5), u(0.35, 0.85))
    bg2 = _hsv((bg_hue + u(-0.15, 0.15)) % 1.0, u(0.1, 0.5), u(0.25, 0.8))
    cloth_hue = u()
    cloth = _hsv(cloth_hue, u(0.2, 0.8), u(0.2, 0.85))
    cloth2 = _hsv((cloth_hue + u(0.3, 0.7)) % 1.0, u(0.1, 0.6), u(0.5, 0.95))

    az, el = np.deg2rad(u(-55, 55)), np.deg2rad(u(10, 50))
    light_dir = (float(np.sin(az) * np.cos(el)), float(np.sin(el)), float(np.cos(az) * np.cos(el)))
    warm = u(-1, 1)
    light_colour = (1.0 + 0.08 * warm, 1.0, 1.0 - 0.12 * warm)

    skin = _palette(rng, SKIN_TONES, 0.015)
    lip = np.clip(np.asarray(_palette(rng, LIP_TINTS, 0.02)) * 0.75 + np.asarray(skin) * 0.25 - 0.12, 0.05, 0.95)

    brow = np.minimum(brow, np.asarray(skin) * 0.4)   # brows must read against the skin
    return Actor(
        seed=seed, name=actor_name(seed),
        head_width=u(0.9, 1.04), head_length=u(0.94, 1.08), head_depth=u(0.95, 1.05),
        jaw_width=u(0.82, 1.06), cheeks=u(0, 1), chin=u(0.85, 1.2), skin=skin,
        hair_volume=u(0, 1), hair_length=length, fringe=u(0, 1) ** 2, hair_part=u(-1, 1), bald=bald,
        hair_colour=hair_colour,
        eye_size=u(0.92, 1.1), eye_spacing=u(0.94, 1.06), iris_colour=_palette(rng, IRIS_COLOURS, 0.03),
        brow_thickness=u(0.6, 1.4), brow_arch=u(0, 1), brow_tilt=u(-1, 1), brow_colour=tuple(float(v) for v in brow),
        nose_size=u(0.85, 1.2), nose_width=u(0.85, 1.2), lip_width=u(0.88, 1.12), lip_thickness=u(0.75, 1.3),
        lip_colour=tuple(float(v) for v in lip), ear_size=u(0.85, 1.15), blush=u(0, 1),
        glasses=float(u() < 0.22), glasses_colour=_hsv(u(), u(0, 0.7), u(0.05, 0.6)), glasses_shape=u(0, 1),
        beard=beard, moustache=moustache,
        neck_width=u(0.9, 1.1), shoulder_width=u(0.9, 1.12), cloth_colour=cloth, cloth_colour2=cloth2,
        stripes=float(u() < 0.25), neckline=u(0, 1),
        bg_kind=bg_kind, bg_colour=bg1, bg_colour2=bg2, bg_texture=int(rng.integers(0, 1 << 16)),
        bg_crop=(float(u()), float(u()), float(u(0.35, 0.9))), bg_angle=float(u(0, 2 * np.pi)),
        light_dir=light_dir, light_colour=light_colour, ambient=u(0.4, 0.55),
    )


def actor_seeds(split: str, n: int) -> list[int]:
    """The first n seeds of a split's range (train, val or test); the ranges are disjoint."""
    if split not in SPLITS:
        raise InputError(f"unknown split '{split}'; choose one of {list(SPLITS)}")
    lo, hi = SPLITS[split]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= int(n) <= hi - lo:
        raise InputError(f"n must be an integer in [0, {hi - lo}] for split '{split}', got {n!r}")
    return list(range(lo, lo + int(n)))
