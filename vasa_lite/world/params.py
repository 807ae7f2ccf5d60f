"""The world's parameter contract: every per-frame factor and every actor trait, with its range and unit.

Ground truth in the talking-head world is exactly these numbers, so every other module (speech,
performance, renderer, datasets, estimators) names factors through this one table.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Factor:
    name: str
    low: float
    high: float
    default: float
    unit: str
    doc: str


# Per-frame factors. Pose: z_pose's ground truth. The rest: z_dyn's ground truth (gaze is a dynamics factor
# that the controls also set).
POSE_FACTORS = (
    Factor("yaw", -35.0, 35.0, 0.0, "deg", "head turn left/right (positive: the actor turns to its left, image right)"),
    Factor("pitch", -25.0, 25.0, 0.0, "deg", "head nod (positive: chin up)"),
    Factor("roll", -20.0, 20.0, 0.0, "deg", "head tilt (positive: counter-clockwise in the image)"),
    Factor("tx", -0.15, 0.15, 0.0, "frame", "head translation, fraction of image width (positive: right)"),
    Factor("ty", -0.15, 0.15, 0.0, "frame", "head translation, fraction of image height (positive: down)"),
    Factor("distance", 0.8, 1.25, 1.0, "rel", "head-to-camera distance relative to the mean (larger: smaller head)"),
)
DYNAMICS_FACTORS = (
    Factor("jaw", 0.0, 1.0, 0.0, "open", "jaw opening (1: fully open, mouth interior and teeth visible)"),
    Factor("lip_round", -1.0, 1.0, 0.0, "shape", "lip rounding (+1, as in 'oo') vs spreading (-1, as in 'ee')"),
    Factor("lip_close", 0.0, 1.0, 0.0, "closed", "lip closure, pressed lips for p, b, m"),
    Factor("smile", -1.0, 1.0, 0.0, "shape", "mouth corners up (+1, smile) or down (-1, frown)"),
    Factor("brow_raise", 0.0, 1.0, 0.0, "raise", "both brows raised"),
    Factor("brow_furrow", 0.0, 1.0, 0.0, "furrow", "brows lowered and drawn together"),
    Factor("blink", 0.0, 1.0, 0.0, "closed", "eyelid closure (1: eyes shut)"),
    Factor("squint", 0.0, 1.0, 0.0, "squint", "lower lids raised, eyes narrowed"),
    Factor("gaze_yaw", -30.0, 30.0, 0.0, "deg", "eye direction left/right relative to the head (positive: image right)"),
    Factor("gaze_pitch", -20.0, 20.0, 0.0, "deg", "eye direction up/down relative to the head (positive: up)"),
)
FRAME_FACTORS = POSE_FACTORS + DYNAMICS_FACTORS
FRAME_FACTOR_NAMES = tuple(f.name for f in FRAME_FACTORS)
POSE_NAMES = tuple(f.name for f in POSE_FACTORS)
DYNAMICS_NAMES = tuple(f.name for f in DYNAMICS_FACTORS)
FACTORS = {f.name: f for f in FRAME_FACTORS}

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised")

FPS = 25
SAMPLE_RATE = 16_000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640 samples = 40 ms: audio and video stay exactly aligned
SIZES = (64, 128, 256)


def default_tracks(n_frames: int) -> dict[str, np.ndarray]:
    """Per-frame tracks at rest: every factor at its default, float32 arrays of length n_frames."""
    return {f.name: np.full(n_frames, f.default, np.float32) for f in FRAME_FACTORS}


def check_tracks(tracks: dict, clip: bool = False) -> dict[str, np.ndarray]:
    """Validate per-frame tracks against the table: known names, equal lengths, finite, in range.

    Missing factors take their defaults. With clip=True values are clipped into range instead of rejected.
    """
    from vasa_lite.errors import InputError

    unknown = set(tracks) - set(FACTORS)
    if unknown:
        raise InputError(f"unknown factor(s) {sorted(unknown)}; accepted: {list(FRAME_FACTOR_NAMES)}")
    lengths = {np.asarray(v).reshape(-1).shape[0] for v in tracks.values()}
    if len(lengths) > 1:
        raise InputError(f"tracks have different lengths {sorted(lengths)}; give every factor one value per frame")
    n = lengths.pop() if lengths else 1
    out = default_tracks(n)
    for name, value in tracks.items():
        arr = np.asarray(value, dtype=np.float32).reshape(-1)
        f = FACTORS[name]
        if not np.all(np.isfinite(arr)):
            raise InputError(f"factor '{name}' has NaN or Inf values; give finite numbers in [{f.low}, {f.high}] {f.unit}")
        if clip:
            arr = np.clip(arr, f.low, f.high)
        elif arr.min() < f.low - 1e-6 or arr.max() > f.high + 1e-6:
            raise InputError(
                f"factor '{name}' out of range: got [{arr.min():.3g}, {arr.max():.3g}], accepted [{f.low}, {f.high}] {f.unit}"
            )
        out[name] = arr
    return out
