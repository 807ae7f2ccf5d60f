"""Editing a portrait through its latent codes: the logic behind notebook 02's sliders (tested headlessly).

Yaw, pitch and roll are z_pose's own first three numbers (degrees). Distance, gaze and the expression (jaw, smile,
blink, brows) are not axes of any code, so the course finds their directions: a linear regression of the codes [z_pose, z_dyn] on the world's true factors
over training frames gives, per factor, how the codes move per unit of it (`to_codes`), and the reverse
regression reads a portrait's current value (`from_codes`). Editing a factor from v to v' adds
(v' - v) * to_codes[factor] to the codes. These are stored in the checkpoint's metadata.
"""
from __future__ import annotations

import io

import numpy as np
import torch

from vasa_lite.errors import InputError
from vasa_lite.world.params import FACTORS, FRAME_FACTOR_NAMES

POSE_FACTORS = ("yaw", "pitch", "roll", "distance", "gaze_yaw", "gaze_pitch")
EXPRESSION_FACTORS = ("jaw", "smile", "blink", "brow_raise")       # what z_dyn holds besides gaze
EDITABLE = POSE_FACTORS + EXPRESSION_FACTORS
DIRECT = {"yaw": 0, "pitch": 1, "roll": 2}          # factors that are z_pose entries themselves


def fit_controls(model, bank: dict, n: int = 3000, seed: int = 0, lam: float = 1e-3) -> dict:
    """Directions of the editable factors in code space, from a bank with ground truth (JSON-able lists)."""
    from vasa_lite.latent.evaluate import codes_of

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(bank["actor"]), min(n, len(bank["actor"])), replace=False))
    c = codes_of(model, bank["frames"][rows])
    codes = np.c_[c["z_pose"], c["z_dyn"]].astype(np.float64)
    cols = [FRAME_FACTOR_NAMES.index(k) for k in EDITABLE]
    f = np.asarray(bank["tracks"])[rows][:, cols].astype(np.float64)
    # codes ~ f @ A + a: how the codes move per unit of each factor, the others held fixed
    fm, cm = f.mean(0), codes.mean(0)
    A = np.linalg.solve((f - fm).T @ (f - fm) + lam * len(f) * np.eye(len(cols)), (f - fm).T @ (codes - cm))
    # f ~ codes @ B + b: the reverse, to read a portrait's current value
    cs = codes.std(0) + 1e-6
    z = (codes - cm) / cs
    B = np.linalg.solve(z.T @ z + 1e-2 * len(z) * np.eye(z.shape[1]), z.T @ (f - fm))
    return {"factors": list(EDITABLE), "to_codes": A.tolist(), "from_codes": B.tolist(), "code_mean": cm.tolist(),
            "code_std": cs.tolist(), "factor_mean": fm.tolist(), "n_frames": int(len(rows))}


def read_factors(z_pose: torch.Tensor, z_dyn: torch.Tensor, controls: dict) -> dict:
    """Current values of the editable factors for one source's codes (degrees, relative distance)."""
    codes = torch.cat([z_pose, z_dyn], -1).reshape(-1).detach().cpu().double().numpy()
    z = (codes - np.asarray(controls["code_mean"])) / np.asarray(controls["code_std"])
    est = z @ np.asarray(controls["from_codes"]) + np.asarray(controls["factor_mean"])
    out = {k: float(v) for k, v in zip(controls["factors"], est)}
    for k, i in DIRECT.items():
        out[k] = float(z_pose.reshape(-1)[i])
    return out


def edit_codes(z_pose: torch.Tensor, z_dyn: torch.Tensor, controls: dict, current: dict, target: dict) -> tuple:
    """Codes with each factor in `target` moved from its `current` value; returns (z_pose, z_dyn), each [1, .]."""
    unknown = set(target) - set(controls["factors"])
    if unknown:
        raise InputError(f"cannot edit {sorted(unknown)}; editable: {list(controls['factors'])}")
    codes = torch.cat([z_pose, z_dyn], -1).reshape(1, -1).clone()
    A = torch.as_tensor(np.asarray(controls["to_codes"]), dtype=codes.dtype, device=codes.device)
    for k, v in target.items():
        if k in DIRECT:
            codes[0, DIRECT[k]] = float(v)
        else:
            codes[0] += (float(v) - float(current[k])) * A[controls["factors"].index(k)]
    return codes[:, :6], codes[:, 6:]


def slider_ranges(factors=EDITABLE) -> dict:
    """(min, max, step, unit) of each slider, from the world's factor table."""
    out = {}
    for k in factors:
        fa = FACTORS[k]
        out[k] = (fa.low, fa.high, 1.0 if fa.unit == "deg" else 0.01, fa.unit)
    return out


class PortraitEditor:
    """A portrait re-decoded live from slider values. `set(yaw=15, gaze_yaw=-10)` returns the new frame; `widget()`
    builds ipywidgets sliders wired to `set`, so setting `slider.value` in a test drives the same code path."""

    def __init__(self, model, frame, controls: "dict | None" = None):
        self.model = model
        self.controls = controls or getattr(model, "controls", None)
        if not self.controls:
            raise InputError("this latent checkpoint has no control directions; rebuild them with "
                             "vasa_lite.latent.controls.fit_controls and attach_controls")
        with torch.no_grad():
            self.source = model.encode_source(frame[None] if torch.is_tensor(frame) and frame.dim() == 3 else frame)
        self.initial = read_factors(self.source["z_pose"], self.source["z_dyn"], self.controls)
        self.values = dict(self.initial)
        self.frame = self.render()
        self.renders = 0

    def render(self) -> torch.Tensor:
        target = {k: v for k, v in self.values.items() if abs(v - self.initial[k]) > 1e-9 or k in DIRECT}
        pose, dyn = edit_codes(self.source["z_pose"], self.source["z_dyn"], self.controls, self.initial, target)
        with torch.no_grad():
            return self.model.decode(self.source, pose, dyn)[0].clamp(0, 1).cpu()

    def set(self, **values) -> torch.Tensor:
        for k, v in values.items():
            if k not in self.values:
                raise InputError(f"unknown control '{k}'; use one of {list(self.values)}")
            if not np.isfinite(v):
                raise InputError(f"{k} must be a finite number, got {v}")
            self.values[k] = float(v)
        self.frame = self.render()
        self.renders += 1
        return self.frame

    def reset(self) -> torch.Tensor:
        return self.set(**self.initial)

    def png(self, scale: int = 2) -> bytes:
        from PIL import Image

        from vasa_lite.viz import as_uint8_hwc

        img = Image.fromarray(as_uint8_hwc(self.frame[None])[0])
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    def widget(self):
        """ipywidgets: sliders (degrees, relative distance) and the live image."""
        import ipywidgets as W

        image = W.Image(value=self.png(), format="png")
        sliders = {}
        for k, (lo, hi, step, unit) in slider_ranges(self.controls["factors"]).items():
            s = W.FloatSlider(value=float(np.clip(self.values[k], lo, hi)), min=lo, max=hi, step=step,
                              description=f"{k} ({unit})", continuous_update=False,
                              style={"description_width": "110px"})

            def changed(change, name=k):
                self.set(**{name: change["new"]})
                image.value = self.png()
            s.observe(changed, names="value")
            sliders[k] = s
        reset = W.Button(description="reset")

        def on_reset(_):
            for k, s in sliders.items():
                s.value = float(np.clip(self.initial[k], s.min, s.max))
        reset.on_click(on_reset)
        box = W.HBox([image, W.VBox(list(sliders.values()) + [reset])])
        box.sliders, box.image = sliders, image
        return box


def attach_controls(preset="cpu", path=None, bank: "dict | None" = None, model=None) -> dict:
    """Fit the control directions of a trained checkpoint on the train bank and store them in its metadata
    (`model`: the checkpoint's model already in memory, e.g. right after training)."""
    from vasa_lite.checkpoints import load_checkpoint, save_checkpoint
    from vasa_lite.config import get_preset
    from vasa_lite.latent.model import checkpoint_file, load_latent
    from vasa_lite.latent.train import latent_bank

    p = get_preset(preset)
    path = path or checkpoint_file(p)
    model = model if model is not None else load_latent(p, path, "cpu")
    model.eval()
    controls = fit_controls(model, bank if bank is not None else latent_bank(p, "train", progress=False))
    state, meta = load_checkpoint(path, component="latent")
    save_checkpoint(path, state, component="latent", preset=p, steps=meta["steps"], metrics=meta["metrics"],
                    extra={**meta["extra"], "controls": controls})
    return controls
