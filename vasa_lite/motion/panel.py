"""A generation panel: one portrait and one short speech clip, regenerated live from control values (notebook 05).

The logic lives here, not in the notebook, so that it can be tested without a browser: `GenerationPanel.set(...)`
regenerates the clip from the current values, and `widget()` builds ipywidgets controls whose observers call the
same `set`. A test (or a student's drag) that sets `slider.value` drives exactly that code path.

What is done once, in the constructor (as `animate` does it, see motion.animate):
- the portrait is framed and encoded by the face latent model (V_app, z_id and its own pose);
- the speech becomes one audio feature per 25 fps frame.
What is done on every change: motion generation (`generate_motion`, by default the fast 10-step DDIM sampler, since
a panel should answer in about a second) and decoding. With the same settings the frames equal `animate`'s.

Controls (`GenerationPanel.CONTROLS`): gaze_yaw, gaze_pitch (degrees, relative to the head), distance (relative to the
mean head distance), emotion (a name from world.params.EMOTIONS or "none"), guidance_audio, guidance_gaze,
guidance_emotion (the CFG scales l_c of motion.guidance), seed.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from vasa_lite.errors import InputError
from vasa_lite.world.params import EMOTIONS, FACTORS, FPS, SAMPLE_RATE

CONTROLS = ("gaze_yaw", "gaze_pitch", "distance", "emotion", "guidance_audio", "guidance_gaze", "guidance_emotion",
            "seed")
GUIDANCE_MAX = 3.0           # slider range of each guidance scale (any scale >= 0 is accepted by `set`)


class GenerationPanel:
    """A talking-face clip regenerated from control values.

        panel = GenerationPanel("grace_hopper", "speech.wav", preset="cpu")
        panel.set(gaze_yaw=15, emotion="happy", guidance_audio=1.0)   # regenerates; returns frames uint8 [T, H, W, 3]
        panel.show()                                                     # the clip with sound
        panel.widget()                                                   # sliders wired to `set`

    Attributes after each regeneration: frames (uint8 [T, H, W, 3]), motion ([T, 6 + dyn_dim], the generated codes),
    values (the current controls), renders (how many times a change regenerated the clip), seconds (the time the
    last regeneration took), audio (float32 16 kHz, cut to max_seconds), features ([T, D] audio features).

    sampler / steps: as generate_motion (default 10 DDIM steps: fast enough to follow a slider); max_seconds: the
    speech is cut to this length; model: a motion generator of the preset (default its shipped one, load_motion)."""

    CONTROLS = CONTROLS

    def __init__(self, portrait, audio, preset="cpu", seed: int = 0, sampler: str = "ddim",
                 steps: "int | None" = None, max_seconds: "float | None" = 4.0, sr: "int | None" = None,
                 pose: str = "relative", device=None, progress: bool = False, model=None):
        from vasa_lite.audio import load_audio_encoder, prepare_audio
        from vasa_lite.config import get_preset
        from vasa_lite.device import pick_device
        from vasa_lite.latent.model import load_latent
        from vasa_lite.motion.animate import check_choices, encode_portrait, portrait_frame
        from vasa_lite.motion.train import load_motion

        self.preset = get_preset(preset)
        check_choices(sampler, pose)
        self.sampler, self.steps, self.pose, self.progress = sampler, steps, pose, progress
        samples = prepare_audio(audio, sr)
        if max_seconds is not None:
            if not max_seconds > 0:
                raise InputError(f"max_seconds must be a positive number of seconds, got {max_seconds!r}")
            samples = samples[:max(1, int(round(max_seconds * SAMPLE_RATE)))]
        self.audio = samples
        self.portrait = portrait_frame(portrait, self.preset.world.size)
        self.device = pick_device(device)
        self.latent = load_latent(self.preset, device=self.device)
        self.model = load_motion(self.preset, device=self.device) if model is None else model.to(self.device).eval()
        encoder = load_audio_encoder(self.preset, device=self.device)
        self.source = encode_portrait(self.latent, self.portrait)    # once for every regeneration
        with torch.no_grad():
            self.features = encoder.encode_array(samples)
        cfg = self.model.cfg
        self.initial = {"gaze_yaw": 0.0, "gaze_pitch": 0.0, "distance": round(float(self.model.distance_mean), 4),
                        "emotion": "none", "guidance_audio": float(cfg.guidance_audio),
                        "guidance_gaze": float(cfg.guidance_gaze), "guidance_emotion": 0.0, "seed": int(seed)}
        self.values = self._checked(dict(self.initial))
        self.renders = 0
        self.regenerate()

    # ------------------------------------------------------------------------------------------------ logic
    def settings(self, values: "dict | None" = None) -> dict:
        """The keyword arguments of generate_motion for the given (default: current) values."""
        v = self.values if values is None else values
        emotion = None if v["emotion"] in (None, "none") else v["emotion"]
        return {"gaze": (float(v["gaze_yaw"]), float(v["gaze_pitch"])), "distance": float(v["distance"]),
                "emotion": emotion, "seed": int(v["seed"]), "sampler": self.sampler, "steps": self.steps,
                "guidance": {"audio": float(v["guidance_audio"]), "gaze": float(v["guidance_gaze"]),
                             "emotion": float(v["guidance_emotion"])}}

    def _checked(self, values: dict) -> dict:
        """values, validated the way animate validates its inputs (InputError naming the bad one)."""
        from vasa_lite.motion.generate import check_controls
        from vasa_lite.motion.guidance import guidance_scales

        s = self.settings(values)
        check_controls(s["gaze"], s["distance"], s["emotion"])
        guidance_scales(s["guidance"], self.model.cfg)
        if isinstance(values["seed"], bool) or not float(values["seed"]).is_integer():
            raise InputError(f"seed must be an integer, got {values['seed']!r}")
        return values

    def regenerate(self) -> np.ndarray:
        """Generate the motion from the current values and decode it; returns the frames uint8 [T, H, W, 3]."""
        from vasa_lite.motion.animate import frames_of
        from vasa_lite.motion.generate import generate_motion

        t0 = time.perf_counter()
        self.motion = generate_motion(self.features, model=self.model, device=self.device, progress=self.progress,
                                      **self.settings())
        self.driving, self.frames = frames_of(self.latent, self.source, self.model, self.motion, self.pose)
        self.seconds = time.perf_counter() - t0
        return self.frames

    def set(self, **values) -> np.ndarray:
        """Change some controls and regenerate; returns the new frames. An unknown control or a value out of range
        is an InputError, and the panel keeps its previous values."""
        for k in values:
            if k not in self.values:
                raise InputError(f"unknown control '{k}'; use one of {list(self.values)}")
        new = dict(self.values)
        for k, v in values.items():
            if k == "emotion":
                new[k] = "none" if v in (None, "none") else str(v)
            elif k == "seed":
                new[k] = int(v) if not isinstance(v, bool) and float(v).is_integer() else v
            else:
                try:
                    new[k] = float(v)
                except (TypeError, ValueError):
                    raise InputError(f"{k} must be a number, got {v!r}") from None
        self.values = self._checked(new)
        self.renders += 1
        return self.regenerate()

    def reset(self) -> np.ndarray:
        """Back to the initial values (forward gaze, mean distance, no emotion, the paper's guidance)."""
        return self.set(**self.initial)

    def summary(self) -> str:
        """One line: the current values and the time of the last regeneration."""
        v = self.values
        return (f"gaze ({v['gaze_yaw']:+.0f}, {v['gaze_pitch']:+.0f}) deg, distance {v['distance']:.2f}, emotion "
                f"{v['emotion']}, guidance audio {v['guidance_audio']:.2f} / gaze {v['guidance_gaze']:.2f} / emotion "
                f"{v['guidance_emotion']:.2f}, seed {v['seed']}: {len(self.frames)} frames at {FPS} fps "
                f"({len(self.frames) / FPS:.1f} s) in {1000 * self.seconds:.0f} ms")

    # --------------------------------------------------------------------------------------------- display
    def show(self, width: "int | None" = None):
        """The current clip with sound (an HTML <video controls>, media.show_video)."""
        from vasa_lite.media import show_video

        return show_video(self.frames, audio=self.audio, width=width, fps=FPS, sr=SAMPLE_RATE)

    def html(self, width: "int | None" = None) -> str:
        """The current clip with sound as an HTML string."""
        return self.show(width).data

    def widget(self, width: "int | None" = 256):
        """ipywidgets: sliders for gaze (degrees), distance, the guidance scales, a dropdown for the emotion, a seed
        box and a reset button, beside the clip (with sound). Every change calls `set`, which regenerates the clip.
        The returned box has `.sliders` (control name -> widget), `.video` (the HTML widget) and `.status`."""
        import ipywidgets as W

        video = W.HTML(value=self.html(width))
        status = W.Label(value=self.summary())
        style = {"description_width": "130px"}
        fy, fp, fd = FACTORS["gaze_yaw"], FACTORS["gaze_pitch"], FACTORS["distance"]
        sliders = {
            "gaze_yaw": W.FloatSlider(min=fy.low, max=fy.high, step=1.0, description="gaze yaw (deg)"),
            "gaze_pitch": W.FloatSlider(min=fp.low, max=fp.high, step=1.0, description="gaze pitch (deg)"),
            "distance": W.FloatSlider(min=fd.low, max=fd.high, step=0.01, description="distance (rel)"),
            "emotion": W.Dropdown(options=["none"] + list(EMOTIONS), description="emotion"),
            "guidance_audio": W.FloatSlider(min=0.0, max=GUIDANCE_MAX, step=0.1, description="λ audio"),
            "guidance_gaze": W.FloatSlider(min=0.0, max=GUIDANCE_MAX, step=0.1, description="λ gaze"),
            "guidance_emotion": W.FloatSlider(min=0.0, max=GUIDANCE_MAX, step=0.1, description="λ emotion"),
            "seed": W.BoundedIntText(min=0, max=2**31 - 1, description="seed"),
        }

        def show_values():
            for k, s in sliders.items():
                v = self.values[k]
                s.value = v if k in ("emotion", "seed") else float(np.clip(v, s.min, s.max))

        show_values()                                        # before wiring: setting the start values regenerates nothing
        for k, s in sliders.items():
            s.style = style
            if hasattr(s, "continuous_update"):
                s.continuous_update = False                  # regenerate when a drag ends, not at every step

            def changed(change, name=k):
                if change["new"] == self.values[name]:
                    return                                   # e.g. reset moving a slider back to where it is
                try:
                    self.set(**{name: change["new"]})
                except InputError as exc:
                    status.value = f"not changed: {exc}"
                    return
                video.value = self.html(width)
                status.value = self.summary()
            s.observe(changed, names="value")
        reset = W.Button(description="reset")

        def on_reset(_):
            self.reset()
            for k, s in sliders.items():                     # the observers see equal values and do nothing
                s.value = self.values[k] if k in ("emotion", "seed") else float(np.clip(self.values[k], s.min, s.max))
            video.value = self.html(width)
            status.value = self.summary()
        reset.on_click(on_reset)
        box = W.VBox([W.HBox([video, W.VBox(list(sliders.values()) + [reset])]), status])
        box.sliders, box.video, box.status, box.reset = sliders, video, status, reset
        return box


__all__ = ["GenerationPanel", "CONTROLS"]
