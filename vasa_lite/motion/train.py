"""Training the motion generator: `vasa-lite train motion --preset P [--baseline regression]`.

Each step draws B windows of W frames from the cached motion sequences (data.sample_windows), then, as VASA-1:
- drops each condition (audio, gaze, distance, emotion) independently with probability cond_dropout = 0.1, and
  the previous window's motion and audio together with prev_dropout = 0.5 (so a first window needs no history);
  a window with no history in its clip always has it dropped;
- cuts the window's final audio frames with probability audio_trunc (uniformly 1 .. W-1 frames kept), so audio
  shorter than a window can be generated;
- noises the normalised motion X_0 to X_t = sqrt(abar_t) X_0 + sqrt(1 - abar_t) eps with t uniform over the T
  training steps, and minimises the simple loss E || X_0 - H(X_t, t, C) ||^2 over the window's real frames,
  plus velocity_weight times the same loss on frame-to-frame differences (an ablation; 0 in the paper).
  With x0_skip the network's output F is added to a skip from X_t (network.MotionTransformer); the loss is the
  same x0 loss on the sum. Both are switches (`--set velocity_weight=1`, `--set x0_skip=true`), off by default.
- weighs each window's loss by its timestep with cfg.loss_weight (`--set loss_weight=v`): "x0" weighs every t
  alike (the paper's simple loss); "v" by 1 / (1 - abar_t), which with the skip is a uniform loss on the network's
  own output F (EDM's weighting: without it F gets almost no gradient at low noise, where it must remove the last
  noise); "min_snr" by min(SNR_t, 5) (Min-SNR weighting), which shifts the weight from high to low noise.

baseline="regression": the same network without noise (network.MotionTransformer(regression=True)) maps the
conditions straight to the motion with the same loss and the same condition dropout: the baseline the diffusion
model must beat. It is saved as regression_<preset>.pt.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from vasa_lite.errors import CheckpointError, InputError
from vasa_lite.motion.network import CONDITIONS, MotionTransformer, build_network, lookahead
from vasa_lite.motion.schedule import NoiseSchedule

BASELINES = ("regression",)
# MotionConfig settings that change training or sampling, not the weights: a checkpoint stays loadable.
TRAINING_ONLY = ("cond_dropout", "prev_dropout", "audio_trunc", "velocity_weight", "loss_weight", "ema",
                 "guidance_audio", "guidance_gaze", "sample_steps", "ddim_steps", "pose_smooth")
LOSS_WEIGHTS = ("x0", "v", "min_snr")
MIN_SNR_GAMMA = 5.0            # Hang et al. (2023)'s cap on the signal-to-noise weight
# MotionConfig settings that each checkpoint records and is rebuilt with, whatever the preset says: the
# parameterisation, the network's size and its audio projection, so a variant (`--set layers=6 --out X`) loads and
# evaluates as it was trained.
RECORDED = ("x0_skip", "layers", "width", "heads", "ffn", "audio_context", "audio_lookahead")
BEFORE = {"audio_lookahead": False}       # what the code did before a RECORDED setting existed, where not its default


def component_name(baseline=None) -> str:
    """"motion" for the diffusion model, "regression" for the baseline (the checkpoint's component and file stem)."""
    if baseline in (None, False, "", "none"):
        return "motion"
    if baseline is True or baseline in BASELINES:
        return "regression"
    raise InputError(f"unknown motion baseline {baseline!r}; choose one of: {', '.join(BASELINES)}")


def checkpoint_file(preset="cpu", baseline=None, features: str = "encoder") -> Path:
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.config import get_preset

    suffix = "_mel" if features == "mel" else ""
    return checkpoint_path(component_name(baseline) + suffix, get_preset(preset).name)


def drop_masks(n: int, cfg, generator: torch.Generator, prev_ok: "torch.Tensor | None" = None) -> dict:
    """Which conditions each of n training samples loses: {condition: bool [n]} for audio, gaze, distance,
    emotion (each with probability cfg.cond_dropout) and prev (cfg.prev_dropout, and always where prev_ok is
    False), plus "audio_len" [n]: the audio frames kept (W, or with probability cfg.audio_trunc 1 .. W-1), and with
    a lookahead (lookahead(cfg) > 0) "ahead" [n]: True where the audio after the window is withheld (cfg.audio_trunc)."""
    out = {c: torch.rand(n, generator=generator) < cfg.cond_dropout for c in CONDITIONS}
    out["prev"] = torch.rand(n, generator=generator) < cfg.prev_dropout
    if prev_ok is not None:
        out["prev"] |= ~prev_ok.bool()
    cut = torch.rand(n, generator=generator) < cfg.audio_trunc
    kept = torch.randint(1, max(2, cfg.window), (n,), generator=generator)
    out["audio_len"] = torch.where(cut, kept, torch.full((n,), cfg.window))
    if lookahead(cfg) > 0:
        # the lookahead is missing as often as audio is cut, so a window also works without it (streaming, the end)
        out["ahead"] = torch.rand(n, generator=generator) < cfg.audio_trunc
    return out


def make_condition(batch: dict, model: MotionTransformer, masks: "dict | None" = None, device=None) -> dict:
    """The network's condition dict for a batch of windows (sample_windows), with drop masks applied."""
    dev = device or batch["motion"].device
    masks = masks or {}
    audio_len = batch["audio_len"]
    if "audio_len" in masks:
        audio_len = torch.minimum(audio_len, masks["audio_len"])
    n = len(audio_len)
    drop = {c: masks.get(c, torch.zeros(n, dtype=torch.bool)).to(dev) for c in CONDITIONS}
    drop["prev"] = masks.get("prev", ~batch["prev_ok"]).to(dev)          # no history in the clip: always dropped
    extra = {}
    if "next_audio" in batch:
        ahead = ~masks.get("ahead", torch.zeros(n, dtype=torch.bool))
        extra["next_audio"] = batch["next_audio"].to(dev) * ahead.to(dev).float()[:, None, None]
    return {**extra, "audio": batch["audio"].to(dev), "audio_len": audio_len.to(dev),
            "prev_motion": model.normalise(batch["prev_motion"].to(dev)), "prev_audio": batch["prev_audio"].to(dev),
            "gaze": batch["gaze"].to(dev), "distance": batch["distance"].to(dev), "emotion": batch["emotion"].to(dev),
            "drop": drop}


def timestep_weights(schedule: NoiseSchedule, t: torch.Tensor, kind: str = "x0", x0_skip: bool = False
                     ) -> torch.Tensor:
    """The loss weight [B] of each window's timestep t [B] (cfg.loss_weight; see the module doc)."""
    if kind not in LOSS_WEIGHTS:
        raise InputError(f"unknown motion loss_weight {kind!r}; choose one of: {', '.join(LOSS_WEIGHTS)}")
    ab = schedule.alphas_cumprod.to(t.device)[t]
    if kind == "v":
        if not x0_skip:
            # without the skip, 1 / (1 - abar_t) reaches ~1e4 at t = 0 on the x0 error itself
            raise InputError("loss_weight=v weighs the skip's output F; use it with x0_skip=true")
        return 1 / (1 - ab)
    if kind == "min_snr":
        return (ab / (1 - ab)).clamp(max=MIN_SNR_GAMMA)
    return torch.ones_like(ab)


def motion_loss(model: MotionTransformer, schedule: "NoiseSchedule | None", batch: dict, cond: dict,
                generator: torch.Generator, velocity_weight: float = 0.0, t: "torch.Tensor | None" = None,
                loss_weight: str = "x0") -> dict:
    """{"loss", "x0" [, "velocity"]}: the x0 loss over the window's real frames (+ velocity term), each window
    weighted by its timestep (timestep_weights; "x0" holds the unweighted x0 loss, for logs)."""
    dev = cond["audio"].device
    x0 = model.normalise(batch["motion"].to(dev))
    valid = batch["valid"].to(dev).float()[..., None]
    w = torch.ones(x0.shape[0], 1, 1, device=dev)
    if model.regression:
        pred = model(None, None, cond)
    else:
        b = x0.shape[0]
        t = schedule.sample_timesteps(b, generator) if t is None else t
        noise = torch.randn(x0.shape, generator=generator).to(dev)
        pred = model(schedule.q_sample(x0, t.to(dev), noise), t.to(dev), cond)
        w = timestep_weights(schedule, t.to(dev), loss_weight, model.x0_skip).view(-1, 1, 1)
    m = x0.shape[-1]
    err = (pred - x0) ** 2 * valid
    x0_loss = err.sum() / (valid.sum() * m).clamp_min(1)
    loss = (w * err).sum() / (valid.sum() * m).clamp_min(1)
    out = {"loss": loss, "x0": x0_loss.detach()}
    if velocity_weight > 0:
        vv = valid[:, 1:] * valid[:, :-1]
        vel_err = (pred.diff(dim=1) - x0.diff(dim=1)) ** 2 * vv
        out["loss"] = loss + velocity_weight * (w * vel_err).sum() / (vv.sum() * m).clamp_min(1)
        out["velocity"] = (vel_err.sum() / (vv.sum() * m).clamp_min(1)).detach()
    return out


def train_motion(preset="cpu", seed: int = 0, device=None, steps: "int | None" = None, resume: bool = True,
                 out=None, progress: bool = True, baseline=None, root=None, world_root=None, overrides=None,
                 latent=None, features: str = "encoder") -> dict:
    """Train the motion generator (or, with baseline="regression", the regression baseline); returns a summary.

    overrides: MotionConfig fields to change for this run (e.g. {"velocity_weight": 1.0}); root: the motion cache
    folder; world_root: the world's; latent: another latent checkpoint of the preset to encode the motion with
    (default the preset's, data/checkpoints/latent_<preset>.pt); features: "encoder" (the pretrained audio encoder's)
    or "mel" (generic log-mel features, the ablation; writes motion_mel_<preset>.pt). The checkpoint records the preset, steps, metrics,
    the normalisation statistics (also in the weights, as buffers) and the identity of the latent, audio and
    attribute checkpoints."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device, seed_everything
    from vasa_lite.motion.data import control_errors, motion_data, motion_stats, sample_windows
    from vasa_lite.training import Trainer

    p = get_preset(preset)
    component = component_name(baseline)
    regression = component == "regression"
    cfg = dataclasses.replace(p.motion, **(overrides or {}))
    schedule = None if regression else NoiseSchedule(cfg.diffusion_steps, cfg.schedule)
    if schedule is not None:                # a bad loss_weight fails here, before the data is loaded
        timestep_weights(schedule, torch.zeros(1, dtype=torch.long), cfg.loss_weight, cfg.x0_skip)
    seed_everything(seed)
    dev = pick_device(device)
    data = motion_data(p, "train", root=root, world_root=world_root, progress=progress, device=dev, latent=latent)
    val = motion_data(p, "val", root=root, world_root=world_root, progress=progress, device=dev, latent=latent)
    audio_norm = None
    if features == "mel":
        from vasa_lite.motion.data import with_mel_features
        from vasa_lite.training import load_split

        data, audio_norm = with_mel_features(data, load_split(p, "train", root=world_root))
        val, _ = with_mel_features(val, load_split(p, "val", root=world_root), audio_norm)
    elif features != "encoder":
        raise InputError(f"unknown audio features {features!r}; choose encoder or mel")
    stats = motion_stats(data)
    model = MotionTransformer(cfg, data["motion"].shape[1], data["audio"].shape[1], regression=regression).to(dev)
    model.set_stats(stats)
    steps = int(steps or cfg.steps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4, betas=(0.9, 0.99))
    warm = max(1, min(500, steps // 20))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))

    def step_fn(step, gen):
        from vasa_lite.training import dist_info, shard

        # the global batch of windows, their condition dropout and diffusion timesteps are drawn alike on every rank
        # from the shared generator; each rank trains on its shard (under torchrun)
        batch = sample_windows(data, cfg.batch_size, cfg.window, cfg.prev, gen, ahead=lookahead(cfg))
        masks = drop_masks(cfg.batch_size, cfg, gen, batch["prev_ok"])
        t = None if schedule is None else shard(schedule.sample_timesteps(cfg.batch_size, gen))
        batch, masks = shard(batch), shard(masks)
        cond = make_condition(batch, model, masks, dev)
        # the noise of this rank's windows: from gen it would be the same on every rank, so under torchrun it comes
        # from the rank's own global RNG (seeded seed + rank); with one process gen, as always
        noise_gen = gen if dist_info()[1] == 1 else torch.default_generator
        return motion_loss(model, schedule, batch, cond, noise_gen, cfg.velocity_weight, t=t,
                           loss_weight=cfg.loss_weight)

    def eval_fn():
        return validation_loss(model, val, schedule, seed=seed)

    path = Path(out) if out else checkpoint_file(p, baseline, features)
    extra = {"config": dataclasses.asdict(cfg), "baseline": "regression" if regression else None,
             "audio_features": features, "audio_norm": audio_norm,
             "motion_dim": int(data["motion"].shape[1]), "audio_dim": int(data["audio"].shape[1]),
             "stats": stats, "sources": data["meta"]["ids"], "train_clips": int(len(data["offsets"]) - 1),
             "train_frames": int(len(data["motion"])), "controls_vs_truth": control_errors(data)}
    trainer = Trainer(model, opt, component=component, preset=p, path=path, scheduler=sched, seed=seed,
                      progress=progress, ckpt_every=max(20, min(500, steps // 10)), log_every=10, extra=extra,
                      ema=cfg.ema)
    summary = trainer.fit(step_fn, steps, resume=resume, eval_fn=eval_fn)
    summary["parameters"] = sum(q.numel() for q in model.parameters())
    summary["size_mb"] = round(path.stat().st_size / 2**20, 2)
    return summary


@torch.no_grad()
def validation_loss(model: MotionTransformer, data: dict, schedule: "NoiseSchedule | None" = None, n: int = 64,
                    seed: int = 0, levels=(0.1, 0.5, 0.9)) -> dict:
    """x0 loss on fixed held-out windows with every condition kept (history where the clip has it): at a few
    noise levels t / T for the diffusion model, once for the regression baseline."""
    from vasa_lite.motion.data import sample_windows

    was = model.training
    model.eval()
    cfg = model.cfg
    gen = torch.Generator().manual_seed(seed + 12345)
    batch = sample_windows(data, n, cfg.window, cfg.prev, gen, ahead=lookahead(cfg))
    dev = model.motion_mean.device
    cond = make_condition(batch, model, None, dev)
    out = {}
    if model.regression:
        out["val_loss"] = float(motion_loss(model, None, batch, cond, gen)["x0"])
    else:
        schedule = schedule or NoiseSchedule(cfg.diffusion_steps, cfg.schedule)
        for lv in levels:
            t = torch.full((n,), min(schedule.steps - 1, int(lv * schedule.steps)), dtype=torch.long)
            out[f"val_loss_t{lv:g}"] = float(motion_loss(model, schedule, batch, cond, gen, t=t)["x0"])
        out["val_loss"] = float(np.mean([out[f"val_loss_t{lv:g}"] for lv in levels]))
    model.train(was)
    return out


def recorded_settings(meta: dict) -> dict:
    """The RECORDED settings a motion checkpoint was trained with; one it predates is what the code did before the
    setting existed (BEFORE, else MotionConfig's default), not the preset's current value."""
    from vasa_lite.config import MotionConfig

    saved = ((meta.get("extra") or {}).get("config")) or {}
    defaults = {f.name: f.default for f in dataclasses.fields(MotionConfig)}
    return network_settings({k: saved.get(k, BEFORE.get(k, defaults[k])) for k in RECORDED})


def network_settings(settings: dict) -> dict:
    """RECORDED settings as the network they build: without an audio context there is no lookahead, whatever
    audio_lookahead says, so a per-frame generator is the same network either way."""
    return {**settings, "audio_lookahead": bool(settings["audio_lookahead"]) and int(settings["audio_context"]) > 0}


def load_motion(preset="cpu", path=None, device=None, baseline=False, latent=None) -> MotionTransformer:
    """The trained motion generator of a preset (data/checkpoints/motion_<preset>.pt), or with baseline=True (or
    "regression") the regression baseline (regression_<preset>.pt); eval mode, frozen, cached.

    Warns when the latent model the generator was trained on is not the one it is used with (`latent`, default the
    preset's): its motion would then be in another latent space."""
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.config import get_preset
    from vasa_lite.training import load_trained

    p = get_preset(preset)
    component = component_name(baseline)
    path = Path(path) if path else checkpoint_file(p, baseline)
    if not path.exists():
        flag = " --baseline regression" if component == "regression" else ""
        raise CheckpointError(f"checkpoint not found: {path}; train it with `vasa-lite train motion --preset {p.name}"
                              f"{flag}` or check the path")
    # a generator trained on other audio features (the mel ablation) has their width, and one trained with or
    # without the x0 skip its parameterisation (older ones: without), and its size, recorded in its metadata
    def build(q, meta):
        extra = meta.get("extra") or {}
        return build_network(q, regression=component == "regression", audio_dim=extra.get("audio_dim"),
                             recorded=recorded_settings(meta))

    model = load_trained(component, p, path, device, lambda q: q.motion, build, frozen=True,
                         training_only=TRAINING_ONLY + RECORDED)
    from vasa_lite.motion.data import latent_sources

    trained_on, now = latent_sources(model.meta, latent or checkpoint_path("latent", p.name))
    if trained_on and now != "missing" and trained_on != now:
        warnings.warn(f"{path} was trained on another latent model's motion encoders (latent {trained_on}, now {now}); its motion "
                      f"codes may not fit: retrain with `vasa-lite train motion --preset {p.name}`", stacklevel=2)
    return model


__all__ = ["train_motion", "load_motion", "recorded_settings", "network_settings", "drop_masks", "make_condition", "motion_loss", "timestep_weights",
           "validation_loss", "checkpoint_file", "component_name", "TRAINING_ONLY"]
