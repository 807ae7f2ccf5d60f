"""FVD-lite: a Fréchet distance between Gaussian fits of video features, the course's stand-in for FVD25.

**FVD-lite numbers are NOT comparable to published FVD values** (such as the paper's 105.9 for VASA-1 on
OneMin-32). Published FVD uses an I3D network trained on Kinetics-400 and real video; FVD-lite uses a small 3D CNN
trained on the course's rendered world, at 64 px, with its own feature size. Only comparisons made with the same
FVD-lite checkpoint (same preset) mean anything: model A vs model B, or a model vs real renders.

The recipe is FVD's (Unterthiner et al., 2018): embed many 25-frame clips with a video network, fit a Gaussian
(mean mu, covariance Sigma) to each set, and report

    FD = |mu_a - mu_b|^2 + Tr(Sigma_a + Sigma_b - 2 (Sigma_a Sigma_b)^(1/2)).

The feature network (`FVDNet`) is trained on the world's *train* clips for two tasks, so that its features carry
both what a face looks like and how it moves:
- the clip's emotion (5 classes: appearance and expression, independent of who the actor is);
- what was done to the clip's frame order (5 classes: untouched, reversed, shuffled, frozen, jittered: each frame
  shifted by a few pixels). Motion artefacts a generator makes (a frozen face, jitter, a scrambled mouth) are
  what this task teaches it to see.
The features are the 128 numbers before the two classifier heads. Architecture: a (2+1)D CNN, spatial and
temporal convolutions in turn, from a 4x4-patch stem, pooled over space and time.
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

from vasa_lite.errors import InputError
from vasa_lite.instruments.banks import as_frames, bank_batch, resize
from vasa_lite.world.params import EMOTIONS

ORDER_TASKS = ("original", "reversed", "shuffled", "frozen", "jittered")


def _conv(cin: int, cout: int, k: tuple, s: tuple) -> nn.Sequential:
    pad = tuple(x // 2 for x in k)
    return nn.Sequential(nn.Conv3d(cin, cout, k, s, pad, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class FVDNet(nn.Module):
    """Clips [B, T, 3, S, S] in [0, 1] -> {"features": [B, F], "order": [B, 5], "emotion": [B, 5]}."""

    def __init__(self, cfg=None):
        super().__init__()
        from vasa_lite.config import FVDConfig

        self.cfg = cfg or FVDConfig()
        w = self.cfg.width
        self.net = nn.Sequential(
            _conv(3, w, (1, 4, 4), (1, 4, 4)),                      # 4x4 patches: 64 px -> 16
            _conv(w, 2 * w, (1, 3, 3), (1, 2, 2)), _conv(2 * w, 2 * w, (3, 1, 1), (1, 1, 1)),
            _conv(2 * w, 4 * w, (1, 3, 3), (1, 2, 2)), _conv(4 * w, 4 * w, (3, 1, 1), (2, 1, 1)),
            _conv(4 * w, 4 * w, (3, 1, 1), (2, 1, 1)))
        self.features = nn.Linear(4 * w, self.cfg.features)
        self.norm = nn.BatchNorm1d(self.cfg.features)          # keeps the ReLU below alive
        self.order = nn.Linear(self.cfg.features, len(ORDER_TASKS))
        self.emotion = nn.Linear(self.cfg.features, len(EMOTIONS))

    def forward(self, clips: torch.Tensor) -> dict:
        b, t = clips.shape[:2]
        x = resize(clips.flatten(0, 1), self.cfg.size).view(b, t, 3, self.cfg.size, self.cfg.size)
        h = self.net(x.transpose(1, 2) - 0.5).mean(dim=(2, 3, 4))
        f = self.features(h)
        g = F.relu(self.norm(f))
        return {"features": f, "order": self.order(g), "emotion": self.emotion(g)}


# ------------------------------------------------------------------------------------------ corruptions


def corrupt(clips: torch.Tensor, kind: str, gen: "torch.Generator | None" = None) -> torch.Tensor:
    """One of ORDER_TASKS applied to clips [B, T, 3, H, W] (also the evaluation's corruptions, with "noise")."""
    b, t = clips.shape[:2]
    if kind == "original":
        return clips
    if kind == "reversed":
        return clips.flip(1)
    if kind == "shuffled":
        return torch.stack([c[torch.randperm(t, generator=gen)] for c in clips])
    if kind == "frozen":
        i = torch.randint(t, (b,), generator=gen)
        return clips[torch.arange(b), i][:, None].expand_as(clips).contiguous()
    if kind == "jittered":
        h, w = clips.shape[-2:]
        shift = (torch.rand(b * t, 2, generator=gen) * 2 - 1) * (3.0 / 64 * 2)   # up to 3 px at 64 px
        theta = torch.zeros(b * t, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta, (b * t, 3, h, w), align_corners=False)
        return F.grid_sample(clips.flatten(0, 1), grid, align_corners=False, padding_mode="border").view_as(clips)
    if kind == "noise":
        return (clips + 0.05 * torch.randn(clips.shape, generator=gen)).clamp(0, 1)
    raise InputError(f"unknown corruption {kind!r}; choose from {list(ORDER_TASKS) + ['noise']}")


# ------------------------------------------------------------------------------------------- checkpoints

def checkpoint_file(preset="cpu") -> Path:
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.config import get_preset

    return checkpoint_path("fvd", get_preset(preset).name)


def load_fvd(preset="cpu", path=None, device=None) -> FVDNet:
    """The trained FVD-lite feature network of a preset, in eval mode with frozen weights, cached."""
    from vasa_lite.training import load_trained

    return load_trained("fvd", preset, path, device, lambda p: p.instruments.fvd, lambda p, _: FVDNet(p.instruments.fvd))


# ------------------------------------------------------------------------------------------- the metric


def clip_windows(videos, frames: int, hop: "int | None" = None) -> torch.Tensor:
    """Cut a video [T, 3, H, W] or a list of videos into clips of `frames` frames, every `hop` frames (default:
    no overlap): [N, frames, 3, H, W]. Videos shorter than one clip give none."""
    if torch.is_tensor(videos) or isinstance(videos, np.ndarray):
        videos = [videos] if np.ndim(videos) == 4 else list(videos)
    hop = int(hop or frames)
    out = []
    for v in videos:
        x = as_frames(v)
        out += [x[s:s + frames] for s in range(0, len(x) - frames + 1, hop)]
    if not out:
        raise InputError(f"FVD-lite needs clips of {frames} frames; every video given is shorter")
    return torch.stack(out)


@torch.no_grad()
def fvd_features(videos, model: "FVDNet | None" = None, preset="cpu", hop: "int | None" = None,
                 batch: int = 16) -> np.ndarray:
    """FVD-lite features [N, F] of the 25-frame clips of one video or a list of videos (see clip_windows)."""
    model = model or load_fvd(preset)
    clips = clip_windows(videos, model.cfg.frames, hop)
    dev = next(model.parameters()).device
    return torch.cat([model(clips[s:s + batch].to(dev))["features"].cpu()
                      for s in range(0, len(clips), batch)]).double().numpy()


def frechet_distance(feats_a, feats_b) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two feature sets [N, F] (N >= 2 each)."""
    from scipy import linalg

    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise InputError(f"frechet_distance needs two feature sets [N >= 2, F] of one width, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(sa @ sb)
    if not np.isfinite(covmean).all():      # near-singular products: regularise, as the reference FID code does
        eps = np.eye(len(sa)) * 1e-6
        covmean = linalg.sqrtm((sa + eps) @ (sb + eps))
    covmean = np.real(covmean)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(sa) + np.trace(sb) - 2 * np.trace(covmean))


def fvd(videos_a, videos_b, model: "FVDNet | None" = None, preset="cpu", hop: "int | None" = None) -> float:
    """FVD-lite between two sets of videos (each a video [T, 3, H, W] or a list of them), over their 25-frame
    clips. NOT comparable to published FVD (see the module doc). A few dozen clips per side are needed for a
    stable number; fewer give a noisy, upward-biased estimate."""
    model = model or load_fvd(preset)
    return frechet_distance(fvd_features(videos_a, model, hop=hop), fvd_features(videos_b, model, hop=hop))


# ----------------------------------------------------------------------------------------------- training


def _windows(offsets: np.ndarray, frames: int, hop: int) -> np.ndarray:
    """(clip, first frame) of every window of `frames` frames, every `hop` frames, inside each clip."""
    out = [(c, int(offsets[c]) + s) for c in range(len(offsets) - 1)
           for s in range(0, int(offsets[c + 1] - offsets[c]) - frames + 1, hop)]
    return np.asarray(out, np.int64).reshape(-1, 2)


def _batch(small, starts: np.ndarray, frames: int) -> torch.Tensor:
    idx = (starts[:, None] + np.arange(frames)[None]).ravel()
    return bank_batch(small, idx).view(len(starts), frames, *small.shape[1:])


def train_fvd(preset="cpu", seed: int = 0, device=None, steps: "int | None" = None, resume: bool = True,
              out=None, progress: bool = True, root=None, world_root=None) -> dict:
    """Train FVD-lite's feature network on the train clips (emotion + frame-order tasks); returns a summary."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device, seed_everything
    from vasa_lite.instruments.banks import augment_frames, clip_bank
    from vasa_lite.training import Trainer

    p = get_preset(preset)
    cfg = p.instruments.fvd
    seed_everything(seed)
    dev = pick_device(device)
    bank = clip_bank(p, "train", root=root, world_root=world_root, progress=progress)
    wins = _windows(bank["offsets"], cfg.frames, 1)
    if len(wins) < 2:
        raise InputError(f"FVD-lite needs train clips of at least {cfg.frames} frames; build the world first")
    emotion = np.asarray(bank["emotion"])
    model = FVDNet(cfg).to(dev)
    steps = int(steps or cfg.steps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    warm = max(1, min(100, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))
    bsz = cfg.batch_size

    def step_fn(step, gen):
        pick = wins[torch.randint(len(wins), (bsz,), generator=gen).numpy()]
        clips = _batch(bank["small"], pick[:, 1], cfg.frames)
        task = torch.randint(len(ORDER_TASKS), (bsz,), generator=gen)
        clips = torch.stack([corrupt(clips[i:i + 1], ORDER_TASKS[int(task[i])], gen)[0] for i in range(bsz)])
        b, t = clips.shape[:2]
        clips = augment_frames(clips.flatten(0, 1), gen).view(b, t, *clips.shape[2:]) if step % 2 else clips
        y_emo = torch.from_numpy(emotion[pick[:, 0]])
        o = model(clips.to(dev))
        l_order = F.cross_entropy(o["order"], task.to(dev))
        l_emo = F.cross_entropy(o["emotion"], y_emo.to(dev))
        return {"loss": l_order + l_emo, "order": l_order.detach(), "emotion": l_emo.detach(),
                "order_acc": (o["order"].argmax(1).cpu() == task).float().mean(),
                "emotion_acc": (o["emotion"].argmax(1).cpu() == y_emo).float().mean()}

    path = Path(out) if out else checkpoint_file(p)
    trainer = Trainer(model, opt, component="fvd", preset=p, path=path, scheduler=sched, seed=seed,
                      progress=progress, ckpt_every=max(50, steps // 10),
                      extra={"config": dataclasses.asdict(cfg), "tasks": list(ORDER_TASKS), "train_windows": len(wins),
                             "note": "FVD-lite, not comparable to published FVD"})
    summary = trainer.fit(step_fn, steps, resume=resume)
    summary["parameters"] = sum(q.numel() for q in model.parameters())
    summary["size_mb"] = round(path.stat().st_size / 2**20, 2)
    return summary


# --------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def fvd_report(model: FVDNet, clips: dict, hop: int = 10, seed: int = 0) -> dict:
    """On a clip bank: the test clips' windows split by actor into halves A and B; FVD-lite(A, B) (real vs real)
    against FVD-lite(A, corrupted B) for each corruption, and the heads' accuracy on the windows."""
    frames = model.cfg.frames
    wins = _windows(clips["offsets"], frames, hop)
    if len(wins) < 8:                          # tiny (smoke) worlds: overlap the windows more
        wins = _windows(clips["offsets"], frames, 1)
    if len(wins) < 8:
        raise InputError(f"FVD-lite's report needs at least 8 windows of {frames} frames; got {len(wins)}")
    actor = np.asarray(clips["actor"])[wins[:, 0]]
    ids = np.unique(actor)
    rng = np.random.default_rng(seed)
    half = set(rng.permutation(ids)[: len(ids) // 2].tolist())
    in_a = np.array([a in half for a in actor])
    gen = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device

    emo_hits = []

    def feats(sel, kind="original"):
        out = []
        for s in range(0, len(sel), 16):
            x = corrupt(_batch(clips["small"], sel[s:s + 16, 1], frames), kind, gen)
            o = model(x.to(dev))
            out.append(o["features"].cpu())
            if kind == "original":
                emo_hits.append(o["emotion"].argmax(1).cpu().numpy() == np.asarray(clips["emotion"])[sel[s:s + 16, 0]])
        return torch.cat(out).double().numpy()

    fa, fb = feats(wins[in_a]), feats(wins[~in_a])
    real = frechet_distance(fa, fb)
    corrupted = {k: round(frechet_distance(fa, feats(wins[~in_a], k)), 3)
                 for k in ("frozen", "shuffled", "reversed", "jittered", "noise")}
    return {"windows_a": int(in_a.sum()), "windows_b": int((~in_a).sum()), "fvd_real_vs_real": round(real, 3),
            "fvd_real_vs_corrupted": corrupted,
            "every_corruption_larger": bool(all(v > real for v in corrupted.values())),
            "emotion_head_acc": round(float(np.concatenate(emo_hits).mean()), 4),
            "note": "FVD-lite: not comparable to published FVD values"}


def eval_fvd(preset="cpu", seed: int = 0, device=None, checkpoint=None, limit: "int | None" = None,
             root=None, world_root=None) -> dict:
    """`vasa-lite eval fvd`: FVD-lite of real test clips against real and corrupted test clips."""
    from vasa_lite.checkpoints import load_checkpoint
    from vasa_lite.config import get_preset
    from vasa_lite.instruments.banks import clip_bank

    p = get_preset(preset)
    path = Path(checkpoint) if checkpoint else checkpoint_file(p)
    model = load_fvd(p, path=path, device=device)
    _, meta = load_checkpoint(path, component="fvd")
    t0 = time.perf_counter()
    clips = clip_bank(p, "test", limit=limit, root=root, world_root=world_root)
    out = {"component": "fvd", "preset": p.name, "checkpoint": str(path), "trained_steps": meta["steps"],
           "train_seconds": meta["metrics"].get("train_seconds"), **fvd_report(model, clips, seed=seed)}
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return out


__all__ = ["FVDNet", "load_fvd", "fvd", "fvd_features", "frechet_distance", "clip_windows", "corrupt", "train_fvd",
           "eval_fvd", "fvd_report", "checkpoint_file", "ORDER_TASKS"]
