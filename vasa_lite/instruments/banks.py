"""Frame banks for the instruments: rendered once, cached as uint8 arrays under data/cache/instruments_<preset>/.

Rendering costs 10-40 ms a frame on a CPU, so the instruments never render inside their training loops:

- **pose bank** (`pose_bank`): random renders of a split's actors, each frame with head pose, gaze, distance and
  position drawn uniformly over the factor table's ranges (coverage beyond what clips visit), and the expression
  factors (mouth, brows, lids, smile) copied from a random frame of a random clip of the same split, so that each
  frame carries that clip's emotion as a label. Used by the attribute estimator and the identity network.
- **clip bank** (`clip_bank`): every clip of a split rendered in order. Kept per frame: the lower-face crop at
  the ground-truth face track (grayscale, with a margin for jitter; SyncNet), the frame at FVD-lite's size and,
  for evaluation splits, the full frame (so the instruments' own tracker can be tested on real pixels).

The face track of a frame is (x, y, scale, angle): the mouth's rest position in pixels (the mouth landmark with
the jaw and lips at rest, so it moves with the head only), pixels per head unit, and the in-image angle of the
line through the eyes (radians, counter-clockwise). SyncNet crops the lower face along it; the attribute
estimator learns to predict it from pixels, so generated videos need no landmarks.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vasa_lite.config import get_preset
from vasa_lite.errors import InputError
from vasa_lite.paths import CACHE_DIR
from vasa_lite.world.params import EMOTIONS, FACTORS, FRAME_FACTOR_NAMES, POSE_NAMES

# Factors drawn uniformly per frame; the others (the face's expression) come from clip frames.
RANDOM_FACTORS = POSE_NAMES + ("gaze_yaw", "gaze_pitch")
EXPRESSION_FACTORS = tuple(n for n in FRAME_FACTOR_NAMES if n not in RANDOM_FACTORS)
MOUTH_AT_REST = ("jaw", "lip_close", "lip_round", "smile")
MARGIN = 1.25          # stored mouth crops cover 1.25x the SyncNet crop, room for jitter augmentation


def cache_dir(preset, root=None) -> Path:
    return Path(root) if root else CACHE_DIR / f"instruments_{get_preset(preset).name}"


def face_track(actors, tracks: dict, size: int) -> np.ndarray:
    """Ground-truth face track [N, 4] (mouth-rest x px, y px, px per head unit, eye-line angle rad)."""
    from vasa_lite.world.render import landmarks

    rest = dict(tracks)
    n = len(next(iter(tracks.values())))
    for k in MOUTH_AT_REST:
        rest[k] = np.zeros(n, np.float32)
    lm = landmarks(actors, rest, size)
    el, er = lm["eye_left"], lm["eye_right"]
    angle = np.arctan2(-(er[:, 1] - el[:, 1]), er[:, 0] - el[:, 0])
    return np.stack([lm["mouth"][:, 0], lm["mouth"][:, 1], lm["head_scale"], angle], 1).astype(np.float32)


def to_gray(frames: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 1, H, W] luminance (ITU-R 601 weights)."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=frames.dtype, device=frames.device).view(1, 3, 1, 1)
    return (frames * w).sum(1, keepdim=True)


def aligned_crop(frames: torch.Tensor, track, out_hw: tuple, below: float, half_w: float, half_h: float,
                 gray: bool = False) -> torch.Tensor:
    """Crops [N, C, h, w] of frames along a face track [N, 4]: centred `below` head units under the mouth's rest
    point (negative: above), `half_w` x `half_h` head units either side, rotated with the eye line."""
    n, _, H, W = frames.shape
    tr = torch.as_tensor(np.asarray(track), dtype=torch.float32, device=frames.device).reshape(-1, 4)
    if len(tr) != n:
        raise InputError(f"face track has {len(tr)} rows for {n} frames")
    c, s = torch.cos(tr[:, 3]), torch.sin(tr[:, 3])
    ex, ey = torch.stack([c, -s], 1), torch.stack([s, c], 1)        # the crop's x and y axes in image pixels
    scale = tr[:, 2:3]
    ctr = tr[:, :2] + below * scale * ey
    wh = torch.tensor([W, H], dtype=torch.float32, device=frames.device)
    theta = torch.stack([ex * half_w * scale * 2 / wh, ey * half_h * scale * 2 / wh, ctr * 2 / wh - 1], 2)
    src = to_gray(frames) if gray else frames
    grid = F.affine_grid(theta, (n, src.shape[1], *out_hw), align_corners=False)
    return F.grid_sample(src, grid, align_corners=False, padding_mode="border")


def crop_lower_face(frames: torch.Tensor, track, out_hw: tuple, zoom: float = 1.0) -> torch.Tensor:
    """Grayscale lower-face crops [N, h, w] in [0, 1] along a face track [N, 4] (see module doc).

    The crop is 2.2 x 1.1 head units (times `zoom`), centred 0.15 units below the mouth's rest point and rotated
    with the eye line, so the mouth sits at the same place and size whatever the head does.
    """
    return aligned_crop(frames, track, out_hw, 0.15, 1.1 * zoom, 0.55 * zoom, gray=True)[:, 0]


def crop_face(frames: torch.Tensor, track, size: int) -> torch.Tensor:
    """RGB face crops [N, 3, size, size] along a face track: 2.8 x 2.8 head units centred half a unit above the
    mouth's rest point (brows to chin, ears cut), rotated with the eye line."""
    return aligned_crop(frames, track, (size, size), -0.5, 1.4, 1.4)


def resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Square frames [N, C, H, W] to size x size (area-averaged when shrinking)."""
    if frames.shape[-1] == size and frames.shape[-2] == size:
        return frames
    return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def as_frames(frames, what: str = "frames", min_frames: int = 1) -> torch.Tensor:
    """Video as float32 [N, 3, H, W] in [0, 1], or an InputError that says what to fix.

    Accepts tensors or arrays [N, 3, H, W] or [N, H, W, 3], float in [0, 1] or uint8 (0-255)."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not torch.is_tensor(frames):
        raise InputError(f"{what} must be a tensor or array [N, 3, H, W] (or [N, H, W, 3]), got {type(frames).__name__}")
    x = frames.detach()
    if x.dim() != 4 or 3 not in (x.shape[1], x.shape[-1]):
        raise InputError(f"{what} has shape {tuple(x.shape)}; give RGB video [N, 3, H, W] or [N, H, W, 3]")
    if x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    x = x.float()
    if len(x) < min_frames:
        raise InputError(f"{what} has {len(x)} frames; this needs at least {min_frames}")
    if min(x.shape[-2:]) < 16:
        raise InputError(f"{what} are {x.shape[-1]}x{x.shape[-2]} px; give frames of at least 16x16 px")
    if not torch.isfinite(x).all():
        raise InputError(f"{what} contain NaN or Inf values; give finite pixel values in [0, 1]")
    if x.min() < -1e-3 or x.max() > 1 + 1e-3:
        raise InputError(f"{what} have values in [{x.min():.3g}, {x.max():.3g}]; give floats in [0, 1] or uint8")
    return x.clamp(0, 1).contiguous()


def bank_batch(arr, idx) -> torch.Tensor:
    """Rows `idx` of a uint8 bank array as float32 in [0, 1] (sorted reads are faster on a memory map)."""
    idx = np.asarray(idx)
    order = np.argsort(idx, kind="stable")
    out = np.empty((len(idx),) + arr.shape[1:], np.uint8)
    out[order] = arr[idx[order]]
    return torch.from_numpy(out).float().div_(255.0)


def bank_clip_frames(bank: dict, i: int) -> torch.Tensor:
    """Clip i of a clip bank's full frames (clip_bank with full=True) as float32 [T, 3, S, S] in [0, 1]."""
    off = bank["offsets"]
    return bank_batch(bank["frames"], np.arange(int(off[i]), int(off[i + 1])))


def augment_frames(x: torch.Tensor, gen: torch.Generator, colour: bool = True) -> torch.Tensor:
    """Mild photometric noise so an instrument also reads imperfect (generated) frames: optional brightness and
    contrast jitter (off for identity, where colour is part of who someone is), a blur on a quarter of the
    frames, and pixel noise."""
    n = x.shape[0]
    if colour:
        gain = 1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.2
        bias = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.1
        x = (x - 0.5) * gain + 0.5 + bias
    blur = torch.rand(n, generator=gen) < 0.25
    if blur.any():
        h, w = x.shape[-2:]
        xb = x[blur]
        x = x.clone()
        x[blur] = F.interpolate(F.interpolate(xb, scale_factor=0.5, mode="bilinear", antialias=True,
                                              align_corners=False), size=(h, w), mode="bilinear", align_corners=False)
    sigma = torch.rand(n, *([1] * (x.dim() - 1)), generator=gen) * 0.03
    return (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def roc_auc(pos, neg) -> float:
    """Area under the ROC curve: the probability that a positive scores above a negative (ties count half)."""
    from scipy.stats import rankdata

    pos, neg = np.asarray(pos, np.float64).ravel(), np.asarray(neg, np.float64).ravel()
    if len(pos) == 0 or len(neg) == 0:
        raise InputError("roc_auc needs at least one positive and one negative score")
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _u8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def _save(path: Path, arrays: dict, meta: dict) -> None:
    """Big arrays as .npy (memory-mapped on load), small ones and meta in one .npz; the .npz is written last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    small = {}
    for k, v in arrays.items():
        if v.nbytes > 64 * 2**20 or v.dtype == np.uint8:
            tmp = path.with_name(f"{path.stem}.{k}.tmp.npy")
            np.save(tmp, v)
            os.replace(tmp, path.with_name(f"{path.stem}.{k}.npy"))
        else:
            small[k] = v
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **small)
    os.replace(tmp, path)


def _load(path: Path) -> dict:
    with np.load(path) as z:
        out = {k: z[k] for k in z.files if k != "meta"}
        out["meta"] = json.loads(z["meta"].tobytes().decode())
    for f in path.parent.glob(f"{path.stem}.*.npy"):
        if ".tmp." not in f.name:
            out[f.name[len(path.stem) + 1:-4]] = np.load(f, mmap_mode="r")
    return out


# ------------------------------------------------------------------------------------------------ pose bank

# What surrounds a person rather than what they are: background, clothes and light.
SCENE = ("bg_kind", "bg_colour", "bg_colour2", "bg_texture", "bg_crop", "bg_angle", "cloth_colour", "cloth_colour2",
         "stripes", "neckline", "light_dir", "light_colour", "ambient")


def _with_scene(actor, donor):
    import dataclasses

    return dataclasses.replace(actor, **{f: getattr(donor, f) for f in SCENE})



def pose_bank(preset="cpu", split: str = "train", per_actor: "int | None" = None, root=None, world_root=None,
              seed: int = 0, progress: bool = True, rebuild: bool = False, size: "int | None" = None,
              swap_scene: bool = False, pose_range: float = 1.0) -> dict:
    """Random-pose renders of a split's actors (built on first use, then loaded from the cache).

    Returns {"frames": uint8 [N, 3, S, S], "tracks": float32 [N, 16] (FRAME_FACTOR_NAMES order), "emotion": [N],
    "actor": [N] actor seeds, "track": [N, 4] face track, "meta"}; S is `size` (default: the preset's world size).
    swap_scene: each frame takes its background, clothes and light from another actor of the split (`SCENE`), so
    that only the person is left to tell actors apart (the identity network's data).
    pose_range: head pose and gaze are uniform over this fraction of each factor's range, around its default
    (1: the whole range; the latent space's bank uses a talking head's narrower range).
    """
    from tqdm.auto import tqdm

    from vasa_lite.training import load_split
    from vasa_lite.world.actor import actor_seeds, sample_actor
    from vasa_lite.world.render import Renderer

    p = get_preset(preset)
    cfg = p.instruments
    per_actor = int(per_actor or (cfg.train_per_actor if split == "train" else cfg.test_per_actor))
    n_actors = {"train": p.world.n_train_actors, "val": p.world.n_val_actors, "test": p.world.n_test_actors}[split]
    size = int(size or p.world.size)
    if not 0 < pose_range <= 1:
        raise InputError(f"pose_range must be in (0, 1], got {pose_range}")
    tag = (("" if size == p.world.size else f"_{size}px") + ("_swapped" if swap_scene else "")
           + ("" if pose_range == 1 else f"_pose{int(round(pose_range * 100))}"))
    path = cache_dir(p, root) / f"pose_{split}_{per_actor}{tag}.npz"
    if path.exists() and not rebuild:
        return _load(path)
    clips = load_split(p, split, root=world_root)
    if not clips:
        raise InputError(f"the '{p.name}' world has no {split} clips; build it: vasa-lite world build --preset {p.name}")
    rng = np.random.default_rng([seed, 7, ["train", "val", "test"].index(split)])
    seeds = np.repeat(np.asarray(actor_seeds(split, n_actors)), per_actor)
    n = len(seeds)
    tracks = np.zeros((n, len(FRAME_FACTOR_NAMES)), np.float32)
    emotion = np.zeros(n, np.int64)
    for j, name in enumerate(FRAME_FACTOR_NAMES):
        if name in RANDOM_FACTORS:
            fa = FACTORS[name]
            lo, hi = fa.default + pose_range * (fa.low - fa.default), fa.default + pose_range * (fa.high - fa.default)
            tracks[:, j] = rng.uniform(lo, hi, n)
    for i in range(n):
        c = clips[int(rng.integers(len(clips)))]
        f = int(rng.integers(len(c["tracks"])))
        for j, name in enumerate(FRAME_FACTOR_NAMES):
            if name in EXPRESSION_FACTORS:
                tracks[i, j] = c["tracks"][f, j]
        emotion[i] = EMOTIONS.index(c["meta"]["emotion"])
    donors = np.random.default_rng([seed, 11, ["train", "val", "test"].index(split)]).choice(
        np.unique(seeds), n) if swap_scene else seeds
    renderer = Renderer(size)
    frames = np.zeros((n, 3, size, size), np.uint8)
    track = np.zeros((n, 4), np.float32)
    bs = 64
    t0 = time.perf_counter()
    for s in tqdm(range(0, n, bs), desc=f"pose bank {split}", disable=not progress, unit="batch"):
        sl = slice(s, min(n, s + bs))
        actors = [_with_scene(sample_actor(int(a)), sample_actor(int(d))) if swap_scene else sample_actor(int(a))
                  for a, d in zip(seeds[sl], donors[sl])]
        named = {name: tracks[sl, j] for j, name in enumerate(FRAME_FACTOR_NAMES)}
        frames[sl] = _u8(renderer.render(actors, named))
        track[sl] = face_track(actors, named, size)
    meta = {"preset": p.name, "split": split, "size": size, "per_actor": per_actor, "seed": seed,
            "swap_scene": bool(swap_scene), "pose_range": float(pose_range),
            "factors": list(FRAME_FACTOR_NAMES), "render_seconds": round(time.perf_counter() - t0, 1)}
    _save(path, {"frames": frames, "tracks": tracks, "emotion": emotion, "actor": seeds.astype(np.int64),
                 "track": track}, meta)
    return _load(path)


# ------------------------------------------------------------------------------------------------ clip bank


def clip_bank(preset="cpu", split: str = "train", full: "bool | None" = None, limit: "int | None" = None, root=None,
              world_root=None, progress: bool = True, rebuild: bool = False, actors: "int | None" = None) -> dict:
    """Every clip of a split rendered once: per-frame mouth crops, small frames and (full=True) full frames.

    Returns {"offsets": [C + 1] first frame of each clip, "mouth": uint8 [F, h, w] ground-truth-tracked crops at
    MARGIN x SyncNet's crop, "small": uint8 [F, 3, s, s] at FVD-lite's size, "frames" (full only), "tracks"
    [F, 16], "track" [F, 4], "emotion" [C], "actor" [C], "meta"}. Audio stays in the world cache (load_split).
    full defaults to True for val/test splits (evaluation needs real pixels) and False for train. actors: the split's
    first `actors` actors instead of the preset's count (training.load_split), cached apart.
    """
    from tqdm.auto import tqdm

    from vasa_lite.training import load_split
    from vasa_lite.world.actor import sample_actor
    from vasa_lite.world.render import Renderer

    p = get_preset(preset)
    cfg = p.instruments
    full = (split != "train") if full is None else bool(full)
    tag = f"clips_{split}" + (f"_a{actors}" if actors else "") + (f"_{limit}" if limit else "")
    path = cache_dir(p, root) / f"{tag}.npz"
    if path.exists() and not rebuild:
        bank = _load(path)
        if not full or "frames" in bank:
            return bank
    clips = load_split(p, split, limit=limit, root=world_root, actors=actors)
    if not clips:
        raise InputError(f"the '{p.name}' world has no {split} clips; build it: vasa-lite world build --preset {p.name}")
    size = p.world.size
    mh, mw = round(cfg.sync.crop_h * MARGIN), round(cfg.sync.crop_w * MARGIN)
    lengths = [len(c["tracks"]) for c in clips]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    fs = cfg.fvd.size
    mouth = np.zeros((total, mh, mw), np.uint8)
    small = np.zeros((total, 3, fs, fs), np.uint8)
    frames = np.zeros((total, 3, size, size), np.uint8) if full else None
    tracks = np.concatenate([c["tracks"] for c in clips]).astype(np.float32)
    track = np.zeros((total, 4), np.float32)
    renderer = Renderer(size)
    t0 = time.perf_counter()
    for ci, c in enumerate(tqdm(clips, desc=f"clip bank {split}", disable=not progress, unit="clip")):
        actor = sample_actor(int(c["meta"]["actor_seed"]))
        named = {name: c["tracks"][:, j] for j, name in enumerate(FRAME_FACTOR_NAMES)}
        tr = face_track(actor, named, size)
        a = int(offsets[ci])
        k = a
        for batch in renderer.render_clip(actor, named, batch=32):
            b = len(batch)
            mouth[k:k + b] = _u8(crop_lower_face(batch, tr[k - a:k - a + b], (mh, mw), zoom=MARGIN))
            small[k:k + b] = _u8(resize(batch, fs))
            if full:
                frames[k:k + b] = _u8(batch)
            k += b
        track[a:a + len(tr)] = tr
    meta = {"preset": p.name, "split": split, "size": size, "clips": len(clips), "frames": total,
            "render_seconds": round(time.perf_counter() - t0, 1)}
    arrays = {"offsets": offsets, "mouth": mouth, "small": small, "tracks": tracks, "track": track,
              "emotion": np.asarray([EMOTIONS.index(c["meta"]["emotion"]) for c in clips], np.int64),
              "actor": np.asarray([c["meta"]["actor_seed"] for c in clips], np.int64)}
    if full:
        arrays["frames"] = frames
    _save(path, arrays, meta)
    return _load(path)


def bank_clip_audio(preset, split: str = "train", limit: "int | None" = None, world_root=None) -> list:
    """The float32 16 kHz audio of each clip of a bank, in bank order."""
    from vasa_lite.training import load_split

    return [c["audio"] for c in load_split(preset, split, limit=limit, root=world_root)]


__all__ = ["pose_bank", "clip_bank", "bank_clip_audio", "face_track", "aligned_crop", "crop_lower_face", "crop_face",
           "resize", "to_gray", "as_frames", "bank_batch", "augment_frames", "roc_auc", "cache_dir", "MARGIN", "SCENE"]
