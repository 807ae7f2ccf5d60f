"""Tracing the sampler: how much of the mouth each reverse step's x0 guess gets right (notebook 04, section 7).

The world's mouth follows the phonemes and the loudness alone, so for a given speech clip there is one right jaw
track. The regression baseline predicts it in one pass. The diffusion model's first guess, x0_hat at t = T - 1 from
pure noise, is its own audio-only estimate and should be about as good. Each later step mixes in what X_t already
holds, which includes the sampler's fresh noise. Where the network is unsure of the mouth, it follows X_t, and the
guess drifts away from the audio's jaw. `mouth_by_step` measures that drift. The jaw is read from z_dyn by the latent
model's expression read-out and compared with the world's true jaw track of the clip (a Pearson r, as
eval_motion's "latent mouth r").
"""
from __future__ import annotations

import numpy as np
import torch

from vasa_lite.errors import InputError


def mouth_by_step(preset="cpu", model=None, baseline=None, clips: int = 6, guidance: "dict | None" = None,
                  steps: "int | None" = None, seed: int = 0, split: str = "test", latent=None, world_root=None,
                  device=None) -> dict:
    """The jaw correlation of every DDPM step's x0 guess, averaged over the first window of `clips` clips.

    model: the diffusion model (default the preset's); baseline: the regression model for the reference line
    (default the preset's; None when it is missing); guidance: {condition: scale} (default the preset's, audio 0.5 and
    gaze 1.0). Returns {"t": [T-1 .. 0], "mouth_r": [per step], "final": the sample's r, "first": the first guess's
    r, "regression": the baseline's r or None, "clips": how many clips, "frames": frames per clip window}."""
    from vasa_lite.audio import load_audio_encoder
    from vasa_lite.config import get_preset
    from vasa_lite.errors import CheckpointError
    from vasa_lite.latent.model import load_latent
    from vasa_lite.motion.evaluate import correlation, latent_factors
    from vasa_lite.motion.generate import check_controls, control_tokens, sample_window, window_sampler
    from vasa_lite.motion.guidance import guidance_scales
    from vasa_lite.motion.train import load_motion
    from vasa_lite.training import load_split
    from vasa_lite.world.params import FRAME_FACTOR_NAMES

    if isinstance(clips, bool) or not isinstance(clips, int) or clips < 1:
        raise InputError(f"clips must be a whole number >= 1, got {clips!r}")
    p = get_preset(preset)
    model = model if model is not None else load_motion(p, device=device)
    if model.regression:
        raise InputError("mouth_by_step traces the diffusion sampler; pass the diffusion model (the regression "
                         "baseline goes in as baseline=)")
    if baseline is None:
        try:
            baseline = load_motion(p, device=device, baseline=True)
        except CheckpointError:
            baseline = None
    dev = model.motion_mean.device
    latent = latent if latent is not None else load_latent(p, device=dev)
    encoder = load_audio_encoder(p, device=dev)
    chosen = load_split(p, split, limit=clips, root=world_root)
    if not chosen:
        raise InputError(f"the '{p.name}' world has no {split} clips; build it: vasa-lite world build --preset {p.name}")
    W, jaw_col = model.cfg.window, FRAME_FACTOR_NAMES.index("jaw")
    base = control_tokens(model, check_controls(), dev)
    scales = guidance_scales(guidance, model.cfg)
    smp = window_sampler(model, "ddpm", steps)

    def jaw_r(x_norm, truth):                 # normalised motion [n, M] -> r of its jaw with the true track
        z_dyn = model.denormalise(x_norm)[:, 6:].cpu()
        return correlation(latent_factors(latent, z_dyn, ("jaw",))["jaw"], truth)

    per_step, reg, ts = [], [], None
    for i, clip in enumerate(chosen):
        feats = torch.as_tensor(encoder.encode_array(clip["audio"]))[:W].float().to(dev)
        truth = np.asarray(clip["tracks"])[: len(feats), jaw_col]
        trace: list = []
        with torch.no_grad():
            sample_window(model, smp, feats, base, scales, torch.Generator().manual_seed(seed + i), trace=trace)
            if baseline is not None:
                reg.append(jaw_r(sample_window(baseline, None, feats, base, scales, None), truth))
        ts = [t for t, _ in trace]
        per_step.append([jaw_r(x0, truth) for _, x0 in trace])
    r = np.mean(per_step, axis=0)
    return {"t": ts, "mouth_r": [round(float(v), 4) for v in r], "first": round(float(r[0]), 4),
            "final": round(float(r[-1]), 4), "regression": round(float(np.mean(reg)), 4) if reg else None,
            "clips": len(chosen), "frames": min(W, min(len(c["tracks"]) for c in chosen))}


__all__ = ["mouth_by_step"]
