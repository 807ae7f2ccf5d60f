"""Generating motion for speech of any length, window by window (VASA-1's sliding windows).

Audio of T frames is cut into ceil(T / W) windows of W frames. Each window is sampled by the reverse diffusion
process (50 DDPM steps by default, or fewer deterministic DDIM steps) with multi-condition CFG, conditioned on:
- its audio features; the last window is shorter than W, and its missing frames are the "truncated audio" the
  network was trained with;
- the last P generated motion frames of the previous window and their audio; the first window has no previous
  window, so that condition is dropped, as it was half the time in training;
- with an audio-context projection (audio_context = k > 0), the k frames of audio after the window, so its last
  frames hear what follows as every other frame does (the streaming session has no lookahead: it would wait for
  that audio);
- the controls, the same for every window: gaze (yaw, pitch in degrees), head distance, emotion. When none is
  given: forward gaze (0, 0) and the training set's mean distance, both still guided, and no emotion (its
  condition is dropped), the paper's defaults.
The windows follow each other with no overlap; the result is cut to T frames and de-normalised to the latent
model's units: [T, 6 + dyn_dim] = [z_pose, z_dyn] per frame, ready for FaceLatentModel.decode.

Last, z_pose is low-pass filtered over time (`filter_pose`, a Gaussian of cfg.pose_smooth = 1 frame, 40 ms), a
departure from the paper. The generator learns head pose from the pose encoder's per-frame estimates of the world's
clips, which carry estimation noise: on the cpu test clips their frame-to-frame yaw acceleration is 0.76 deg/frame²
against the true head's 0.16. The sampler doubles it (1.7 deg/frame²), and that jitter costs SyncNet-lite half
its confidence: Sc 0.68 as sampled, 1.00 filtered, with z_dyn unchanged (README, "Pose filter"). z_dyn is not
filtered: the mouth moves within a frame or two. The streaming session does not filter either: a centred filter
reaches 4 sigma, so it would wait 4 frames (160 ms) for the motion after each frame.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from vasa_lite.errors import InputError
from vasa_lite.motion.guidance import guidance_scales, guided_x0
from vasa_lite.motion.network import lookahead
from vasa_lite.motion.schedule import SAMPLERS, NoiseSchedule, make_sampler
from vasa_lite.world.params import EMOTIONS, FACTORS


def check_number(name: str, value, low: float, high: float, unit: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in [{low:g}, {high:g}] {unit}, got {value!r}") from None
    if not math.isfinite(v) or not low <= v <= high:
        raise InputError(f"{name} must be in [{low:g}, {high:g}] {unit}, got {value!r}")
    return v


def check_controls(gaze=None, distance=None, emotion=None) -> dict:
    """Validated controls: gaze (yaw, pitch) degrees or None, distance or None, emotion name or None, or
    (name, intensity) with intensity in [0, 1] (1, the default, is the emotion at full strength).
    An InputError gives the accepted range, or the emotion names."""
    out = {"gaze": None, "distance": None, "emotion": None, "intensity": 1.0}
    if isinstance(emotion, (tuple, list)):
        try:
            emotion, intensity = emotion
        except ValueError:
            raise InputError(f"emotion must be a name or (name, intensity), e.g. ('happy', 0.5); got {emotion!r}") from None
        out["intensity"] = check_number("emotion intensity", intensity, 0.0, 1.0, "(0 none, 1 full)")
    if gaze is not None:
        try:
            yaw, pitch = gaze
        except (TypeError, ValueError):
            raise InputError(f"gaze must be (yaw, pitch) in degrees, e.g. (0, 0) for forward; got {gaze!r}") from None
        fy, fp = FACTORS["gaze_yaw"], FACTORS["gaze_pitch"]
        out["gaze"] = (check_number("gaze yaw", yaw, fy.low, fy.high, "degrees"),
                       check_number("gaze pitch", pitch, fp.low, fp.high, "degrees"))
    if distance is not None:
        f = FACTORS["distance"]
        out["distance"] = check_number("distance", distance, f.low, f.high, "(relative to the mean head distance, 1.0)")
    if emotion is not None:
        if not isinstance(emotion, str) or emotion not in EMOTIONS:
            raise InputError(f"unknown emotion {emotion!r}; choose one of: {', '.join(EMOTIONS)} (or None for none)")
        out["emotion"] = emotion
    return out


def _check_features(audio_features, model) -> torch.Tensor:
    x = audio_features
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not torch.is_tensor(x):
        raise InputError(f"audio_features must be a tensor or array [T, {model.audio_dim}] (from vasa_lite.audio."
                         f"encode), got {type(audio_features).__name__}")
    if x.dim() != 2 or x.shape[1] != model.audio_dim:
        raise InputError(f"audio_features have shape {tuple(x.shape)}; give [T, {model.audio_dim}] per-frame features "
                         "of this preset's audio encoder (vasa_lite.audio.encode)")
    if x.shape[0] < 1:
        raise InputError("audio is shorter than one video frame (40 ms): no motion to generate; give at least 40 ms "
                         "of speech")
    x = x.float()
    if not torch.isfinite(x).all():
        raise InputError("audio_features contain NaN or Inf; encode finite audio with vasa_lite.audio.encode")
    return x


@torch.no_grad()
def generate_motion(audio_features, gaze=None, distance=None, emotion=None, guidance: "dict | None" = None,
                    steps: "int | None" = None, sampler: str = "ddpm", seed: int = 0, model=None, preset="cpu",
                    device=None, progress: bool = False, pose_smooth: "float | None" = None) -> torch.Tensor:
    """Motion [T, 6 + dyn_dim] ([z_pose, z_dyn] per frame, the latent model's units) for T frames of audio features.

    audio_features: [T, D] from vasa_lite.audio.encode (25 fps), any T >= 1. gaze: (yaw, pitch) in degrees
    (default forward); distance: in [0.8, 1.25] (default the training mean); emotion: one of EMOTIONS, or (name,
    intensity in [0, 1]) (default none). guidance: {condition: scale} over audio, gaze, distance, emotion (default the preset's: audio 0.5,
    gaze 1.0). steps: sampling steps (default 50 for "ddpm", the preset's ddim_steps for "ddim"). seed: the same
    seed gives the same motion. model: a trained motion generator (default load_motion(preset)); a regression
    baseline predicts each window in one pass and ignores guidance, steps and sampler. pose_smooth: sigma in frames
    of the low-pass filter on z_pose (default the preset's cfg.pose_smooth, 1; 0: the motion as sampled)."""
    from vasa_lite.device import pick_device

    if model is None:
        from vasa_lite.motion.train import load_motion

        model = load_motion(preset, device=device)
    dev = model.motion_mean.device if device is None else pick_device(device)
    model = model.to(dev).eval()
    cfg = model.cfg
    feats = _check_features(audio_features, model).to(dev)
    controls = check_controls(gaze, distance, emotion)
    scales = guidance_scales(guidance, cfg)
    check_seed(seed)
    sigma = cfg.pose_smooth if pose_smooth is None else check_number("pose_smooth", pose_smooth, 0.0, 25.0, "frames")
    smp = window_sampler(model, sampler, steps)
    gen = torch.Generator().manual_seed(int(seed))

    W, P, ahead = cfg.window, cfg.prev, lookahead(cfg)             # an audio-context projection hears ahead
    T = feats.shape[0]
    base = control_tokens(model, controls, dev)
    out = torch.zeros(T, model.motion_dim, device=dev)                   # normalised motion
    n_windows = math.ceil(T / W)
    from tqdm.auto import tqdm

    for k in tqdm(range(n_windows), desc="motion windows", disable=not progress, unit="window"):
        a, b = k * W, min(T, (k + 1) * W)
        prev = (out[a - P:a], feats[a - P:a]) if k > 0 else None         # the previous window's last P frames
        out[a:b] = sample_window(model, smp, feats[a:b], base, scales, gen, prev, ahead=feats[b:b + ahead])
    return filter_pose(model.denormalise(out).cpu(), sigma)


def filter_pose(motion: torch.Tensor, sigma: float) -> torch.Tensor:
    """motion [T, 6 + dyn_dim] with its z_pose columns (the first 6) low-pass filtered over time by a Gaussian of
    `sigma` frames (edges held; 0: unchanged); z_dyn is returned as it is."""
    from vasa_lite.instruments.attributes import smooth_pose

    sigma = check_number("pose_smooth", sigma, 0.0, 25.0, "frames")
    if sigma == 0:
        return motion
    out = motion.clone()
    pose = smooth_pose(motion[:, :6].detach().cpu().numpy(), sigma)
    out[:, :6] = torch.from_numpy(pose).to(motion.device, motion.dtype)
    return out


def check_seed(seed) -> int:
    """The seed as an int, or an InputError (a bool or a float is not a seed)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}")
    return int(seed)


def window_sampler(model, sampler: str = "ddpm", steps: "int | None" = None):
    """The reverse-diffusion sampler that sample_window uses for `model` (None for a regression baseline, which
    needs none). steps: default 50 for "ddpm", the preset's ddim_steps for "ddim"."""
    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    return None if model.regression else config_sampler(model.cfg, sampler, steps)


def config_sampler(cfg, sampler: str = "ddpm", steps: "int | None" = None):
    """The sampler of MotionConfig cfg by name; steps default 50 for "ddpm", cfg.ddim_steps for "ddim"."""
    steps = steps if steps is not None else (cfg.ddim_steps if sampler == "ddim" else cfg.sample_steps)
    return make_sampler(sampler, NoiseSchedule(cfg.diffusion_steps, cfg.schedule), steps)


def control_tokens(model, controls: dict, device) -> dict:
    """The conditions every window shares, from check_controls' output: gaze (default forward), distance (default
    the training mean) and emotion (default none: its condition dropped)."""
    g = controls["gaze"] or (0.0, 0.0)
    d = controls["distance"] if controls["distance"] is not None else float(model.distance_mean)
    e = torch.zeros(1, len(EMOTIONS), device=device)
    if controls["emotion"] is not None:
        # the condition is a probability vector (the instruments' estimate in training): a weaker emotion is a
        # mixture with neutral
        k = float(controls.get("intensity", 1.0))
        e[0, EMOTIONS.index("neutral")] = 1.0 - k
        e[0, EMOTIONS.index(controls["emotion"])] += k
    return {"gaze": torch.tensor([g], dtype=torch.float32, device=device),
            "distance": torch.tensor([d], dtype=torch.float32, device=device),
            "emotion": e if controls["emotion"] is not None else None}


def sample_window(model, smp, feats: torch.Tensor, base: dict, scales: dict, gen: torch.Generator,
                  prev: "tuple | None" = None, trace: "list | None" = None, ahead: "torch.Tensor | None" = None
                  ) -> torch.Tensor:
    """Normalised motion [n, motion_dim] for the n <= W frames of audio features `feats` [n, D]: one window, its
    missing frames the truncated audio the network was trained with. prev: (motion [P, motion_dim] normalised,
    audio [P, D]) of the frames just before, or None for a first window. A regression baseline takes one pass.
    trace: a list that gets (t, x0_hat [n, motion_dim] normalised) for every sampling step (motion.trace). ahead:
    features [j, D] of the frames just after the window, the lookahead of an audio-context network (ignored
    otherwise, and when the window is shorter than W)."""
    W, n, dev = model.cfg.window, feats.shape[0], feats.device
    audio = torch.zeros(1, W, feats.shape[1], device=dev)
    audio[0, :n] = feats
    cond = {**base, "audio": audio, "audio_len": torch.tensor([n], device=dev)}
    if prev is not None:
        cond["prev_motion"], cond["prev_audio"] = prev[0][None], prev[1][None]
    if ahead is not None and len(ahead):
        cond["next_audio"] = ahead[None].to(dev).float()
    if model.regression:
        x0 = model(None, None, cond)
    else:
        def x0_fn(x, t):
            x0_hat = guided_x0(model, x, t, cond, scales)
            if trace is not None:
                trace.append((int(t[0]), x0_hat[0, :n].detach().clone()))
            return x0_hat

        x0 = smp.sample(x0_fn, (1, W, model.motion_dim), gen, dev)
    return x0[0, :n]


__all__ = ["generate_motion", "check_controls", "check_number", "check_seed", "window_sampler", "config_sampler",
           "control_tokens",
           "sample_window", "filter_pose"]
