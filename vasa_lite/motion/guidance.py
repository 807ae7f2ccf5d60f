"""Classifier-free guidance over several conditions, VASA-1's formula:

    X0_hat = (1 + sum_c l_c) * H(X_t, t, C) - sum_c l_c * H(X_t, t, C | c = empty)

with one scale l_c per condition c (audio, gaze, distance, emotion); the paper's defaults are l_audio = 0.5 and
l_gaze = 1.0, the others 0. With every l_c = 0 it is the plain conditional prediction.

All the predictions of a step (the conditional one and one per guided condition) come from ONE forward pass:
the batch is stacked 1 + K times, and the k-th copy has condition c_k's drop mask set. Conditions with scale 0,
or already absent (e.g. no emotion given), add nothing to the sum and are not computed.
"""
from __future__ import annotations

import math

import torch

from vasa_lite.errors import InputError
from vasa_lite.motion.network import CONDITIONS


def guidance_scales(guidance: "dict | None" = None, cfg=None) -> dict:
    """Every condition's scale l_c: the preset's defaults (cfg.guidance_audio, cfg.guidance_gaze; others 0),
    overridden by `guidance`. A negative or NaN scale, or an unknown condition, is an InputError naming it."""
    scales = {c: 0.0 for c in CONDITIONS}
    scales["audio"] = float(getattr(cfg, "guidance_audio", 0.5))
    scales["gaze"] = float(getattr(cfg, "guidance_gaze", 1.0))
    if guidance is None:
        return scales
    if not isinstance(guidance, dict):
        raise InputError(f"guidance must be a dict of condition -> scale, e.g. {{'audio': 0.5, 'gaze': 1.0}}; "
                         f"got {type(guidance).__name__}")
    for name, value in guidance.items():
        if name not in CONDITIONS:
            raise InputError(f"unknown guidance condition {name!r}; choose from: {', '.join(CONDITIONS)}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise InputError(f"guidance scale for {name!r} must be a number >= 0, got {value!r}") from None
        if not math.isfinite(v) or v < 0:
            raise InputError(f"guidance scale for {name!r} must be a finite number >= 0, got {value!r}")
        scales[name] = v
    return scales


def _present(cond: dict, name: str) -> bool:
    """Whether condition `name` is given for at least one row (not missing, not dropped everywhere)."""
    if cond.get(name) is None:
        return False
    m = (cond.get("drop") or {}).get(name)
    return m is None or not bool(torch.as_tensor(m).all())


def _repeat(v, k: int):
    if torch.is_tensor(v):
        return v.repeat(k, *([1] * (v.dim() - 1)))
    if isinstance(v, dict):
        return {a: _repeat(b, k) for a, b in v.items()}
    return v


def guided_x0(model, x_t: torch.Tensor, t: torch.Tensor, cond: dict, scales: dict) -> torch.Tensor:
    """X0_hat by multi-condition CFG, computed with one batched forward pass of `model`.

    x_t [B, W, M], t [B], cond: the network's condition dict (see network.MotionTransformer.forward);
    scales: {condition: l_c} (see guidance_scales)."""
    guided = [c for c in CONDITIONS if scales.get(c, 0.0) > 0 and _present(cond, c)]
    if not guided:
        return model(x_t, t, cond)
    b, k = x_t.shape[0], 1 + len(guided)
    dev = x_t.device
    big = {key: _repeat(v, k) for key, v in cond.items() if key != "drop"}
    drop = {}
    for c in list(CONDITIONS) + ["prev"]:
        base = (cond.get("drop") or {}).get(c)
        base = torch.zeros(b, dtype=torch.bool, device=dev) if base is None else torch.as_tensor(base).to(dev).bool()
        rows = [base] + [torch.ones_like(base) if g == c else base for g in guided]   # copy j drops guided[j - 1]
        drop[c] = torch.cat(rows)
    big["drop"] = drop
    out = model(_repeat(x_t, k), _repeat(t, k), big).view(k, b, *x_t.shape[1:])
    lam = torch.tensor([scales[c] for c in guided], dtype=out.dtype, device=dev).view(-1, *([1] * x_t.dim()))
    return (1 + lam.sum()) * out[0] - (lam * out[1:]).sum(0)


__all__ = ["guidance_scales", "guided_x0"]
