"""Tracing the sampler: how much of the mouth each reverse step's x0 guess gets right (notebook 04, section 7).

The world's mouth follows the phonemes and the loudness alone, so for a given speech clip there is one right jaw
track. The regression baseline predicts it in one pass. The diffusion model's first guess, x0_hat at t = T - 1 from
pure noise, is its own audio-only estimate and should be about as good. Each later step mixes in what X_t already
holds, which includes the sampler's fresh noise. Where the network is unsure of the mouth, it follows X_t, and the
guess drifts away from the audio's jaw. `mouth_by_step` measures that drift. The jaw is read from z_dyn by the latent
model's expression read-out and compared with the world's true jaw track of the clip (a Pearson r, as
eval_motion's "latent mouth r").

`audio_jaw_probe` gives a reference for both: how well a linear read-out of the audio features (each frame with
its neighbours) follows the same true jaw. The network is not linear, so this is a reference, not a bound.
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
    (default the preset's, skipped when it is missing; False: skipped); guidance: {condition: scale} (default the preset's, audio 0.5 and
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
    if baseline is False:
        baseline = None
    elif baseline is None:
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


def _with_context(feats: np.ndarray, context: int) -> np.ndarray:
    """[T, D] -> [T, (2 context + 1) D]: each frame beside its neighbours (edge frames repeated)."""
    pad = np.pad(feats, ((context, context), (0, 0)), mode="edge")
    return np.concatenate([pad[k:k + len(feats)] for k in range(2 * context + 1)], 1)


def audio_jaw_probe(preset="cpu", context: int = 4, train_clips: int = 300, test_clips: int = 40, world_root=None,
                    device=None) -> dict:
    """A ridge regression from the audio encoder's features (each frame with `context` frames either side, 40 ms
    each) to the world's true jaw, fitted on `train_clips` train clips and scored on `test_clips` test clips.
    Returns {"mouth_r": the mean per-clip Pearson r, "r2": the held-out R^2 over all frames, "context", "clips"}."""
    from vasa_lite.audio import load_audio_encoder
    from vasa_lite.config import get_preset
    from vasa_lite.latent.evaluate import ridge_predict
    from vasa_lite.motion.evaluate import correlation
    from vasa_lite.training import load_split
    from vasa_lite.world.params import FRAME_FACTOR_NAMES

    for name, v in (("context", context), ("train_clips", train_clips), ("test_clips", test_clips)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "context" else 1):
            raise InputError(f"{name} must be a whole number >= {0 if name == 'context' else 1}, got {v!r}")
    p = get_preset(preset)
    encoder = load_audio_encoder(p, device=device)
    jaw_col = FRAME_FACTOR_NAMES.index("jaw")

    def split(name, n):
        xs, ys = [], []
        for clip in load_split(p, name, limit=n, root=world_root):
            f = np.asarray(encoder.encode_array(clip["audio"]), dtype=np.float64)
            t = min(len(f), len(clip["tracks"]))
            xs.append(_with_context(f[:t], context))
            ys.append(np.asarray(clip["tracks"], dtype=np.float64)[:t, jaw_col])
        if not xs:
            raise InputError(f"the '{p.name}' world has no {name} clips; build it: vasa-lite world build --preset "
                             f"{p.name}")
        return xs, ys

    xtr, ytr = split("train", train_clips)
    xte, yte = split("test", test_clips)
    pred = ridge_predict(np.concatenate(xtr), np.concatenate(ytr), np.concatenate(xte))
    cut = np.cumsum([len(y) for y in yte])[:-1]
    y = np.concatenate(yte)
    r2 = 1 - float(((y - pred) ** 2).sum()) / max(float(((y - y.mean()) ** 2).sum()), 1e-12)
    rs = [correlation(a, b) for a, b in zip(np.split(pred, cut), yte)]
    return {"mouth_r": round(float(np.mean(rs)), 4), "r2": round(r2, 4), "context": context, "clips": len(yte)}


NO_GUIDANCE = {"audio": 0.0, "gaze": 0.0, "distance": 0.0, "emotion": 0.0}


def mouth_report(preset="cpu", clips: int = 24, seed: int = 0, out_json=None, device=None) -> dict:
    """Where the mouth is lost, in one report: the audio probe, the regression baseline, and the diffusion model's
    jaw r at its first guess and its sample, without guidance and with the default guidance (mouth_by_step over the
    first window of `clips` test clips). out_json: also write it there."""
    import json
    from pathlib import Path

    # the regression baseline does not depend on guidance: measured with the first row only
    rows = {name: mouth_by_step(preset, clips=clips, guidance=g, seed=seed, device=device, baseline=base)
            for name, g, base in (("no guidance", NO_GUIDANCE, None), ("default guidance", None, False))}
    report = {"preset": str(getattr(preset, "name", preset)), "clips": clips, "seed": seed,
              "audio_probe": audio_jaw_probe(preset, device=device),
              "regression": rows["no guidance"]["regression"],
              "diffusion": {k: {"first": v["first"], "final": v["final"], "t": v["t"], "mouth_r": v["mouth_r"]}
                            for k, v in rows.items()}}
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(report, indent=2) + "\n")
    return report


__all__ = ["mouth_by_step", "audio_jaw_probe", "mouth_report"]
