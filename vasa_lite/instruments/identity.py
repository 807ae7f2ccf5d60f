"""The identity network: an ArcFace-style embedding of who is in a frame, whatever their pose and expression.

VASA-1 uses an ArcFace network twice: for its cross-identity loss (move subject d's motion onto subject s, and the
identity features of the result should still match s) and to report identity similarity. Nothing can be
downloaded, so the course trains its own on the world's *train* actors:

- data: the pose bank (`instruments.banks.pose_bank`) with swapped scenes: random renders of each train actor with
  head pose, gaze, position, distance and expression all varied, and background, clothes and light taken from
  another actor each time, so the only thing frames of one class share is the person (face, hair, accessories).
  Without the swap the network learns to recognise backgrounds: a person in another scene then scores as a
  stranger;
- loss: ArcFace's additive angular margin. With unit embeddings x and unit class centres W_j, the target logit
  is s * cos(theta_y + m) and the others s * cos(theta_j): the margin m forces each class into a tight cone,
  which makes cosine similarity a good same-person score for actors never seen in training;
- evaluation: verification on the *test* actors, ROC AUC of cosine similarity between two renders of the same
  actor (different poses and scenes) against two renders of different actors.

`IdentityNet.embed` is differentiable, so a later chapter can use it as a frozen loss network.
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

from vasa_lite.instruments.banks import as_frames, augment_frames, bank_batch, resize, roc_auc


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class IdentityNet(nn.Module):
    """Frames -> unit identity embeddings. `embed(frames [N, 3, H, W] in [0, 1]) -> [N, D]`, L2-normalised."""

    def __init__(self, cfg=None):
        super().__init__()
        from vasa_lite.config import IdentityConfig

        self.cfg = cfg or IdentityConfig()
        w, size = self.cfg.width, self.cfg.size
        layers, cin = [], 3
        for cout in (w, 2 * w, 4 * w, 4 * w):
            layers += [_block(cin, cout, 2), _block(cout, cout, 1)]
            cin, size = cout, size // 2
        self.features = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(cin * size * size, self.cfg.embed),
                                  nn.BatchNorm1d(self.cfg.embed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(resize(x, self.cfg.size) - 0.5))

    def embed(self, frames) -> torch.Tensor:
        """Unit embeddings [N, D]. Differentiable with respect to `frames` when it is a float tensor."""
        if torch.is_tensor(frames) and frames.is_floating_point() and frames.dim() == 4 and frames.shape[1] == 3:
            if not torch.isfinite(frames).all():
                as_frames(frames.detach())               # raises the InputError with its message
            x = frames
        else:
            x = as_frames(frames)
        return F.normalize(self(x.to(next(self.parameters()).device)), dim=-1)


class ArcFace(nn.Module):
    """Additive angular margin logits: s * cos(theta_y + m) for the true class, s * cos(theta_j) otherwise."""

    def __init__(self, embed: int, n_classes: int, margin: float = 0.3, scale: float = 30.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, embed) * 0.01)
        self.margin, self.scale = margin, scale

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.normalize(emb, dim=-1) @ F.normalize(self.weight, dim=-1).T
        sin = (1 - cos.square()).clamp_min(1e-7).sqrt()
        m = self.margin
        phi = cos * math.cos(m) - sin * math.sin(m)
        # Past theta = pi - m, cos(theta + m) stops decreasing; use ArcFace's linear fallback there.
        phi = torch.where(cos > math.cos(math.pi - m), phi, cos - math.sin(math.pi - m) * m)
        onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return self.scale * (onehot * phi + (1 - onehot) * cos)


# ------------------------------------------------------------------------------------------- checkpoints

def checkpoint_file(preset="cpu") -> Path:
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.config import get_preset

    return checkpoint_path("identity", get_preset(preset).name)


def load_identity(preset="cpu", path=None, device=None) -> IdentityNet:
    """The trained identity network of a preset, in eval mode with frozen weights (an instrument), cached."""
    from vasa_lite.training import load_trained

    return load_trained("identity", preset, path, device, lambda p: p.instruments.identity,
                        lambda p, _: IdentityNet(p.instruments.identity))


@torch.no_grad()
def identity_similarity(frames_a, frames_b, model: "IdentityNet | None" = None, preset="cpu") -> float:
    """Cosine similarity of the identities in two sets of frames (each [N, 3, H, W] in [0, 1], any N >= 1):
    the cosine of their mean unit embeddings, in [-1, 1]; same actor is near 1."""
    model = model or load_identity(preset)
    a = model.embed(as_frames(frames_a, "frames_a")).mean(0)
    b = model.embed(as_frames(frames_b, "frames_b")).mean(0)
    return float(F.cosine_similarity(a, b, dim=0))


# ----------------------------------------------------------------------------------------------- training


def _small_frames(bank: dict, size: int, batch: int = 256) -> np.ndarray:
    """The bank's frames resized once to the network's size (uint8), so training never resizes."""
    n = len(bank["actor"])
    out = np.zeros((n, 3, size, size), np.uint8)
    for s in range(0, n, batch):
        x = bank_batch(bank["frames"], np.arange(s, min(n, s + batch)))
        out[s:s + len(x)] = (resize(x, size).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    return out


class _Trainable(nn.Module):
    def __init__(self, net: IdentityNet, head: ArcFace):
        super().__init__()
        self.net, self.head = net, head


def train_identity(preset="cpu", seed: int = 0, device=None, steps: "int | None" = None, resume: bool = True,
                   out=None, progress: bool = True, root=None, world_root=None) -> dict:
    """ArcFace training on the train actors' pose bank; returns a summary (`vasa-lite train identity`)."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device, seed_everything
    from vasa_lite.instruments.banks import pose_bank
    from vasa_lite.training import Trainer

    p = get_preset(preset)
    cfg = p.instruments.identity
    seed_everything(seed)
    dev = pick_device(device)
    bank = pose_bank(p, "train", root=root, world_root=world_root, progress=progress, size=cfg.size, swap_scene=True)
    frames = _small_frames(bank, cfg.size)
    actors, labels = np.unique(np.asarray(bank["actor"]), return_inverse=True)
    val = pose_bank(p, "val", per_actor=4, root=root, world_root=world_root, progress=progress, size=cfg.size,
                    swap_scene=True)
    net = IdentityNet(cfg)
    model = _Trainable(net, ArcFace(cfg.embed, len(actors), cfg.arc_margin, cfg.arc_scale)).to(dev)
    steps = int(steps or cfg.steps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=5e-4)
    warm = max(1, min(200, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))
    n = len(labels)

    def step_fn(step, gen):
        idx = torch.randint(n, (cfg.batch_size,), generator=gen).numpy()
        x = augment_frames(bank_batch(frames, idx), gen, colour=False).to(dev)
        y = torch.from_numpy(labels[idx]).to(dev)
        logits = model.head(net(x), y)
        loss = F.cross_entropy(logits, y)
        return {"loss": loss, "acc": (logits.argmax(1) == y).float().mean().detach()}

    def eval_fn():
        return {"val_verification_auc": verification(net, val)["auc"]}

    path = Path(out) if out else checkpoint_file(p)
    trainer = Trainer(model, opt, component="identity", preset=p, path=path, scheduler=sched, seed=seed,
                      progress=progress, ckpt_every=max(50, steps // 10), state_fn=net.state_dict,
                      extra={"config": dataclasses.asdict(cfg), "train_actors": int(len(actors)), "train_frames": n})
    summary = trainer.fit(step_fn, steps, resume=resume, eval_fn=eval_fn)
    summary["parameters"] = sum(q.numel() for q in net.parameters())
    summary["size_mb"] = round(path.stat().st_size / 2**20, 2)
    return summary


# --------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def verification(model: IdentityNet, bank: dict, batch: int = 128) -> dict:
    """Same-vs-different-actor verification over every pair of a bank's frames: ROC AUC of cosine similarity,
    the mean similarity of each kind, and the accuracy at the best threshold."""
    was = model.training
    model.eval()
    n = len(bank["actor"])
    emb = torch.cat([model.embed(bank_batch(bank["frames"], np.arange(s, min(n, s + batch))))
                     for s in range(0, n, batch)]).cpu()
    model.train(was)
    sim = (emb @ emb.T).numpy()
    actor = np.asarray(bank["actor"])
    iu = np.triu_indices(n, 1)
    same = actor[iu[0]] == actor[iu[1]]
    s = sim[iu]
    thr = np.quantile(s, np.linspace(0.01, 0.99, 99))
    acc = max(float(((s > t) == same).mean()) for t in thr)
    return {"auc": round(roc_auc(s[same], s[~same]), 4), "same_mean": round(float(s[same].mean()), 4),
            "different_mean": round(float(s[~same].mean()), 4), "best_accuracy": round(acc, 4),
            "pairs_same": int(same.sum()), "pairs_different": int((~same).sum()), "actors": int(len(set(actor)))}


def eval_identity(preset="cpu", seed: int = 0, device=None, checkpoint=None, limit: "int | None" = None,
                  root=None, world_root=None) -> dict:
    """`vasa-lite eval identity`: verification on the test actors' random-pose renders, each in a scene
    (background, clothes, light) of another test actor; also in their own scenes, for reference."""
    from vasa_lite.checkpoints import load_checkpoint
    from vasa_lite.config import get_preset
    from vasa_lite.instruments.banks import pose_bank

    p = get_preset(preset)
    path = Path(checkpoint) if checkpoint else checkpoint_file(p)
    model = load_identity(p, path=path, device=device)
    _, meta = load_checkpoint(path, component="identity")
    t0 = time.perf_counter()
    swapped = pose_bank(p, "test", root=root, world_root=world_root, size=model.cfg.size, swap_scene=True)
    own = pose_bank(p, "test", root=root, world_root=world_root)
    out = {"component": "identity", "preset": p.name, "checkpoint": str(path), "trained_steps": meta["steps"],
           "train_seconds": meta["metrics"].get("train_seconds"), "test_verification": verification(model, swapped),
           "test_verification_own_scenes": verification(model, own)}
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return out


__all__ = ["IdentityNet", "ArcFace", "load_identity", "identity_similarity", "train_identity", "eval_identity",
           "verification", "checkpoint_file"]
