"""Motion sequences for the generator, made from world clips the way VASA-1 makes them from talking videos.

For each clip of a split:
1. render its frames with the world renderer at the preset's size (pixels, as a video would give them);
2. encode each frame's motion [z_pose, z_dyn] with the trained face latent model (`latent.load_latent`);
3. encode the speech into one audio feature per frame with the trained audio encoder (`audio.load_audio_encoder`);
4. read the controls from the rendered frames with the attribute estimator (`instruments.attributes`), as the
   paper extracts them from video: per-frame gaze (2 angles, degrees, relative to the head) and head distance,
   and the clip's emotion as emotion probabilities averaged over the clip (one frame of speech can look like
   another emotion; the paper averages its emotion-recognizer coefficients too). The world's ground truth
   (gaze, distance, emotion) is kept beside them, only to check the estimates (`control_errors`).

A window's gaze and distance conditions are the means over its frames (gaze only over frames with open eyes),
the paper's "main" gaze direction; its emotion is its clip's.

Everything is cached as one npz per split under data/cache/motion_<preset>/ (the pattern of
instruments.banks.cache_dir), keyed on the content of the latent, audio and attribute checkpoints and on the
world's index: training a new latent model (or encoder, or estimator) builds the cache anew.

`motion_stats` gives the per-dimension mean and std of the training motion (and the distance's), which the
network keeps as buffers: a motion checkpoint generates without any data.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from vasa_lite.config import get_preset
from vasa_lite.errors import InputError
from vasa_lite.paths import CACHE_DIR
from vasa_lite.world.params import EMOTIONS, FRAME_FACTOR_NAMES

BLINK_SHUT = 0.6           # gaze cannot be seen through shut eyes (as instruments.attributes)
_GAZE_COLS = [FRAME_FACTOR_NAMES.index("gaze_yaw"), FRAME_FACTOR_NAMES.index("gaze_pitch")]
_DIST_COL = FRAME_FACTOR_NAMES.index("distance")
_HASHES: dict = {}


def cache_dir(preset, root=None) -> Path:
    """Where a preset's motion sequences are cached: data/cache/motion_<preset>/ (or root)."""
    return Path(root) if root else CACHE_DIR / f"motion_{get_preset(preset).name}"


def file_identity(path) -> str:
    """A short content hash of a file (sha256, 12 hex digits), "missing" when it does not exist. Cached per
    (path, size, mtime), so asking twice costs nothing."""
    path = Path(path)
    if not path.exists():
        return "missing"
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()[:12]
    return _HASHES[key]


MOTION_ENCODERS = ("pose", "dynamics")       # the latent model's parts that make [z_pose, z_dyn]


def encoder_identity(path) -> str:
    """A short hash of the weights of the latent model's motion encoders (pose and dynamics) in a latent checkpoint,
    "missing" when there is none. Motion codes depend on these alone, so a fine-tune of the decoder with them
    frozen keeps every cached sequence and trained motion model valid."""
    from vasa_lite.checkpoints import load_checkpoint

    path = Path(path)
    if not path.exists():
        return "missing"
    st = path.stat()
    key = ("encoders", str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        state, _ = load_checkpoint(path, component="latent")
        h = hashlib.sha256()
        for name in sorted(k for k in state if k.split(".")[0] in MOTION_ENCODERS):
            h.update(name.encode())
            h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
        _HASHES[key] = h.hexdigest()[:12]
    return _HASHES[key]


def latent_sources(meta: dict, latent) -> "tuple[str | None, str]":
    """The motion encoders a motion model learned from (recorded in its metadata; None when it predates the record)
    and those of the latent checkpoint `latent` now ("missing" when there is none): the model is stale when they
    differ."""
    trained_on = ((meta.get("extra") or {}).get("sources") or {}).get("latent")
    return trained_on, encoder_identity(latent)


def source_identity(preset, world_root=None, split: str = "train", latent=None) -> dict:
    """The content identities of what a split's motion sequences are made from: the latent model's motion encoders
    (the preset's, or those of the checkpoint `latent`), audio and attribute checkpoints and the world's index of the split. Recorded in the
    cache's name and in motion checkpoints."""
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.world.dataset import default_root

    p = get_preset(preset)
    index = (Path(world_root) if world_root else default_root(p)) / f"{split}.json"
    return {"latent": encoder_identity(latent or checkpoint_path("latent", p.name)),
            "audio": file_identity(checkpoint_path("audio", p.name)),
            "attributes": file_identity(checkpoint_path("attributes", p.name)),
            "world": file_identity(index) if index.exists() else f"generated:{p.hash()}"}


def _key(ids: dict, p) -> str:
    blob = json.dumps({"ids": ids, "size": p.world.size, "latent": p.latent.dyn_dim, "audio": p.audio.width},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def motion_data(preset="cpu", split: str = "train", root=None, world_root=None, progress: bool = True,
                rebuild: bool = False, device=None, latent=None) -> dict:
    """A split's motion sequences (all clips end to end, `offsets` marks where each starts), from the cache or built.

    Per frame: "motion" [N, 6 + dyn_dim] ([z_pose, z_dyn]), "audio" [N, D] features, estimated "gaze" [N, 2]
    (degrees), "distance" [N], "blink" [N]; ground truth "gaze_true" [N, 2], "distance_true" [N]. Per clip:
    "offsets" [C + 1], "emotion" [C, 5] (estimated probabilities), "emotion_true" [C] (index into EMOTIONS),
    "intensity" [C], "actor" [C]. "meta": {"split", "preset", "ids", "seconds"}. latent: another latent checkpoint
    of the preset to encode with (e.g. a fine-tuned one; default the preset's)."""
    p = get_preset(preset)
    ids = source_identity(p, world_root, split, latent)
    folder = cache_dir(p, root)
    path = folder / f"{split}_{_key(ids, p)}.npz"
    if path.exists() and not rebuild:
        return _load(path)
    data = _build(p, split, ids, world_root, progress, device, latent)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{split}_*.npz"):            # caches made from other checkpoints are stale now
        if old != path and latent is None:
            old.unlink()
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **{k: v for k, v in data.items() if k != "meta"},
             meta=np.frombuffer(json.dumps(data["meta"]).encode(), dtype=np.uint8))
    os.replace(tmp, path)
    return data


def _load(path) -> dict:
    with np.load(path) as z:
        out = {k: z[k] for k in z.files if k != "meta"}
        out["meta"] = json.loads(z["meta"].tobytes().decode())
    return out


@torch.no_grad()
def _build(p, split: str, ids: dict, world_root, progress: bool, device, latent_path=None) -> dict:
    from tqdm.auto import tqdm

    from vasa_lite.audio import load_audio_encoder
    from vasa_lite.device import pick_device
    from vasa_lite.instruments.attributes import load_attributes
    from vasa_lite.latent import load_latent
    from vasa_lite.latent.evaluate import codes_of
    from vasa_lite.training import load_split
    from vasa_lite.world.actor import sample_actor
    from vasa_lite.world.render import Renderer

    clips = load_split(p, split, root=world_root)
    if not clips:
        raise InputError(f"the '{p.name}' world has no {split} clips; build it: "
                         f"vasa-lite world build --preset {p.name}")
    dev = pick_device(device)
    latent = load_latent(p, path=latent_path, device=dev)
    audio_enc, attributes = load_audio_encoder(p, device=dev), load_attributes(p, device=dev)
    renderer = Renderer(p.world.size)
    t0 = time.perf_counter()
    parts: dict = {k: [] for k in ("motion", "audio", "gaze", "distance", "blink", "gaze_true", "distance_true")}
    emotion, emotion_true, intensity, actor, lengths = [], [], [], [], []
    for clip in tqdm(clips, desc=f"motion {split}", disable=not progress, unit="clip"):
        feats = audio_enc.encode_array(clip["audio"]).numpy()
        n = min(len(clip["tracks"]), len(feats))           # both are ceil(samples / 640); guard anyway
        tracks = clip["tracks"][:n]
        frames = renderer.render(sample_actor(clip["meta"]["actor_seed"]),
                                 {name: tracks[:, j] for j, name in enumerate(FRAME_FACTOR_NAMES)})
        codes = codes_of(latent, frames)                    # batched: bounded memory on long clips
        est = attributes.predict(frames)
        parts["motion"].append(np.c_[codes["z_pose"], codes["z_dyn"]])
        parts["audio"].append(feats[:n])
        parts["gaze"].append(np.stack([est["gaze_yaw"], est["gaze_pitch"]], 1))
        parts["distance"].append(est["distance"])
        parts["blink"].append(est["blink"])
        parts["gaze_true"].append(tracks[:, _GAZE_COLS])
        parts["distance_true"].append(tracks[:, _DIST_COL])
        emotion.append(torch.from_numpy(est["emotion_logits"].mean(0)).softmax(-1).numpy())   # as clip_emotion
        emotion_true.append(EMOTIONS.index(clip["meta"]["emotion"]))
        intensity.append(float(clip["meta"]["intensity"]))
        actor.append(int(clip["meta"]["actor_seed"]))
        lengths.append(n)
    out = {k: np.concatenate(v).astype(np.float32) for k, v in parts.items()}
    out.update(offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
               emotion=np.stack(emotion).astype(np.float32), emotion_true=np.asarray(emotion_true, np.int64),
               intensity=np.asarray(intensity, np.float32), actor=np.asarray(actor, np.int64))
    out["meta"] = {"split": split, "preset": p.name, "ids": ids, "clips": len(lengths), "frames": int(sum(lengths)),
                   "seconds": round(time.perf_counter() - t0, 1)}
    return out


def mel_features(audio, norm: "dict | None" = None) -> np.ndarray:
    """Generic audio features, the ablation of the pretrained encoder: the log-mel rows of each 40 ms video frame
    stacked ([T, 4 x 80], T = ceil(samples / 640)), standardised per dimension with `norm` ({"mean", "std"})."""
    from vasa_lite.audio import log_mel, mel_frames_per_video_frame, n_video_frames

    k = mel_frames_per_video_frame()
    mel = log_mel(audio)
    T = n_video_frames(len(audio))
    mel = np.concatenate([mel, np.repeat(mel[-1:], max(0, T * k - len(mel)), 0)])[:T * k]
    out = mel.reshape(T, -1).astype(np.float32)
    if norm is not None:
        out = (out - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    return out


def with_mel_features(data: dict, clips: list, norm: "dict | None" = None) -> "tuple[dict, dict]":
    """The motion sequences of `data` with mel_features of the same clips (load_split's, in the same order) as their
    audio; norm: the standardisation (default: fitted on these clips). Returns (data, norm)."""
    off = np.asarray(data["offsets"])
    if len(clips) != len(off) - 1:
        raise InputError(f"{len(clips)} clips for {len(off) - 1} motion sequences; give the same split")
    raw = [mel_features(c["audio"])[:off[i + 1] - off[i]] for i, c in enumerate(clips)]
    if norm is None:
        allf = np.concatenate(raw).astype(np.float64)
        norm = {"mean": allf.mean(0).astype(np.float32).tolist(),
                "std": np.maximum(allf.std(0), 1e-3).astype(np.float32).tolist()}
    m, sd = np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)
    out = dict(data)
    out["audio"] = np.concatenate([(r - m) / sd for r in raw]).astype(np.float32)
    return out, norm


def motion_stats(data: dict) -> dict:
    """Per-dimension mean and std of the motion (std floored at 1e-3 of the largest, so a dead dimension of z_dyn
    does not blow up), and the estimated distance's mean and std. Computed on the train split only."""
    m = np.asarray(data["motion"], np.float64)
    std = m.std(0)
    d = np.asarray(data["distance"], np.float64)
    return {"mean": m.mean(0).astype(np.float32).tolist(),
            "std": np.maximum(std, 1e-3 * std.max() + 1e-8).astype(np.float32).tolist(),
            "distance_mean": float(d.mean()), "distance_std": float(max(d.std(), 0.02))}


def control_errors(data: dict) -> dict:
    """How far the estimated controls are from the world's truth: mean absolute gaze and distance errors per frame
    and the clip emotion accuracy. What a student checks before trusting the estimator's conditions."""
    eye_open = data["blink"] < BLINK_SHUT
    g = np.abs(data["gaze"] - data["gaze_true"])[eye_open]
    return {"gaze_yaw_mae": float(g[:, 0].mean()), "gaze_pitch_mae": float(g[:, 1].mean()),
            "distance_mae": float(np.abs(data["distance"] - data["distance_true"]).mean()),
            "emotion_acc": float((data["emotion"].argmax(1) == data["emotion_true"]).mean())}


def first_clips(data: dict, k: int) -> dict:
    """The same sequences cut to their first k clips."""
    k = max(1, min(int(k), len(data["offsets"]) - 1))
    end = int(data["offsets"][k])
    n_frames, n_clips = len(data["motion"]), len(data["offsets"]) - 1
    out = {}
    for key, v in data.items():
        if key == "offsets":
            out[key] = v[:k + 1]
        elif key != "meta" and len(v) == n_frames:
            out[key] = v[:end]
        elif key != "meta" and len(v) == n_clips:
            out[key] = v[:k]
        else:
            out[key] = v
    return out


def sample_windows(data: dict, n: int, window: int, prev: int, generator: torch.Generator, ahead: int = 0) -> dict:
    """n random training windows as torch tensors (motion not yet normalised).

    A clip is drawn with probability proportional to its length, then a start uniformly among those that keep the
    window inside the clip. A clip shorter than the window is padded: "valid" [n, W] marks real frames (the loss
    skips the rest) and "audio_len" [n] counts them, so its missing audio is the paper's truncated audio. "prev_ok"
    [n] is False when the window starts less than `prev` frames into its clip: it has no history, and its previous
    window is dropped. ahead: frames of audio after the window ("next_audio" [n, ahead, D], zero past the clip's
    end), the lookahead of an audio-context projection.

    Returns "motion" [n, W, M], "audio" [n, W, D], "audio_len", "valid", "prev_motion" [n, P, M], "prev_audio"
    [n, P, D], "prev_ok", the controls "gaze" [n, 2], "distance" [n], "emotion" [n, 5], and their truth
    "gaze_true", "distance_true", "emotion_true"."""
    off = np.asarray(data["offsets"])
    lengths = np.diff(off)
    clip = torch.multinomial(torch.as_tensor(lengths, dtype=torch.float64), n, replacement=True,
                             generator=generator).numpy()
    room = np.maximum(lengths[clip] - window, 0) + 1
    start = (torch.rand(n, generator=generator, dtype=torch.float64).numpy() * room).astype(np.int64)
    length = lengths[clip]
    local = start[:, None] + np.arange(window)[None]                  # [n, W] frame index inside the clip
    valid = local < length[:, None]
    idx = off[clip][:, None] + np.minimum(local, length[:, None] - 1)
    pidx = off[clip][:, None] + np.maximum(start[:, None] - prev + np.arange(prev)[None], 0)
    motion, audio = data["motion"], data["audio"]
    nlocal = start[:, None] + window + np.arange(ahead)[None]          # [n, ahead] frames after the window
    nvalid = nlocal < length[:, None]
    nidx = off[clip][:, None] + np.minimum(nlocal, length[:, None] - 1)

    # window controls: mean gaze over the window's real frames with open eyes, mean distance; the clip's emotion
    gz, open_ = data["gaze"][idx], (data["blink"][idx] < BLINK_SHUT) & valid
    w_open = np.where(open_.any(1, keepdims=True), open_, valid).astype(np.float32)
    gaze = (gz * w_open[..., None]).sum(1) / w_open.sum(1, keepdims=True)
    w = valid.astype(np.float32)
    mean = lambda x: (x * w).sum(1) / w.sum(1)      # noqa: E731
    gz_t = data["gaze_true"][idx]
    t = lambda x, dt=torch.float32: torch.as_tensor(np.ascontiguousarray(x), dtype=dt)   # noqa: E731
    return {"motion": t(motion[idx]), "audio": t(audio[idx] * valid[..., None]),
            "audio_len": t(np.minimum(length - start, window), torch.long), "valid": t(valid, torch.bool),
            "prev_motion": t(motion[pidx]), "prev_audio": t(audio[pidx]), "prev_ok": t(start >= prev, torch.bool),
            "next_audio": t(audio[nidx] * nvalid[..., None]),
            "gaze": t(gaze), "distance": t(mean(data["distance"][idx])), "emotion": t(data["emotion"][clip]),
            "gaze_true": t((gz_t * w[..., None]).sum(1) / w.sum(1, keepdims=True)),
            "distance_true": t(mean(data["distance_true"][idx])),
            "emotion_true": t(data["emotion_true"][clip], torch.long)}


__all__ = ["cache_dir", "motion_data", "motion_stats", "control_errors", "sample_windows", "first_clips",
           "latent_sources", "source_identity", "file_identity", "encoder_identity", "mel_features",
           "with_mel_features"]
