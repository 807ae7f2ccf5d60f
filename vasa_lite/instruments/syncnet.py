"""SyncNet-lite: the lip-sync instrument behind the paper's Sc (confidence, higher is better) and Sd (distance,
lower is better).

SyncNet (Chung and Zisserman, "Out of time", 2016) has two towers: one embeds 5 frames (0.2 s) of the lower
face, the other the matching 0.2 s of audio, trained so that in-sync pairs lie close and off-sync pairs far
apart in Euclidean distance (a contrastive loss with a margin). To score a clip, every 5-frame video window is
compared with the audio at offsets -15..+15 frames; the distances are averaged over the clip per offset, giving a
curve whose minimum sits at the audio-video offset:

    Sd = min_k mean_t d(v_t, a_{t+k}),    Sc = median_k(mean_t d) - min_k(mean_t d),    offset = argmin_k.

Offset convention: `offset = +k` means the audio lags the video by k frames (a sound belonging to frame t is
heard at frame t + k). In-sync video scores offset 0.

At small scale:
- **Video tower**: a grayscale lower-face crop (`SyncNetConfig.crop_h` x `crop_w`, 2.2 x 1.1 head units) of 5
  frames stacked as channels, standardised per window (skin tone and light are not the question), a small CNN.
  The crop follows a face track (mouth rest point, scale, eye-line angle) that the attribute estimator reads off
  the pixels, as SyncNet's pipeline runs a face tracker first. Training crops come from the ground-truth track
  with random jitter, so the tower tolerates the tracker's small errors.
- **Audio tower**: 20 log-mel frames (80 bands, 10 ms hop; `vasa_lite.audio.log_mel`, the function only, no
  shared weights) through a 1D CNN.
- **Loss**: SyncNet's contrastive loss, E = y d^2 + (1 - y) max(margin - d, 0)^2, with negatives that are the
  same clip's audio shifted by 2 or more frames (the hard ones) and other clips' audio; plus a softmax over the
  sampled offsets of -d^2, which sharpens the dip at the true offset that Sc and the offset detection read.
  Windows whose 5 frames are all silence are not used for training: any offset of silence matches a still mouth.
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

from vasa_lite.audio import MEL_PER_FRAME, N_MELS, log_mel
from vasa_lite.errors import InputError
from vasa_lite.instruments.banks import MARGIN, as_frames, bank_batch, cache_dir, crop_lower_face, roc_auc
from vasa_lite.world.params import SAMPLES_PER_FRAME

EVAL_SHIFTS = (-10, -5, -2, 0, 2, 5, 10)   # known audio delays (frames) the evaluation applies to test windows


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _fc(n_in: int, n_out: int) -> list:
    """The towers' top: batch norm before the ReLU keeps about half the hidden units active (a plain
    Linear-ReLU here can die entirely under the contrastive loss, and the tower then outputs a constant)."""
    return [nn.Linear(n_in, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Linear(256, n_out)]


class SyncNet(nn.Module):
    """Two towers. `embed_video(crops [B, 5, h, w] in [0, 1])` and `embed_audio(mel [B, 20, 80])` -> [B, E]."""

    def __init__(self, cfg=None):
        super().__init__()
        from vasa_lite.config import SyncNetConfig

        self.cfg = cfg or SyncNetConfig()
        w, k = self.cfg.width, self.cfg.frames
        h, wd = self.cfg.crop_h, self.cfg.crop_w
        self.video = nn.Sequential(_block(k, w, 1), _block(w, 2 * w, 2), _block(2 * w, 4 * w, 2), _block(4 * w, 4 * w, 2),
                                   nn.Flatten(), *_fc(4 * w * (h // 8) * (wd // 8), self.cfg.embed))
        self.register_buffer("mel_mean", torch.zeros(N_MELS))
        self.register_buffer("mel_std", torch.ones(N_MELS))
        a = 3 * w
        n_mel = k * MEL_PER_FRAME
        self.audio = nn.Sequential(
            nn.Conv1d(N_MELS, a, 3, 1, 1, bias=False), nn.BatchNorm1d(a), nn.ReLU(inplace=True),
            nn.Conv1d(a, a, 3, 2, 1, bias=False), nn.BatchNorm1d(a), nn.ReLU(inplace=True),
            nn.Conv1d(a, 4 * w, 3, 2, 1, bias=False), nn.BatchNorm1d(4 * w), nn.ReLU(inplace=True),
            nn.Flatten(), *_fc(4 * w * math.ceil(math.ceil(n_mel / 2) / 2), self.cfg.embed))

    @property
    def frames(self) -> int:
        return self.cfg.frames

    def embed_video(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops - crops.mean(dim=(1, 2, 3), keepdim=True)
        x = x / x.std(dim=(1, 2, 3), keepdim=True).clamp_min(0.02)
        return self.video(x)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        return self.audio(((mel - self.mel_mean) / self.mel_std).transpose(1, 2))


def pair_loss(model: SyncNet, crops: torch.Tensor, mels: torch.Tensor, shifts: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """crops [B, 5, h, w]; mels [B, K, 20, 80] the audio of each window at offsets `shifts` [B, K] (column 0 is the
    in-sync audio, shift 0). Contrastive loss (shift 0 positive; |shift| >= 2 and other windows' in-sync audio
    negative) plus cross-entropy over each window's offsets of logits -d^2."""
    b, k = shifts.shape
    v = model.embed_video(crops)                                              # [B, E]
    a = model.embed_audio(mels.flatten(0, 1)).view(b, k, -1)                  # [B, K, E]
    d_own = (v[:, None] - a).square().sum(-1).add(1e-8).sqrt()                # [B, K]
    d_cross = torch.cdist(v, a[:, 0])                                         # [B, B], diagonal in sync
    m = model.cfg.margin
    pos = d_own[:, 0].square()
    neg_own = (m - d_own).clamp_min(0).square()[shifts.abs() >= 2]
    off = ~torch.eye(b, dtype=torch.bool, device=v.device)
    neg_cross = (m - d_cross).clamp_min(0).square()[off]
    contrastive = pos.mean() + 0.5 * (neg_own.mean() + neg_cross.mean())
    ce = F.cross_entropy(-d_own.square(), torch.zeros(b, dtype=torch.long, device=v.device))
    with torch.no_grad():
        stats = {"d_pos": d_own[:, 0].mean(), "d_shift": d_own[:, 1:].mean(), "d_other": d_cross[off].mean(),
                 "offset_acc": (d_own.argmin(1) == 0).float().mean()}
    return contrastive + ce, {"contrastive": contrastive.detach(), "offset_ce": ce.detach(), **stats}


# ------------------------------------------------------------------------------------------- checkpoints

def checkpoint_file(preset="cpu") -> Path:
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.config import get_preset

    return checkpoint_path("syncnet", get_preset(preset).name)


def load_syncnet(preset="cpu", path=None, device=None) -> SyncNet:
    """The trained SyncNet-lite of a preset, in eval mode with frozen weights, cached."""
    from vasa_lite.training import load_trained

    return load_trained("syncnet", preset, path, device, lambda p: p.instruments.sync,
                        lambda p, _: SyncNet(p.instruments.sync))


# ------------------------------------------------------------------------------------------------ scoring


def smooth_track(track: np.ndarray, radius: int = 2) -> np.ndarray:
    """Moving average of a face track over 2 * radius + 1 frames (shorter at the ends): heads move smoothly,
    tracker noise does not."""
    t = np.asarray(track, np.float64)
    if len(t) < 2 or radius < 1:
        return t.astype(np.float32)
    c = np.cumsum(np.concatenate([np.zeros((1, t.shape[1])), t]), 0)
    i = np.arange(len(t))
    lo, hi = np.clip(i - radius, 0, len(t)), np.clip(i + radius + 1, 0, len(t))
    return ((c[hi] - c[lo]) / (hi - lo)[:, None]).astype(np.float32)


def mouth_crops(frames, model: SyncNet, track=None, attributes=None, preset="cpu") -> torch.Tensor:
    """Lower-face crops [T, h, w] of a video along `track` [T, 4] (default: the attribute estimator's, smoothed)."""
    x = as_frames(frames)
    if track is None:
        from vasa_lite.instruments.attributes import estimate

        track = smooth_track(estimate(x, attributes, preset)["track"])
    cfg = model.cfg
    return torch.cat([crop_lower_face(x[s:s + 256], np.asarray(track)[s:s + 256], (cfg.crop_h, cfg.crop_w))
                      for s in range(0, len(x), 256)])


@torch.no_grad()
def video_embeddings(model: SyncNet, crops: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """One embedding per 5-frame window starting at each frame: [T - 4, E]."""
    k = model.frames
    win = crops.unfold(0, k, 1).permute(0, 3, 1, 2)                          # [T - k + 1, k, h, w]
    dev = next(model.parameters()).device
    return torch.cat([model.embed_video(win[s:s + batch].to(dev)).cpu() for s in range(0, len(win), batch)])


@torch.no_grad()
def audio_embeddings(model: SyncNet, samples: np.ndarray, n_frames: int, pad: int, batch: int = 512) -> torch.Tensor:
    """Embeddings of the audio windows starting at frames -pad .. n_frames + pad - k (silence outside the audio):
    row j holds the window starting at frame j - pad. [n_frames + 2 * pad - k + 1, E]."""
    k = model.frames
    x = np.zeros((n_frames + 2 * pad) * SAMPLES_PER_FRAME, np.float32)
    seg = np.asarray(samples, np.float32)[: n_frames * SAMPLES_PER_FRAME]
    x[pad * SAMPLES_PER_FRAME: pad * SAMPLES_PER_FRAME + len(seg)] = seg
    mel = torch.from_numpy(log_mel(x))                                        # [4 (T + 2 pad), 80]
    n = n_frames + 2 * pad - k + 1
    win = mel.unfold(0, k * MEL_PER_FRAME, MEL_PER_FRAME)[:n].transpose(1, 2)  # [n, 20, 80]
    dev = next(model.parameters()).device
    return torch.cat([model.embed_audio(win[s:s + batch].to(dev)).cpu() for s in range(0, len(win), batch)])


def scores_from_embeddings(v: torch.Tensor, a: torch.Tensor, max_offset: int) -> dict:
    """Sc, Sd, offset and the mean-distance curve from video embeddings [N, E] (windows at frames 0..N-1) and audio
    embeddings [N + 2 * max_offset, E] (row j: the window at frame j - max_offset)."""
    offsets = np.arange(-max_offset, max_offset + 1)
    n = len(v)
    curve = np.array([float((v - a[max_offset + k: max_offset + k + n]).norm(dim=1).mean()) for k in offsets])
    i = int(np.argmin(curve))
    return {"Sc": float(np.median(curve) - curve[i]), "Sd": float(curve[i]), "offset": int(offsets[i]),
            "curve": [round(float(c), 5) for c in curve], "offsets": offsets.tolist()}


def sync_scores(frames, audio, model: "SyncNet | None" = None, preset="cpu", track=None, attributes=None,
                sr: "int | None" = None, max_offset: "int | None" = None) -> dict:
    """SyncNet's Sc, Sd and detected offset of a talking-face video and its audio.

    frames: [T, 3, H, W] in [0, 1] (or uint8, or [T, H, W, 3]), 25 fps. audio: samples (16 kHz unless `sr`) or a
    path, covering the same T frames (within 2 frames; the longer is trimmed). track: the face track [T, 4]
    (default: the attribute estimator's). Returns {"Sc", "Sd", "offset" (frames; + means audio lags video),
    "curve" (mean distance per offset), "offsets"}.
    """
    from vasa_lite.audio import n_video_frames, prepare_audio

    model = model or load_syncnet(preset)
    x = as_frames(frames, min_frames=model.frames)
    samples = prepare_audio(audio, sr, check_silence=False)
    t_audio = n_video_frames(len(samples))
    if abs(t_audio - len(x)) > 2:
        raise InputError(f"audio has {t_audio} video frames ({len(samples) / 16000:.2f} s) but the video has {len(x)}"
                         "; give the audio of the same clip (25 fps, 640 samples per frame)")
    t = min(t_audio, len(x))
    if track is not None:
        track = np.asarray(track, np.float32)[:t]
    crops = mouth_crops(x[:t], model, track, attributes, preset)
    mo = int(max_offset if max_offset is not None else model.cfg.max_offset)
    v = video_embeddings(model, crops)
    a = audio_embeddings(model, samples, t, mo)
    return scores_from_embeddings(v, a, mo)


# ----------------------------------------------------------------------------------------------- training


def _speaking_starts(visemes: np.ndarray, k: int) -> np.ndarray:
    """Window starts whose k frames are not all silence (viseme 0)."""
    talk = (np.asarray(visemes) != 0).astype(np.int64)
    if len(talk) < k:
        return np.zeros(0, np.int64)
    c = np.concatenate([[0], np.cumsum(talk)])
    return np.nonzero(c[k:] - c[:-k] > 0)[0]


def _jitter_crops(mouth: torch.Tensor, out_hw: tuple, gen: torch.Generator) -> torch.Tensor:
    """From stored crops [B, k, H, W] (MARGIN x the crop), random crops [B, k, h, w]: one shift, scale and rotation
    per window (a tracker's bias) plus a small per-frame shift (its noise)."""
    b, k = mouth.shape[:2]
    u = lambda *s: torch.rand(*s, generator=gen) * 2 - 1   # noqa: E731
    ang = u(b) * math.radians(3)
    sc = (1 + u(b) * 0.06) / MARGIN
    shift = u(b, 2) * 0.05
    theta = torch.zeros(b, k, 2, 3)
    theta[:, :, 0, 0] = (sc * torch.cos(ang))[:, None]
    theta[:, :, 0, 1] = (-sc * torch.sin(ang))[:, None]
    theta[:, :, 1, 0] = (sc * torch.sin(ang))[:, None]
    theta[:, :, 1, 1] = (sc * torch.cos(ang))[:, None]
    theta[:, :, :, 2] = shift[:, None] + u(b, k, 2) * 0.01
    grid = F.affine_grid(theta.flatten(0, 1), (b * k, 1, *out_hw), align_corners=False)
    out = F.grid_sample(mouth.flatten(0, 1)[:, None], grid, align_corners=False, padding_mode="border")
    return out.view(b, k, *out_hw)


def train_syncnet(preset="cpu", seed: int = 0, device=None, steps: "int | None" = None, resume: bool = True,
                  out=None, progress: bool = True, root=None, world_root=None, offsets_per_window: int = 10) -> dict:
    """Contrastive training on the rendered train clips (`vasa-lite train syncnet`); returns a summary."""
    from vasa_lite.audio import _augment
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device, seed_everything
    from vasa_lite.instruments.banks import clip_bank
    from vasa_lite.training import Trainer, load_split

    p = get_preset(preset)
    cfg = p.instruments.sync
    seed_everything(seed)
    dev = pick_device(device)
    bank = clip_bank(p, "train", root=root, world_root=world_root, progress=progress)
    clips = load_split(p, "train", root=world_root)
    off = bank["offsets"]
    if len(clips) != len(off) - 1:
        raise InputError("the clip bank does not match the world's train split; delete the clips_train.* files "
                         f"under {cache_dir(p, root)} so that it is rendered again")
    k, mo = cfg.frames, cfg.max_offset
    pad = mo
    mels, starts = [], []
    for c in clips:
        t = len(c["tracks"])
        x = np.zeros((t + 2 * pad) * SAMPLES_PER_FRAME, np.float32)
        x[pad * SAMPLES_PER_FRAME: pad * SAMPLES_PER_FRAME + min(len(c["audio"]), t * SAMPLES_PER_FRAME)] = \
            c["audio"][: t * SAMPLES_PER_FRAME]
        mels.append(log_mel(x))
        starts.append(_speaking_starts(c["visemes"][:t], k))
    usable = [i for i, s in enumerate(starts) if len(s)]
    if len(usable) < 2:
        raise InputError("SyncNet needs at least 2 train clips with speech; build the world first")
    model = SyncNet(cfg)
    allmel = np.concatenate(mels)
    model.mel_mean.copy_(torch.from_numpy(allmel.mean(0)))
    model.mel_std.copy_(torch.from_numpy(allmel.std(0)).clamp_min(1e-3))
    model.to(dev)
    steps = int(steps or cfg.steps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    warm = max(1, min(200, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))
    near = [1, -1, 2, -2]
    far = [d for d in range(-mo, mo + 1) if abs(d) > 2]
    n_extra = max(0, offsets_per_window - 1 - len(near))
    bsz = min(cfg.batch_size, len(usable))
    mwin = k * MEL_PER_FRAME

    def step_fn(step, gen):
        pick = torch.randperm(len(usable), generator=gen)[:bsz].tolist()     # distinct clips: true negatives
        frame_idx, mel_b, shift_b = [], [], []
        for j in pick:
            i = usable[j]
            s = int(starts[i][int(torch.randint(len(starts[i]), (1,), generator=gen))])
            frame_idx.append(off[i] + s + np.arange(k))
            extra = [far[q] for q in torch.randperm(len(far), generator=gen)[:n_extra].tolist()]
            shifts = [0] + near + extra
            shift_b.append(shifts)
            mel_b.append(np.stack([mels[i][(s + d + pad) * MEL_PER_FRAME:(s + d + pad) * MEL_PER_FRAME + mwin]
                                   for d in shifts]))
        mouth = bank_batch(bank["mouth"], np.concatenate(frame_idx)).view(bsz, k, *bank["mouth"].shape[1:])
        crops = _jitter_crops(mouth, (cfg.crop_h, cfg.crop_w), gen)
        crops = (crops + torch.rand(bsz, 1, 1, 1, generator=gen) * 0.02 * torch.randn(crops.shape, generator=gen))
        mel = torch.from_numpy(np.stack(mel_b))                               # [B, K, 20, 80]
        mel = _augment(mel.flatten(0, 1), gen).view(mel.shape)
        loss, stats = pair_loss(model, crops.to(dev), mel.to(dev), torch.tensor(shift_b, device=dev))
        return {"loss": loss, **stats}

    path = Path(out) if out else checkpoint_file(p)
    trainer = Trainer(model, opt, component="syncnet", preset=p, path=path, scheduler=sched, seed=seed,
                      progress=progress, ckpt_every=max(50, steps // 10),
                      extra={"config": dataclasses.asdict(cfg), "train_clips": len(usable),
                             "train_windows": int(sum(len(s) for s in starts)),
                             "bank_render_seconds": bank["meta"]["render_seconds"]})
    summary = trainer.fit(step_fn, steps, resume=resume)
    summary["parameters"] = sum(q.numel() for q in model.parameters())
    summary["size_mb"] = round(path.stat().st_size / 2**20, 2)
    return summary


# --------------------------------------------------------------------------------------------- evaluation


def evaluate_sync(model: SyncNet, clips: dict, audio: list, tracks: list, window: int = 50, hop: int = 25,
                  shifts=EVAL_SHIFTS, seed: int = 0) -> dict:
    """Offset detection and in-sync vs mismatched separation on 2-second windows of rendered clips.

    clips: a clip bank with full frames; audio: each clip's samples; tracks: each clip's face track. For every
    window and known audio delay d in `shifts` the audio of the window is taken d frames earlier from the clip
    (silence outside it) and the detected offset should be +d. Mismatched: the window's video against the audio of
    a window of another clip. Sc of in-sync vs mismatched windows gives a ROC AUC.
    """
    mo = model.cfg.max_offset
    off = clips["offsets"]
    lengths = np.diff(off)
    if (lengths >= window).sum() < 2:          # tiny (smoke) worlds: a window every clip has
        window = max(model.frames + 1, int(lengths.min()))
        hop = max(1, window // 2)
    shifts = [d for d in shifts if abs(d) <= mo]
    wins = []                                                                 # (clip, start, video embeddings)
    for c in range(len(off) - 1):
        n = int(off[c + 1] - off[c])
        if n < window:
            continue
        x = bank_batch(clips["frames"], np.arange(off[c], off[c + 1]))
        v = video_embeddings(model, mouth_crops(x, model, tracks[c]))
        for s in range(0, n - window + 1, hop):
            wins.append((c, s, v[s: s + window - model.frames + 1]))
    if len(wins) < 2:
        raise InputError(f"no clip is {window} frames long; give longer clips")
    hits = {d: [] for d in shifts}
    exact = []
    sc_sync, sc_mis, sd_sync, sd_mis = [], [], [], []
    rng = np.random.default_rng(seed)
    for c, s, v in wins:
        for d in shifts:
            a0 = (s - d) * SAMPLES_PER_FRAME
            seg = np.zeros(window * SAMPLES_PER_FRAME, np.float32)
            lo, hi = max(0, a0), min(len(audio[c]), a0 + window * SAMPLES_PER_FRAME)
            if hi > lo:
                seg[lo - a0: hi - a0] = audio[c][lo:hi]
            r = scores_from_embeddings(v, audio_embeddings(model, seg, window, mo), mo)
            hits[d].append(abs(r["offset"] - d) <= 1)
            exact.append(r["offset"] == d)
            if d == 0:
                sc_sync.append(r["Sc"])
                sd_sync.append(r["Sd"])
        others = [w for w in wins if w[0] != c]
        oc, os_, _ = others[int(rng.integers(len(others)))]
        seg = audio[oc][os_ * SAMPLES_PER_FRAME:(os_ + window) * SAMPLES_PER_FRAME]
        r = scores_from_embeddings(v, audio_embeddings(model, seg, window, mo), mo)
        sc_mis.append(r["Sc"])
        sd_mis.append(r["Sd"])
    allhits = np.concatenate([hits[d] for d in shifts])
    return {"windows": len(wins), "window_frames": window, "shifts": list(shifts),
            "offset_within_1_frame": round(float(allhits.mean()), 4),
            "offset_within_1_by_shift": {int(d): round(float(np.mean(hits[d])), 4) for d in shifts},
            "offset_exact": round(float(np.mean(exact)), 4),
            "sc_auc_sync_vs_mismatched": round(roc_auc(sc_sync, sc_mis), 4),
            "Sc_sync_mean": round(float(np.mean(sc_sync)), 4), "Sd_sync_mean": round(float(np.mean(sd_sync)), 4),
            "Sc_mismatched_mean": round(float(np.mean(sc_mis)), 4),
            "Sd_mismatched_mean": round(float(np.mean(sd_mis)), 4)}


def eval_syncnet(preset="cpu", seed: int = 0, device=None, checkpoint=None, limit: "int | None" = None,
                 root=None, world_root=None, ground_truth_track: bool = False) -> dict:
    """`vasa-lite eval syncnet`: offset detection and Sc separation on the test clips, with the lower face tracked
    by the shipped attribute estimator (ground_truth_track=True uses the renderer's landmarks instead)."""
    from vasa_lite.checkpoints import load_checkpoint
    from vasa_lite.config import get_preset
    from vasa_lite.instruments.attributes import estimate, load_attributes
    from vasa_lite.instruments.banks import bank_clip_audio, clip_bank

    p = get_preset(preset)
    path = Path(checkpoint) if checkpoint else checkpoint_file(p)
    model = load_syncnet(p, path=path, device=device)
    _, meta = load_checkpoint(path, component="syncnet")
    t0 = time.perf_counter()
    clips = clip_bank(p, "test", limit=limit, root=root, world_root=world_root)
    audio = bank_clip_audio(p, "test", limit=limit, world_root=world_root)
    off = clips["offsets"]
    if ground_truth_track:
        tracks = [np.asarray(clips["track"][off[c]:off[c + 1]]) for c in range(len(off) - 1)]
    else:
        att = load_attributes(p, device=device)
        tracks = [smooth_track(estimate(bank_batch(clips["frames"], np.arange(off[c], off[c + 1])), att)["track"])
                  for c in range(len(off) - 1)]
    out = {"component": "syncnet", "preset": p.name, "checkpoint": str(path), "trained_steps": meta["steps"],
           "train_seconds": meta["metrics"].get("train_seconds"),
           "track": "ground truth" if ground_truth_track else "attribute estimator",
           **evaluate_sync(model, clips, audio, tracks, seed=seed)}
    out["targets"] = {"offset_within_1>=0.9": out["offset_within_1_frame"] >= 0.9,
                      "sc_auc>=0.95": out["sc_auc_sync_vs_mismatched"] >= 0.95}
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return out


__all__ = ["SyncNet", "load_syncnet", "sync_scores", "pair_loss", "mouth_crops", "smooth_track", "train_syncnet",
           "eval_syncnet", "evaluate_sync", "scores_from_embeddings", "checkpoint_file", "EVAL_SHIFTS"]
