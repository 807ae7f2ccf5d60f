"""CAPP-lite: the paper's Contrastive Audio and Pose Pretraining, a CLIP-style pair of encoders whose cosine
similarity scores how well a head-pose sequence goes with its speech.

VASA-1 trains an audio encoder and a 6-layer transformer pose encoder on 3-second windows and reports the score
of generated clips (higher: the head moves *with* the speech). Shifting pose against audio lowers it; the paper's
table, kept in `PAPER_SHIFT_TABLE`, falls from 0.608 at 0 frames to 0.069 at 3 frames.

What CAPP can learn in the course's world: the actors nod on stressed syllables (louder syllables, bigger nods),
tilt and turn on words, shift posture at phrase starts and settle when they stop talking. All of it is timed
by the speech, so audio and pose windows carry matching events.

Design, at small scale:
- **Audio tower**: its own network on log-mel (the `log_mel` *function* is shared with vasa_lite.audio, never
  weights; an instrument must not share weights with the generator it judges): 4 mel frames -> 1 frame, a
  temporal conv, a small transformer with learned positions.
- **Pose tower**: a 6-layer transformer (as in the paper, narrower) over per-frame (yaw, pitch, roll) in
  degrees and their frame-to-frame deltas, with learned positions.
- **Time-resolved embedding**: each tower ends in a small per-frame code (`code` numbers), and a window's
  embedding is its codes in a row (75 x 8 = 600 numbers), unit-normalised. The cosine of two embeddings is then
  a frame-by-frame comparison of the two streams. A CLIP-style mean-pooled embedding was tried first: it learned
  which clip goes with which (batch top-1 64% after 690 steps) but not timing: its score for pose shifted by 1
  to 8 frames equalled the aligned score (0.611 vs 0.613), so the shift table came out flat, even with shifted
  copies of the pose as extra negatives.
- **Loss**: symmetric InfoNCE with a learnable temperature, logits = exp(s) * cos(a_i, p_j), the other windows
  of the batch as negatives, as in CLIP. Optionally (`CappConfig.shift_negatives > 0`) each audio window also
  meets copies of its own pose shifted by 1..max_shift frames (temporal hard negatives). With the time-resolved
  embedding they are not needed: on the cpu preset both runs gave the same shift table within 0.01.
- **Windows**: 75 frames (3 s). Clips shorter than a window (plus one frame) are left out of training rather
  than padded: padding would add silence paired with a still head, which any shift keeps aligned.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vasa_lite.audio import MEL_PER_FRAME, N_MELS, log_mel, prepare_audio
from vasa_lite.errors import InputError
from vasa_lite.world.params import FPS, FRAME_FACTOR_NAMES, SAMPLES_PER_FRAME

# VASA-1, CAPP score of real VoxCeleb2 clips with pose shifted by +-k frames against audio.
PAPER_SHIFT_TABLE = {0: 0.608, 1: 0.462, 2: 0.206, 3: 0.069, 4: 0.082}
POSE_CHANNELS = ("yaw", "pitch", "roll")
_POSE_IDX = [FRAME_FACTOR_NAMES.index(n) for n in POSE_CHANNELS]
N_POSE_FEATURES = 2 * len(POSE_CHANNELS)


def pose_features(pose) -> np.ndarray:
    """[T, 3] (yaw, pitch, roll) in degrees -> [T, 6]: the angles and their per-frame deltas (first delta 0)."""
    pose = np.asarray(pose, dtype=np.float32)
    delta = np.diff(pose, axis=0, prepend=pose[:1])
    return np.concatenate([pose, delta], axis=1)


def pose_of(x) -> np.ndarray:
    """(yaw, pitch, roll) [T, 3] from a clip dict (its 'tracks'), a dict of tracks, or an array [T, >=3]."""
    if isinstance(x, dict) and "tracks" in x:
        x = x["tracks"]
    if isinstance(x, dict):
        missing = [n for n in POSE_CHANNELS if n not in x]
        if missing:
            raise InputError(f"pose tracks lack {missing}; give yaw, pitch and roll in degrees per frame")
        x = np.stack([np.asarray(x[n], np.float32).reshape(-1) for n in POSE_CHANNELS], 1)
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise InputError(f"pose has shape {arr.shape}; give [T, 3] (yaw, pitch, roll in degrees) or world tracks")
    if arr.shape[1] == len(FRAME_FACTOR_NAMES):
        arr = arr[:, _POSE_IDX]
    arr = arr[:, :3]
    if not np.all(np.isfinite(arr)):
        raise InputError("pose has NaN or Inf values; give finite angles in degrees")
    return arr


# ------------------------------------------------------------------------------------------------ model


def _encoder(width: int, heads: int, layers: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class AudioTower(nn.Module):
    """Log-mel [B, 4W, 80] -> embedding [B, W * code] of one window."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg.width
        self.register_buffer("mel_mean", torch.zeros(N_MELS))
        self.register_buffer("mel_std", torch.ones(N_MELS))
        self.patch = nn.Linear(MEL_PER_FRAME * N_MELS, d)
        self.conv = nn.Conv1d(d, d, 5, padding=2)
        self.pos = nn.Parameter(torch.randn(cfg.window, d) * 0.02)
        self.encoder = _encoder(d, cfg.heads, cfg.audio_layers, cfg.dropout)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.code)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        b, n, _ = mel.shape
        x = ((mel - self.mel_mean) / self.mel_std).reshape(b, n // MEL_PER_FRAME, MEL_PER_FRAME * N_MELS)
        x = F.gelu(self.patch(x))
        x = x + F.gelu(self.conv(x.transpose(1, 2)).transpose(1, 2))
        x = self.encoder(x + self.pos[: x.shape[1]])
        return self.out(self.norm(x)).flatten(1)          # [B, W * code]: the per-frame codes in a row


class PoseTower(nn.Module):
    """Pose features [B, W, 6] -> embedding [B, W * code]; the paper's 6-layer transformer, narrow."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg.width
        self.register_buffer("feat_mean", torch.zeros(N_POSE_FEATURES))
        self.register_buffer("feat_std", torch.ones(N_POSE_FEATURES))
        self.inp = nn.Linear(N_POSE_FEATURES, d)
        self.pos = nn.Parameter(torch.randn(cfg.window, d) * 0.02)
        self.encoder = _encoder(d, cfg.heads, cfg.pose_layers, cfg.dropout)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.code)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.inp((feats - self.feat_mean) / self.feat_std)
        x = self.encoder(x + self.pos[: x.shape[1]])
        return self.out(self.norm(x)).flatten(1)


class CAPP(nn.Module):
    """The pair of towers and the InfoNCE temperature. embed_* return unit vectors; their dot is the score."""

    def __init__(self, cfg=None):
        super().__init__()
        from vasa_lite.config import CappConfig

        self.cfg = cfg or CappConfig()
        self.audio = AudioTower(self.cfg)
        self.pose = PoseTower(self.cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))   # CLIP's initial temperature

    @property
    def window(self) -> int:
        return self.cfg.window

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio(mel), dim=-1)

    def embed_pose(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.pose(feats), dim=-1)

    def loss(self, mel, feats, shifted=None, shifted_valid=None) -> tuple[torch.Tensor, dict]:
        """Symmetric InfoNCE over the batch; `shifted` [B, K, W, 6] adds each window's own shifted pose as
        negatives for its audio (masked where `shifted_valid` [B, K] is False)."""
        a, p = self.embed_audio(mel), self.embed_pose(feats)
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        logits = scale * a @ p.T                                               # [B, B], positives on the diagonal
        target = torch.arange(len(a), device=a.device)
        a2p = logits
        stats = {}
        if shifted is not None and shifted.shape[1]:
            b, k = shifted.shape[:2]
            ps = self.embed_pose(shifted.flatten(0, 1)).view(b, k, -1)
            hard = scale * torch.einsum("be,bke->bk", a, ps)
            a2p = torch.cat([logits, hard.masked_fill(~shifted_valid, float("-inf"))], 1)
            stats["cos_shifted"] = torch.einsum("be,bke->bk", a, ps)[shifted_valid].mean().detach()
        loss = 0.5 * (F.cross_entropy(a2p, target) + F.cross_entropy(logits.T, target))
        with torch.no_grad():
            cos = a @ p.T
            off_diag = (cos.sum() - cos.diag().sum()) / max(1, cos.numel() - len(a))
            stats.update(cos_pos=cos.diag().mean(), cos_neg=off_diag,
                         top1=(logits.argmax(1) == target).float().mean(), temperature=1 / scale)
        return loss, stats


# ------------------------------------------------------------------------------------------------ data


def _clip_mel_pose(clips, min_frames: int):
    """Per clip with >= min_frames frames: log-mel [4T, 80] and pose features [T, 6]."""
    mels, feats = [], []
    for c in clips:
        t = len(c["tracks"])
        if t < min_frames:
            continue
        mels.append(log_mel(c["audio"][: t * SAMPLES_PER_FRAME]))
        feats.append(pose_features(pose_of(c)))
    return mels, feats


def _window_mel(mel: np.ndarray, start: int, w: int) -> np.ndarray:
    return mel[start * MEL_PER_FRAME:(start + w) * MEL_PER_FRAME]


@torch.no_grad()
def _embed_audio(model: CAPP, mels: list, dev) -> torch.Tensor:
    return model.embed_audio(torch.from_numpy(np.stack(mels)).to(dev)).cpu()


@torch.no_grad()
def _embed_pose(model: CAPP, feats: list, dev) -> torch.Tensor:
    return model.embed_pose(torch.from_numpy(np.stack(feats)).to(dev)).cpu()


# ------------------------------------------------------------------------------------------------ scores


def _windows(t: int, w: int) -> list[int]:
    """Window starts covering t frames with a hop of w // 3 (1 s for 3 s windows), the last flush with the end."""
    starts = list(range(0, t - w + 1, max(1, w // 3)))
    if starts[-1] != t - w:
        starts.append(t - w)
    return starts


@torch.no_grad()
def capp_score(audio, pose, model: "CAPP | None" = None, preset="cpu", sr: "int | None" = None) -> float:
    """CAPP score of speech and a head-pose track: mean cosine similarity over 3 s windows (hop 1 s).

    audio: path or array (see vasa_lite.audio.prepare_audio; silence is allowed). pose: [T, 3] yaw, pitch, roll
    in degrees per 25 fps frame, world tracks [T, 16], or a dict with those keys. T must match the audio's
    frames (ceil(n_samples / 640)) within 2 frames; the longer one is trimmed.
    """
    from vasa_lite.audio import n_video_frames

    model = model or load_capp(preset)
    x = prepare_audio(audio, sr, check_silence=False)
    pose = pose_of(pose)
    t_audio = n_video_frames(len(x))
    if abs(t_audio - len(pose)) > 2:
        raise InputError(f"audio has {t_audio} video frames ({len(x) / 16000:.2f} s) but pose has {len(pose)}; give "
                         "one pose per 40 ms frame of the same clip")
    t = min(t_audio, len(pose))
    w = model.window
    if t < w:
        raise InputError(f"CAPP scores windows of {w} frames ({w / FPS:.1f} s); this clip has {t}. Give a longer clip")
    mel = log_mel(np.pad(x, (0, max(0, t * SAMPLES_PER_FRAME - len(x))))[: t * SAMPLES_PER_FRAME])
    feats = pose_features(pose[:t])
    starts = _windows(t, w)
    dev = next(model.parameters()).device
    a = _embed_audio(model, [_window_mel(mel, s, w) for s in starts], dev)
    p = _embed_pose(model, [feats[s:s + w] for s in starts], dev)
    return float((a * p).sum(-1).mean())


@torch.no_grad()
def capp_shift_table(model: CAPP, clips, shifts=(0, 1, 2, 3, 4)) -> dict:
    """Mean CAPP score when pose is shifted by +-k frames against audio, beside the paper's values.

    One window per clip, centred; clips shorter than window + 2 * max(shifts) are skipped. For shift k the audio
    window starts at a and the pose window at a + k ("pose late": +k, "pose early": -k); `score` averages both.
    Also: how often the aligned pair beats the shifted one (`aligned_wins`), and retrieval among the windows.
    """
    model.eval()
    w, kmax = model.window, max(shifts)
    mels, feats = _clip_mel_pose(clips, w + 2 * kmax)
    if not mels:
        raise InputError(f"no clip has the {w + 2 * kmax} frames a {w}-frame window shifted by {kmax} needs")
    dev = next(model.parameters()).device
    starts = [(len(f) - w) // 2 for f in feats]
    a = _embed_audio(model, [_window_mel(m, s, w) for m, s in zip(mels, starts)], dev)
    by = {}
    for k in sorted({0} | {abs(int(s)) for s in shifts} | {-abs(int(s)) for s in shifts}):
        p = _embed_pose(model, [f[s + k:s + k + w] for f, s in zip(feats, starts)], dev)
        by[k] = (a * p).sum(-1)
    score = {k: round(float((by[k].mean() + by[-k].mean()) / 2), 4) for k in shifts}
    out = {"shifts": list(shifts), "score": score,
           "score_pose_late": {k: round(float(by[k].mean()), 4) for k in shifts},
           "score_pose_early": {k: round(float(by[-k].mean()), 4) for k in shifts},
           "paper": {k: PAPER_SHIFT_TABLE.get(k) for k in shifts},
           "aligned_wins": {k: round(float(((by[0] > by[k]).float().mean() + (by[0] > by[-k]).float().mean()) / 2), 4)
                            for k in shifts if k},
           "n_windows": len(mels)}
    sim = a @ _embed_pose(model, [f[s:s + w] for f, s in zip(feats, starts)], dev).T
    n = len(sim)
    out["retrieval_top1_audio_to_pose"] = round(float((sim.argmax(1) == torch.arange(n)).float().mean()), 4)
    out["retrieval_top1_pose_to_audio"] = round(float((sim.argmax(0) == torch.arange(n)).float().mean()), 4)
    out["retrieval_chance"] = round(1 / n, 4)
    out["mismatched_pair_score"] = round(float((sim.sum() - sim.diag().sum()) / max(1, n * n - n)), 4)
    still = np.zeros_like(feats[0][:w])
    still[:, :3] = np.stack([f[s:s + w, :3].mean(0) for f, s in zip(feats, starts)]).mean(0)
    out["still_head_score"] = round(float((a @ _embed_pose(model, [still], dev).T).mean()), 4)
    return out


# ------------------------------------------------------------------------------------------- checkpoints


def checkpoint_file(preset="cpu") -> Path:
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.config import get_preset

    return checkpoint_path("capp", get_preset(preset).name)


def load_capp(preset="cpu", path=None, device=None, config=None) -> CAPP:
    """The trained CAPP of a preset (data/checkpoints/capp_<preset>.pt by default), in eval mode with frozen weights,
    cached (every metrics.evaluate call scores CAPP).

    config: the CappConfig it was trained with, when not the preset's (see train_capp)."""
    from vasa_lite.training import load_trained

    def section(p):
        return config or p.capp

    return load_trained("capp", preset, path, device, section, lambda p, _: CAPP(section(p)),
                        training_only=("shift_negatives", "max_shift"))


# ------------------------------------------------------------------------------------------------ training


def train_capp(preset="cpu", seed: int = 0, device=None, steps: "int | None" = None, resume: bool = True,
               out=None, progress: bool = True, root=None, config=None) -> dict:
    """Contrastive pretraining on random windows of the world's train clips; returns a summary.

    config: a CappConfig to use instead of the preset's (ablations; load the result with `load_capp(config=...)`).
    """
    from vasa_lite.audio import _augment
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device, seed_everything
    from vasa_lite.training import Trainer, load_split

    p = get_preset(preset)
    cfg = config or p.capp
    seed_everything(seed)
    dev = pick_device(device)
    w = cfg.window
    mels, feats = _clip_mel_pose(load_split(p, "train", root=root), w + 1)
    if len(mels) < 2:
        raise InputError(f"the '{p.name}' world has fewer than 2 train clips of {w + 1}+ frames; build it "
                         f"(vasa-lite world build --preset {p.name}) or use a preset with longer clips")
    val = load_split(p, "val", root=root)
    model = CAPP(cfg)
    model.audio.mel_mean.copy_(torch.from_numpy(np.concatenate(mels).mean(0)))
    model.audio.mel_std.copy_(torch.from_numpy(np.concatenate(mels).std(0)).clamp_min(1e-3))
    allf = np.concatenate(feats)
    model.pose.feat_mean.copy_(torch.from_numpy(allf.mean(0)))
    model.pose.feat_std.copy_(torch.from_numpy(allf.std(0)).clamp_min(1e-3))
    model.to(dev)
    steps = int(steps or cfg.steps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.05)
    warm = max(1, min(200, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))
    bsz = min(cfg.batch_size, len(mels))
    k_neg = cfg.shift_negatives
    offsets = [d for d in range(-cfg.max_shift, cfg.max_shift + 1) if d]

    def step_fn(step, gen):
        idx = torch.randperm(len(mels), generator=gen)[:bsz].tolist()   # distinct clips: no false negatives
        xb, pb, sb, vb = [], [], [], []
        for i in idx:
            t = len(feats[i])
            s = int(torch.randint(t - w + 1, (1,), generator=gen))
            xb.append(_window_mel(mels[i], s, w))
            pb.append(feats[i][s:s + w])
            ok = [d for d in offsets if 0 <= s + d <= t - w]
            pick = torch.randint(len(ok), (k_neg,), generator=gen).tolist() if ok else []
            sb.append([feats[i][s + ok[j]:s + ok[j] + w] for j in pick] + [feats[i][s:s + w]] * (k_neg - len(pick)))
            vb.append([True] * len(pick) + [False] * (k_neg - len(pick)))
        mel = _augment(torch.from_numpy(np.stack(xb)), gen).to(dev)
        pose = torch.from_numpy(np.stack(pb)).to(dev)
        shifted = torch.from_numpy(np.stack([np.stack(s) for s in sb])).to(dev) if k_neg else None
        valid = torch.tensor(vb, dtype=torch.bool, device=dev) if k_neg else None
        loss, stats = model.loss(mel, pose, shifted, valid)
        return {"loss": loss, **stats}

    def eval_fn():
        try:
            table = capp_shift_table(model, val)
        except InputError:
            return {}
        return {f"val_score_shift{k}": v for k, v in table["score"].items()} | {
            "val_retrieval_top1": table["retrieval_top1_audio_to_pose"]}

    path = Path(out) if out else checkpoint_file(p)
    trainer = Trainer(model, opt, component="capp", preset=p, path=path, scheduler=sched, seed=seed,
                      progress=progress, ckpt_every=max(50, steps // 10),
                      extra={"config": dataclasses.asdict(cfg), "train_windows_from_clips": len(mels),
                             "pose_channels": list(POSE_CHANNELS)})
    summary = trainer.fit(step_fn, steps, resume=resume, eval_fn=eval_fn)
    summary["parameters"] = sum(q.numel() for q in model.parameters())
    summary["size_mb"] = round(path.stat().st_size / 2**20, 2)
    return summary


def eval_capp(preset="cpu", seed: int = 0, device=None, checkpoint=None, limit: "int | None" = None,
              root=None) -> dict:
    """`vasa-lite eval capp`: the shift table on test clips beside the paper's, and retrieval accuracy."""
    from vasa_lite.checkpoints import load_checkpoint
    from vasa_lite.config import get_preset
    from vasa_lite.training import load_split

    p = get_preset(preset)
    path = Path(checkpoint) if checkpoint else checkpoint_file(p)
    model = load_capp(p, path=path, device=device)
    _, meta = load_checkpoint(path, component="capp")
    t0 = time.perf_counter()
    test = load_split(p, "test", limit=limit, root=root)
    out = {"component": "capp", "preset": p.name, "checkpoint": str(path), "trained_steps": meta["steps"],
           "train_seconds": meta["metrics"].get("train_seconds"), "window_frames": model.window,
           "shift_negatives": model.cfg.shift_negatives, **capp_shift_table(model, test)}
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return out


__all__ = ["PAPER_SHIFT_TABLE", "POSE_CHANNELS", "CAPP", "AudioTower", "PoseTower", "pose_features", "pose_of",
           "capp_score", "capp_shift_table", "load_capp", "train_capp", "eval_capp", "checkpoint_file"]
