"""The face-attribute estimator: small CNNs that read, from frames alone, every number the paper's evaluation
re-estimates from generated video.

VASA-1 measures its controls and its liveliness with separately trained estimators: head pose for ΔP (the mean
absolute change of the head angles between adjacent frames) and for CAPP, gaze direction, head distance and
emotion for control accuracy. `AttributeNet` stands in for all of them at once, trained on renders of the world's
*train* actors and tested on its *test* actors, and never shares weights with the generator it judges.

It is three small networks, run as a face-analysis pipeline runs a detector, an aligner and estimators:
1. a **locator** sees the whole frame at 64 px: head pose, position, distance and a first **face track** (mouth
   rest point, scale, eye-line angle; see `instruments.banks`);
2. a **face network** sees a crop aligned on that track (position, scale and in-plane rotation undone): every
   expression factor, head pose, emotion, and a correction of the track. It runs twice, the second time on the
   corrected crop (cascaded alignment: about half a pixel of track error at 128 px);
3. an **eye network** sees a strip with both eyes along the refined track: gaze (relative to the head, as the
   world defines it) and blink. Irises move a couple of pixels over the whole gaze range, too little for the
   face network to learn at its scale.
Yaw and pitch are the mean of the locator's and the face network's readings (their errors are nearly
independent). The refined face track is also what SyncNet-lite crops the lower face with, as SyncNet's pipeline
runs a face tracker first.

Outputs per frame: every factor of the world's table (`world.params.FRAME_FACTOR_NAMES`: yaw, pitch, roll in
degrees, position, distance, jaw, lips, smile, brows, lids, gaze in degrees), emotion logits (5 classes) and the
face track. One frame of a speaking face can be ambiguous (a wide vowel looks like a smile), so `clip_emotion`
averages the logits over a clip, as the paper averages its emotion coefficients.

Training data: the pose bank (`banks.pose_bank`), random renders with head pose, gaze, distance and position drawn
uniformly over their ranges and the expression of a random clip frame (whose emotion is the label). The face and
eye networks train on crops along the true track with random errors added, so they tolerate the locator's. Gaze
is not supervised on frames whose eyes are shut (blink > 0.6): there it cannot be seen.
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

from vasa_lite.instruments.banks import aligned_crop, as_frames, augment_frames, bank_batch, crop_face, resize
from vasa_lite.world.params import EMOTIONS, FACTORS, FRAME_FACTOR_NAMES

_LOW = np.array([FACTORS[n].low for n in FRAME_FACTOR_NAMES], np.float32)
_HIGH = np.array([FACTORS[n].high for n in FRAME_FACTOR_NAMES], np.float32)
POSE_ANGLES = ("yaw", "pitch", "roll")
GAZE = ("gaze_yaw", "gaze_pitch")
_IDX = {n: i for i, n in enumerate(FRAME_FACTOR_NAMES)}
# Pose and gaze are what the metrics read most, so they weigh more in the loss.
_WEIGHT = torch.tensor([3.0 if n in POSE_ANGLES + GAZE else 1.0 for n in FRAME_FACTOR_NAMES])
BLINK_SHUT = 0.6
DELTA_P_SMOOTH = 1.5        # frames; see delta_p


def _norm_factors(v: np.ndarray) -> np.ndarray:
    return (v - (_LOW + _HIGH) / 2) / ((_HIGH - _LOW) / 2)


def _denorm_factors(z: np.ndarray) -> np.ndarray:
    return z * ((_HIGH - _LOW) / 2) + (_LOW + _HIGH) / 2


def _norm_track(track: np.ndarray, size: int) -> np.ndarray:
    """Face track in pixels -> resolution-free numbers near [-1, 1]: position, scale and angle."""
    t = np.asarray(track, np.float32)
    return np.stack([t[:, 0] / size * 2 - 1, t[:, 1] / size * 2 - 1, t[:, 2] / size * 8 - 2, t[:, 3] * 4], 1)


def _denorm_track(z: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.stack([(z[:, 0] + 1) / 2 * width, (z[:, 1] + 1) / 2 * height, (z[:, 2] + 2) / 8 * width,
                     z[:, 3] / 4], 1).astype(np.float32)


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _trunk(width: int, hw: tuple) -> tuple[nn.Sequential, int]:
    """A plain strided CNN down to about 4 px on the short side, flattened (not pooled: pose, position and gaze are
    about *where* things are). Returns the trunk and its flat output size."""
    c = [width, 2 * width, 4 * width, 6 * width]
    layers = [nn.Conv2d(3, c[0], 5, 2, 2, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True)]
    cin, h, w = c[0], hw[0] // 2, hw[1] // 2
    for i, cout in enumerate(c[1:]):
        layers.append(_block(cin, cout, 2))
        if i < 2:                       # a second layer where parts are resolved (16 and 8 px at 64 px input)
            layers.append(_block(cout, cout, 1))
        cin, h, w = cout, (h + 1) // 2, (w + 1) // 2
    while min(h, w) > 4:
        layers.append(_block(cin, cin, 2))
        h, w = (h + 1) // 2, (w + 1) // 2
    return nn.Sequential(*layers, nn.Flatten()), cin * h * w


def _head(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, 256), nn.ReLU(inplace=True), nn.Dropout(0.1), nn.Linear(256, n_out))


# The locator reads what needs the whole frame; the face network everything else, from an aligned crop in which
# position, scale and in-plane rotation are already undone (its "roll" is the residual after the crop's angle).
GLOBAL = ("yaw", "pitch", "roll", "tx", "ty", "distance")
_G_IDX = [_IDX[n] for n in GLOBAL]
_FROM_LOCATOR = ("tx", "ty", "distance")
# Yaw and pitch are read by both networks, from different views of the frame (whole frame at 64 px, aligned face),
# and their errors are nearly independent, so `predict` reports the mean of the two.
_AVERAGED = ("yaw", "pitch")
EYE_FACTORS = ("gaze_yaw", "gaze_pitch", "blink")
ROLL_RANGE = 20.0                                   # degrees; the residual roll is normalised by this
RESIDUAL_SCALE = (0.1, 0.1, 0.05, math.radians(3))  # track corrections (x, y in head units, log scale, angle)


def crop_eyes(frames: torch.Tensor, track, face_size: int) -> torch.Tensor:
    """Both eyes in one strip [N, 3, face_size / 2, 5 face_size / 4]: 1.7 x 0.68 head units centred 0.95 units
    above the mouth's rest point, along the eye line (close to the frame's own resolution at 64 px)."""
    return aligned_crop(frames, track, (face_size // 2, face_size * 5 // 4), -0.95, 0.85, 0.34)


def apply_residual(track: np.ndarray, res: np.ndarray) -> np.ndarray:
    """Correct a face track [N, 4] (pixels) by normalised residuals [N, 4] expressed in its own crop's axes."""
    t = np.asarray(track, np.float64).copy()
    r = np.asarray(res, np.float64) * np.asarray(RESIDUAL_SCALE)
    c, s = np.cos(t[:, 3]), np.sin(t[:, 3])
    dx, dy = r[:, 0] * t[:, 2], r[:, 1] * t[:, 2]
    t[:, 0] += dx * c + dy * s                       # crop x axis (cos, -sin), y axis (sin, cos) in image pixels
    t[:, 1] += -dx * s + dy * c
    t[:, 2] *= np.exp(r[:, 2])
    t[:, 3] += r[:, 3]
    return t.astype(np.float32)


def residual_target(crop_track: np.ndarray, true_track: np.ndarray) -> np.ndarray:
    """The normalised residual that `apply_residual` turns crop_track into true_track with (its inverse)."""
    a, b = np.asarray(crop_track, np.float64), np.asarray(true_track, np.float64)
    c, s = np.cos(a[:, 3]), np.sin(a[:, 3])
    ddx, ddy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
    dx, dy = (ddx * c - ddy * s) / a[:, 2], (ddx * s + ddy * c) / a[:, 2]
    res = np.stack([dx, dy, np.log(b[:, 2] / a[:, 2]), b[:, 3] - a[:, 3]], 1) / np.asarray(RESIDUAL_SCALE)
    return res.astype(np.float32)


class AttributeNet(nn.Module):
    """Three small networks, as face-analysis pipelines run a detector and an aligner before the estimators.

    - `locator`: the whole frame at `cfg.size` -> head pose, position, distance and a first face track;
    - `face`: a crop aligned on the face track (`banks.crop_face`, `cfg.face_size`) -> every factor ("roll" as the
      residual after the crop's angle), emotion logits, and a correction of the track itself. `predict` runs it
      twice: once to refine the track, once on the refined crop (cascaded alignment);
    - `eyes`: a strip with both eyes along the refined track, plus the face network's head yaw and pitch (gaze is
      measured relative to the head, and a turned head foreshortens the eyes) -> gaze and blink.
    `predict(frames)` chains them and returns world units."""

    def __init__(self, cfg=None):
        super().__init__()
        from vasa_lite.config import AttributesConfig

        self.cfg = cfg or AttributesConfig()
        c = self.cfg
        self.locator, n = _trunk(c.locator_width, (c.size, c.size))
        self.locator_head = _head(n, len(GLOBAL) + 4)
        self.face, n = _trunk(c.width, (c.face_size, c.face_size))
        self.face_head = _head(n, len(FRAME_FACTOR_NAMES) + len(EMOTIONS) + 4)
        self.eyes, n = _trunk(c.locator_width, (c.face_size // 2, c.face_size * 5 // 4))
        self.eye_head = _head(n + 2, len(EYE_FACTORS))

    def locate(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(global factors [N, 6] normalised, face track [N, 4] normalised) from frames [N, 3, H, W]."""
        out = self.locator_head(self.locator(resize(frames, self.cfg.size) - 0.5))
        return out[:, :len(GLOBAL)], out[:, len(GLOBAL):]

    def read_face(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(factors [N, 16] normalised, emotion logits [N, 5], track residual [N, 4]) from aligned face crops."""
        out = self.face_head(self.face(crops - 0.5))
        nf, ne = len(FRAME_FACTOR_NAMES), len(EMOTIONS)
        return out[:, :nf], out[:, nf:nf + ne], out[:, nf + ne:]

    def read_eyes(self, strips: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        """Normalised (gaze_yaw, gaze_pitch, blink) [N, 3] from eye strips and normalised head (yaw, pitch) [N, 2]."""
        return self.eye_head(torch.cat([self.eyes(strips - 0.5), head], 1))

    @torch.no_grad()
    def predict(self, frames, batch: int = 64) -> dict:
        """Per-frame estimates in world units as numpy: every factor by name, "emotion_logits" [N, 5],
        "emotion_probs" [N, 5], "track" [N, 4] (the refined face track, in the input frames' pixels)."""
        x = as_frames(frames)
        dev = next(self.parameters()).device
        was = self.training
        self.eval()
        h, w = x.shape[-2:]
        facts, logits, tracks = [], [], []
        r = _IDX["roll"]
        head_idx = [_IDX["yaw"], _IDX["pitch"]]
        for s in range(0, len(x), batch):
            xb = x[s:s + batch].to(dev)
            g, t = self.locate(xb)
            track = _denorm_track(t.cpu().numpy(), w, h)
            _, _, res = self.read_face(crop_face(xb, track, self.cfg.face_size))
            track = apply_residual(track, res.cpu().numpy())
            f_raw, e, _ = self.read_face(crop_face(xb, track, self.cfg.face_size))
            eye = self.read_eyes(crop_eyes(xb, track, self.cfg.face_size), f_raw[:, head_idx]).cpu().numpy()
            f_raw = f_raw.cpu().numpy()
            for j, n in enumerate(EYE_FACTORS):
                f_raw[:, _IDX[n]] = eye[:, j]
            f = _denorm_factors(f_raw)
            f[:, r] = np.degrees(track[:, 3]) + f_raw[:, r] * ROLL_RANGE
            g = g.cpu().numpy()
            for n in _FROM_LOCATOR + _AVERAGED:
                j = _IDX[n]
                loc = g[:, GLOBAL.index(n)] * (_HIGH[j] - _LOW[j]) / 2 + (_HIGH[j] + _LOW[j]) / 2
                f[:, j] = loc if n in _FROM_LOCATOR else 0.5 * (f[:, j] + loc)
            facts.append(f)
            logits.append(e.cpu())
            tracks.append(track)
        self.train(was)
        factors = np.clip(np.concatenate(facts), _LOW, _HIGH)
        logits = torch.cat(logits)
        res = {n: factors[:, i] for i, n in enumerate(FRAME_FACTOR_NAMES)}
        res.update(emotion_logits=logits.numpy(), emotion_probs=logits.softmax(-1).numpy(),
                   track=np.concatenate(tracks))
        return res


def jitter_track(track: np.ndarray, gen: torch.Generator, amount: float = 1.0) -> np.ndarray:
    """A face track with the errors a tracker makes: shift up to 0.08 head units, scale +-5 %, angle +-3 deg."""
    t = torch.as_tensor(np.asarray(track), dtype=torch.float32).clone()
    u = lambda *s: torch.rand(*s, generator=gen) * 2 - 1   # noqa: E731
    t[:, :2] += u(len(t), 2) * 0.08 * amount * t[:, 2:3]
    t[:, 2] *= 1 + u(len(t)) * 0.05 * amount
    t[:, 3] += u(len(t)) * math.radians(3) * amount
    return t.numpy()


def _denorm1(z: torch.Tensor, name: str) -> torch.Tensor:
    j = _IDX[name]
    return z * float(_HIGH[j] - _LOW[j]) / 2 + float(_HIGH[j] + _LOW[j]) / 2


def loss_fn(model: AttributeNet, x: torch.Tensor, factors: torch.Tensor, emotion: torch.Tensor, track: np.ndarray,
            gen: torch.Generator) -> tuple[torch.Tensor, dict]:
    """Locator: smooth-L1 on its factors and the normalised face track. Face network, on crops along a jittered
    ground-truth track: smooth-L1 on every factor but position, distance, gaze and blink (roll as the residual after
    the crop's angle) and on the track correction, cross-entropy on emotion. Eye network, on strips along a less
    jittered track, with the true head angles plus noise as its head input: smooth-L1 on gaze (masked where the
    eyes are shut) and blink."""
    size = x.shape[-1]
    dev = x.device
    g, t = model.locate(x)
    l_loc = (F.smooth_l1_loss(g, factors[:, _G_IDX], reduction="none", beta=0.05) * _WEIGHT[_G_IDX].to(dev)).mean()
    l_track = F.smooth_l1_loss(t, torch.from_numpy(_norm_track(track, size)).to(dev), beta=0.05)

    jt = jitter_track(track, gen)
    f, e, res = model.read_face(crop_face(x, jt, model.cfg.face_size))
    target = factors.clone()
    r = _IDX["roll"]
    target[:, r] = (_denorm1(factors[:, r], "roll") - torch.from_numpy(np.degrees(jt[:, 3])).to(dev)) / ROLL_RANGE
    err = F.smooth_l1_loss(f, target, reduction="none", beta=0.05)
    mask = torch.ones_like(err)
    for n in _FROM_LOCATOR + EYE_FACTORS:
        mask[:, _IDX[n]] = 0
    w = _WEIGHT.to(dev)
    l_face = (err * mask * w).sum() / (mask * w).sum()
    l_res = F.smooth_l1_loss(res, torch.from_numpy(residual_target(jt, track)).to(dev), beta=0.05)
    l_emotion = F.cross_entropy(e, emotion)

    et = jitter_track(track, gen, amount=0.4)
    head = factors[:, [_IDX["yaw"], _IDX["pitch"]]] + 0.05 * torch.randn(len(x), 2, generator=gen).to(dev)
    eye = model.read_eyes(crop_eyes(x, et, model.cfg.face_size), head)
    eye_t = factors[:, [_IDX[n] for n in EYE_FACTORS]]
    shut = (_denorm1(factors[:, _IDX["blink"]], "blink") > BLINK_SHUT).float()
    eye_mask = torch.stack([1 - shut, 1 - shut, torch.ones_like(shut)], 1)
    eye_err = F.smooth_l1_loss(eye, eye_t, reduction="none", beta=0.02)
    l_eye = (eye_err * eye_mask * torch.tensor([3.0, 3.0, 1.0], device=dev)).sum() / (eye_mask.sum() + 1e-6)

    loss = l_loc + l_track + l_face + l_res + l_eye + 0.5 * l_emotion
    with torch.no_grad():
        y = _IDX["yaw"]
        yaw = (f[:, y] - factors[:, y]).abs().mean() * float(_HIGH[y] - _LOW[y]) / 2
        gy = (eye[:, 0] - eye_t[:, 0]).abs().mul(1 - shut).sum() / (1 - shut).sum().clamp_min(1) * 30.0
        acc = (e.argmax(1) == emotion).float().mean()
    return loss, {"locator": l_loc.detach(), "track": l_track.detach(), "face": l_face.detach(),
                  "residual": l_res.detach(), "eyes": l_eye.detach(), "emotion": l_emotion.detach(),
                  "yaw_mae": yaw, "gaze_yaw_mae": gy, "emotion_acc": acc}


# ------------------------------------------------------------------------------------------- checkpoints

def checkpoint_file(preset="cpu") -> Path:
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.config import get_preset

    return checkpoint_path("attributes", get_preset(preset).name)


def load_attributes(preset="cpu", path=None, device=None) -> AttributeNet:
    """The trained estimator of a preset (data/checkpoints/attributes_<preset>.pt by default), eval mode, cached."""
    from vasa_lite.training import load_trained

    return load_trained("attributes", preset, path, device, lambda p: p.instruments.attributes,
                        lambda p, _: AttributeNet(p.instruments.attributes), frozen=False)


# ------------------------------------------------------------------------------------------- public API


def estimate(frames, model: "AttributeNet | None" = None, preset="cpu") -> dict:
    """Per-frame attributes of a video (see AttributeNet.predict); the shipped estimator by default."""
    return (model or load_attributes(preset)).predict(frames)


def pose_track(frames, model: "AttributeNet | None" = None, preset="cpu") -> np.ndarray:
    """Estimated head pose [N, 3]: yaw, pitch, roll in degrees."""
    est = estimate(frames, model, preset)
    return np.stack([est[n] for n in POSE_ANGLES], 1)


def delta_p_of(pose) -> float:
    """ΔP of a pose track [N, 3] (degrees): the mean absolute difference between adjacent frames over the three
    angles, as VASA-1 reports it; 0 for a single frame."""
    pose = np.asarray(pose, np.float64)
    return float(np.abs(np.diff(pose, axis=0)).mean()) if len(pose) > 1 else 0.0


def smooth_pose(pose, sigma: float = DELTA_P_SMOOTH) -> np.ndarray:
    """A pose track [N, 3] smoothed over time with a Gaussian of `sigma` frames (0: unchanged)."""
    from scipy.ndimage import gaussian_filter1d

    pose = np.asarray(pose, np.float64)
    return gaussian_filter1d(pose, sigma, axis=0, mode="nearest") if sigma > 0 and len(pose) > 1 else pose


def delta_p(frames, model: "AttributeNet | None" = None, preset="cpu", smooth: float = DELTA_P_SMOOTH) -> float:
    """The paper's ΔP re-estimated from frames: mean |pose(t+1) - pose(t)| over adjacent frames and the three
    head angles, in degrees per frame.

    Per-frame estimates carry independent errors of about a degree, which frame differences turn into a floor of
    ~0.2 deg/frame even for a motionless talking head, about as large as real motion. Heads move smoothly, so
    the pose track is first smoothed with a Gaussian of `smooth` frames (60 ms); on the test clips this brings
    the estimated ΔP to the true one (eval_attributes reports both, and the still-head floor). smooth=0: raw."""
    x = as_frames(frames, min_frames=2)
    return delta_p_of(smooth_pose(pose_track(x, model, preset), smooth))


def clip_emotion(frames=None, model: "AttributeNet | None" = None, preset="cpu", logits=None) -> dict:
    """Clip-level emotion: softmax of the frame logits averaged over the clip. {"emotion", "probs"}."""
    if logits is None:
        logits = estimate(frames, model, preset)["emotion_logits"]
    probs = torch.from_numpy(np.asarray(logits).mean(0)).softmax(-1).numpy()
    return {"emotion": EMOTIONS[int(probs.argmax())], "probs": {e: round(float(q), 4) for e, q in zip(EMOTIONS, probs)}}


# ----------------------------------------------------------------------------------------------- training


def _targets(bank: dict, idx):
    return torch.from_numpy(_norm_factors(bank["tracks"][idx])), torch.from_numpy(bank["emotion"][idx])


def train_attributes(preset="cpu", seed: int = 0, device=None, steps: "int | None" = None, resume: bool = True,
                     out=None, progress: bool = True, root=None, world_root=None, test_metrics: "bool | None" = None
                     ) -> dict:
    """Train the estimator on the pose bank of the train actors; returns a summary (`vasa-lite train attributes`).

    test_metrics: measure the test figures at the end and store them in the checkpoint (default: not for smoke)."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device, seed_everything
    from vasa_lite.instruments.banks import pose_bank
    from vasa_lite.training import Trainer

    p = get_preset(preset)
    cfg = p.instruments.attributes
    test_metrics = p.name != "smoke" if test_metrics is None else test_metrics
    seed_everything(seed)
    dev = pick_device(device)
    t_bank = time.perf_counter()
    bank = pose_bank(p, "train", root=root, world_root=world_root, progress=progress)
    t_bank = time.perf_counter() - t_bank
    n = len(bank["tracks"])
    val = pose_bank(p, "val", per_actor=4, root=root, world_root=world_root, progress=progress)
    model = AttributeNet(cfg).to(dev)
    steps = int(steps or cfg.steps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    warm = max(1, min(200, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))

    def step_fn(step, gen):
        idx = torch.randint(n, (cfg.batch_size,), generator=gen).numpy()
        x = augment_frames(bank_batch(bank["frames"], idx), gen).to(dev)
        f, e = (v.to(dev) for v in _targets(bank, idx))
        loss, stats = loss_fn(model, x, f, e, np.asarray(bank["track"][idx]), gen)
        return {"loss": loss, **stats}

    def eval_fn():
        out = {f"val_{k}": v for k, v in attribute_errors(model, val).items()}
        if test_metrics:                      # the test figures travel with the checkpoint, in its metadata
            out.update(_flat(measure_on_test(model, p, root=root, world_root=world_root), "test."))
        return out

    path = Path(out) if out else checkpoint_file(p)
    trainer = Trainer(model, opt, component="attributes", preset=p, path=path, scheduler=sched, seed=seed,
                      progress=progress, ckpt_every=max(50, steps // 10),
                      extra={"config": dataclasses.asdict(cfg), "train_frames": n, "factors": list(FRAME_FACTOR_NAMES),
                             "emotions": list(EMOTIONS), "bank_render_seconds": bank["meta"]["render_seconds"]})
    summary = trainer.fit(step_fn, steps, resume=resume, eval_fn=eval_fn)
    summary["parameters"] = sum(q.numel() for q in model.parameters())
    summary["size_mb"] = round(path.stat().st_size / 2**20, 2)
    summary["bank_seconds"] = round(t_bank, 1)
    return summary


# --------------------------------------------------------------------------------------------- evaluation


def _predict_bank(model: AttributeNet, frames, batch: int = 64) -> dict:
    n = len(frames)
    parts = [model.predict(bank_batch(frames, np.arange(s, min(n, s + batch)))) for s in range(0, n, batch)]
    return {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}


def errors_from(est: dict, tracks: np.ndarray, emotion: np.ndarray, face_track: np.ndarray) -> dict:
    """MAE of pose and gaze (deg; gaze where the eyes are open), distance and jaw, jaw correlation, frame emotion
    accuracy and the refined face track's position error (px), from estimates against ground truth."""
    gt = np.asarray(tracks)
    open_ = gt[:, _IDX["blink"]] < 0.5
    out = {f"{n}_mae": float(np.abs(est[n] - gt[:, _IDX[n]]).mean()) for n in POSE_ANGLES}
    for n in GAZE:
        out[f"{n}_mae"] = float(np.abs(est[n][open_] - gt[open_, _IDX[n]]).mean())
    out["gaze_mae"] = (out["gaze_yaw_mae"] + out["gaze_pitch_mae"]) / 2
    out["distance_mae"] = float(np.abs(est["distance"] - gt[:, _IDX["distance"]]).mean())
    out["jaw_mae"] = float(np.abs(est["jaw"] - gt[:, _IDX["jaw"]]).mean())
    out["jaw_corr"] = float(np.corrcoef(est["jaw"], gt[:, _IDX["jaw"]])[0, 1])
    out["emotion_frame_acc"] = float((est["emotion_logits"].argmax(1) == np.asarray(emotion)).mean())
    out["track_px_error"] = float(np.linalg.norm(est["track"][:, :2] - np.asarray(face_track)[:, :2], axis=1).mean())
    return {k: round(v, 4) for k, v in out.items()}


def attribute_errors(model: AttributeNet, bank: dict) -> dict:
    """`errors_from` on every frame of a pose bank (or any dict with frames, tracks, emotion, track)."""
    return errors_from(_predict_bank(model, bank["frames"]), bank["tracks"], bank["emotion"], bank["track"])


def clip_attribute_report(model: AttributeNet, clips: dict) -> dict:
    """On rendered clips (a clip bank with full frames): the frame errors, emotion accuracy per clip (frame logits
    averaged over the clip) and ΔP estimated from the frames against the ground truth's."""
    off = clips["offsets"]
    est = _predict_bank(model, clips["frames"])
    res = errors_from(est, clips["tracks"], np.repeat(clips["emotion"], np.diff(off)), clips["track"])
    pose = np.stack([est[n] for n in POSE_ANGLES], 1)
    truth = np.asarray(clips["tracks"])[:, [_IDX[n] for n in POSE_ANGLES]]
    clip_ok, dp_est, dp_raw, dp_true = [], [], [], []
    for c in range(len(off) - 1):
        sl = slice(int(off[c]), int(off[c + 1]))
        guess = clip_emotion(logits=est["emotion_logits"][sl])["emotion"]
        clip_ok.append(EMOTIONS.index(guess) == int(clips["emotion"][c]))
        dp_est.append(delta_p_of(smooth_pose(pose[sl])))
        dp_raw.append(delta_p_of(pose[sl]))
        dp_true.append(delta_p_of(truth[sl]))
    res["emotion_clip_acc"] = round(float(np.mean(clip_ok)), 4)
    res["delta_p_est_mean"] = round(float(np.mean(dp_est)), 4)
    res["delta_p_true_mean"] = round(float(np.mean(dp_true)), 4)
    res["delta_p_mean_abs_error"] = round(float(np.mean(np.abs(np.subtract(dp_est, dp_true)))), 4)
    res["delta_p_corr"] = round(float(np.corrcoef(dp_est, dp_true)[0, 1]), 4) if len(dp_est) > 2 else float("nan")
    res["delta_p_unsmoothed_mean"] = round(float(np.mean(dp_raw)), 4)
    res["clips"] = len(off) - 1
    res["frames"] = int(off[-1])
    return res


def still_head_delta_p(model: AttributeNet, preset="cpu", world_root=None, frames: int = 75) -> dict:
    """ΔP the estimator reads from a talking but motionless head (a test clip with its pose frozen at the mean):
    its noise floor. The true ΔP is 0; what it reads is what estimation noise adds to any video's ΔP."""
    from vasa_lite.config import get_preset
    from vasa_lite.training import load_split
    from vasa_lite.world.actor import sample_actor
    from vasa_lite.world.params import POSE_NAMES
    from vasa_lite.world.render import Renderer

    p = get_preset(preset)
    clip = load_split(p, "test", limit=1, root=world_root)[0]
    t = min(frames, len(clip["tracks"]))
    named = {n: clip["tracks"][:t, j].copy() for j, n in enumerate(FRAME_FACTOR_NAMES)}
    for n in POSE_NAMES:
        named[n][:] = named[n].mean()
    x = Renderer(p.world.size).render(sample_actor(clip["meta"]["actor_seed"]), named)
    moving = Renderer(p.world.size).render(sample_actor(clip["meta"]["actor_seed"]),
                                           {n: clip["tracks"][:t, j] for j, n in enumerate(FRAME_FACTOR_NAMES)})
    truth = clip["tracks"][:t][:, [_IDX[n] for n in POSE_ANGLES]]
    return {"still_head_delta_p": round(delta_p(x, model), 4),
            "still_head_delta_p_unsmoothed": round(delta_p(x, model, smooth=0), 4),
            "same_clip_moving_delta_p": round(delta_p(moving, model), 4),
            "same_clip_true_delta_p": round(delta_p_of(truth), 4), "frames": t}


def measure_on_test(model: AttributeNet, preset="cpu", root=None, world_root=None, limit=None) -> dict:
    """Every figure on test actors: random renders (all poses), the test clips, and the still-head ΔP floor."""
    from vasa_lite.instruments.banks import clip_bank, pose_bank

    out = {"random_renders": attribute_errors(model, pose_bank(preset, "test", root=root, world_root=world_root)),
           "test_clips": clip_attribute_report(model, clip_bank(preset, "test", limit=limit, root=root,
                                                                world_root=world_root)),
           "noise_floor": still_head_delta_p(model, preset, world_root)}
    rr, tc = out["random_renders"], out["test_clips"]
    out["targets"] = {"yaw_mae<=2": rr["yaw_mae"] <= 2, "pitch_mae<=2": rr["pitch_mae"] <= 2,
                      "roll_mae<=2": rr["roll_mae"] <= 2, "gaze_mae<=3": rr["gaze_mae"] <= 3,
                      "emotion_acc>=0.9 (per clip)": tc["emotion_clip_acc"] >= 0.9}
    return out


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float, bool, np.floating, np.integer)):
            out[f"{prefix}{k}"] = float(v)
    return out


def eval_attributes(preset="cpu", seed: int = 0, device=None, checkpoint=None, limit: "int | None" = None,
                    root=None, world_root=None) -> dict:
    """`vasa-lite eval attributes`: errors on test actors, on random renders and on the test clips (emotion per
    frame and per clip, ΔP estimated against ground truth, the still-head ΔP floor)."""
    from vasa_lite.checkpoints import load_checkpoint
    from vasa_lite.config import get_preset

    p = get_preset(preset)
    path = Path(checkpoint) if checkpoint else checkpoint_file(p)
    model = load_attributes(p, path=path, device=device)
    _, meta = load_checkpoint(path, component="attributes")
    t0 = time.perf_counter()
    out = {"component": "attributes", "preset": p.name, "checkpoint": str(path), "trained_steps": meta["steps"],
           "train_seconds": meta["metrics"].get("train_seconds"),
           **measure_on_test(model, p, root=root, world_root=world_root, limit=limit)}
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return out


__all__ = ["AttributeNet", "load_attributes", "estimate", "pose_track", "delta_p", "delta_p_of", "clip_emotion",
           "train_attributes", "eval_attributes", "attribute_errors", "errors_from", "clip_attribute_report",
           "still_head_delta_p", "measure_on_test", "crop_eyes", "smooth_pose", "checkpoint_file", "POSE_ANGLES",
           "GAZE", "DELTA_P_SMOOTH"]
