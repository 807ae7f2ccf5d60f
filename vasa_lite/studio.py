"""The interactive studio (notebook 08): pick a portrait, give it speech, set the controls, generate, watch.

Everything a widget does is a method here, so the whole app runs and is tested without a browser: setting a
widget's `.value` calls the same method a drag or a click calls.

    studio = Studio(preset="cpu")                      # the shipped models, loaded once
    studio.choose_portrait("grace_hopper")             # or "actor:3", a path, an array, studio.upload_portrait(bytes)
    studio.set_speech(text="Bonjour !", lang="fr")     # or audio=path / samples / uploaded bytes
    studio.set(emotion="happy", intensity=0.6, gaze_yaw=10, head_yaw=-8, guidance_audio=1.0, steps=10, seed=3)
    take = studio.generate()                           # frames at 25 fps, the speech, the motion, timings
    studio.player(take)                                # the video with sound beside its head-pose plot, in sync
    studio.editor.set(yaw=20, jaw=0.8)                 # the still portrait, re-decoded at once
    studio.widget()                                    # all of it as ipywidgets

Two halves, two speeds:
- **Generate** runs the whole pipeline (motion diffusion with guidance, then the decoder) on the speech: about a
  second per second of speech on a laptop CPU with 10 DDIM steps;
- **Edit portrait** moves the still portrait's codes along the slider directions stored with the latent
  checkpoint (pose, distance, gaze, jaw, smile, blink, brows; latent.controls) and re-decodes one frame, which must
  answer a drag at once (`vasa-lite bench studio`: at most 100 ms at 128 px on a 2-core CPU).
"""
from __future__ import annotations

import dataclasses
import html
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vasa_lite.errors import InputError
from vasa_lite.world.params import FACTORS, FPS, SAMPLE_RATE

GALLERY = ("actor", "actor:1", "actor:2", "actor:3", "grace_hopper", "astronaut")
HEAD = ("head_yaw", "head_pitch", "head_roll")      # degrees added to the generated head angles
MAX_STEPS = 100
SLIDER_TARGET_MS = 100


@dataclasses.dataclass
class Take:
    """One generated clip: frames uint8 [T, H, W, 3] at 25 fps, the 16 kHz speech, the generated motion and what
    the decoder got (driving: [T, 6 + dyn_dim], head angles in degrees first), the settings and the seconds."""
    frames: np.ndarray
    audio: np.ndarray
    motion: torch.Tensor
    driving: torch.Tensor
    settings: dict
    seconds: float

    def pose_deg(self) -> dict:
        """Head yaw, pitch and roll over time (degrees), and the time of each frame (s)."""
        d = self.driving[:, :3].double().numpy()
        return {"t": np.arange(len(d)) / FPS, "yaw": d[:, 0], "pitch": d[:, 1], "roll": d[:, 2]}


class Studio:
    """The studio's state and actions (see the module doc). Models load once, in the constructor."""

    def __init__(self, preset="cpu", portrait="actor", text: "str | None" = None, lang: str = "en",
                 device=None, max_seconds: float = 10.0):
        from vasa_lite.config import get_preset
        from vasa_lite.demo import DEFAULT_TEXT
        from vasa_lite.device import pick_device
        from vasa_lite.motion.animate import load_pipeline

        self.preset = get_preset(preset)
        self.device = pick_device(device)
        self.max_seconds = float(max_seconds)
        self.latent, self.model, self.encoder = load_pipeline(self.preset, self.device)
        cfg = self.model.cfg
        self.initial = {"gaze_yaw": 0.0, "gaze_pitch": 0.0, "distance": round(float(self.model.distance_mean), 4),
                        "emotion": "none", "intensity": 1.0, "head_yaw": 0.0, "head_pitch": 0.0, "head_roll": 0.0,
                        "guidance_audio": float(cfg.guidance_audio), "guidance_gaze": float(cfg.guidance_gaze),
                        # the paper guides audio and gaze; an emotion picked here barely shows unguided (notebook 08
                        # measures P(happy) 0.003 at 0 against 0.80 at 1.0 on the cpu models), so it is guided too
                        "guidance_emotion": 1.0, "sampler": "ddim", "steps": int(cfg.ddim_steps), "seed": 0}
        self.values = dict(self.initial)
        self.take: "Take | None" = None
        self.notes: list[str] = []
        self._thumbs: dict = {}
        self.choose_portrait(portrait)
        self.set_speech(text=text or DEFAULT_TEXT, lang=lang)

    # ------------------------------------------------------------------------------------------ portrait
    def gallery(self, names=GALLERY) -> dict:
        """Portraits to pick from: name -> aligned frame uint8 [H, W, 3] (world actors, then the real photos)."""
        from vasa_lite.motion.animate import portrait_frame

        for n in names:
            if n not in self._thumbs:
                self._thumbs[n] = portrait_frame(n, self.preset.world.size)
        return {n: self._thumbs[n] for n in names}

    def choose_portrait(self, portrait, name: "str | None" = None) -> np.ndarray:
        """Use a portrait: a gallery name, an image path or an image array (a photo is face-detected and framed;
        no face: InputError, and the studio keeps its current portrait). Returns the aligned frame."""
        from vasa_lite.latent.controls import PortraitEditor
        from vasa_lite.motion.animate import encode_portrait, portrait_frame

        frame = portrait_frame(portrait, self.preset.world.size)
        source = encode_portrait(self.latent, frame)
        editor = PortraitEditor(self.latent, torch.from_numpy(np.array(frame)).permute(2, 0, 1).float() / 255)
        self.portrait, self.source, self.editor = frame, source, editor
        self.portrait_name = name or (portrait if isinstance(portrait, str) else "image")
        self.take = None
        return frame

    def upload_portrait(self, data: bytes, filename: str = "upload.png") -> np.ndarray:
        """A portrait from an uploaded file's bytes (what the upload widget gives)."""
        from vasa_lite.media import read_image

        return self.choose_portrait(_from_upload(data, filename, "image", read_image), name=filename)

    # -------------------------------------------------------------------------------------------- speech
    def set_speech(self, text: "str | None" = None, lang: str = "en", audio=None, sr: "int | None" = None) -> np.ndarray:
        """The speech: `text` spoken by espeak-ng in `lang`, or `audio` (a path, samples at `sr` Hz, default 16 kHz).
        Longer than max_seconds: cut, with a note. Silent, empty or unreadable: InputError, nothing changes."""
        from vasa_lite.audio import prepare_audio
        from vasa_lite.demo import speech_of

        if (text is None) == (audio is None):
            raise InputError("give the speech as text (with its language) or as audio, not both and not neither")
        if text is not None:
            if not str(text).strip():
                raise InputError("the text is empty; type a sentence to speak")
            samples = prepare_audio(speech_of(str(text), lang))
        else:
            samples = prepare_audio(audio, sr)
        keep = int(self.max_seconds * SAMPLE_RATE)
        self.notes = []
        if len(samples) > keep:
            self.notes.append(f"the speech was {len(samples) / SAMPLE_RATE:.1f} s; the studio keeps the first "
                              f"{self.max_seconds:g} s (use `vasa-lite animate` for long speech)")
            samples = samples[:keep]
        with torch.no_grad():
            self.features = self.encoder.encode_array(samples)
        self.audio = samples
        self.speech = {"text": text, "lang": lang if text is not None else None, "seconds": len(samples) / SAMPLE_RATE}
        self.take = None
        return samples

    def upload_audio(self, data: bytes, filename: str = "speech.wav") -> np.ndarray:
        """The speech from an uploaded audio file's bytes (any format ffmpeg reads)."""
        from vasa_lite.audio import prepare_audio

        return self.set_speech(audio=_from_upload(data, filename, "audio", prepare_audio))

    # ---------------------------------------------------------------------------------------- controls
    def set(self, **values) -> dict:
        """Change controls (names as in `values`); an unknown name or a value out of range is an InputError naming
        it, and the studio keeps its previous values. Returns the values."""
        unknown = sorted(set(values) - set(self.values))
        if unknown:
            raise InputError(f"unknown control {unknown}; use some of {list(self.values)}")
        new = {**self.values, **values}
        self.settings(new)                                      # validates
        self.values = {k: _typed(k, v) for k, v in new.items()}
        return dict(self.values)

    def reset(self) -> dict:
        """Back to the defaults: forward gaze, mean distance, no emotion, the paper's guidance, 10 DDIM steps."""
        self.values = dict(self.initial)
        return dict(self.values)

    def settings(self, values: "dict | None" = None) -> dict:
        """generate_motion's keyword arguments and the head offset for the given (default current) values,
        validated the way animate validates its inputs."""
        from vasa_lite.motion.generate import check_controls, check_number, check_seed
        from vasa_lite.motion.guidance import guidance_scales
        from vasa_lite.motion.schedule import SAMPLERS

        v = self.values if values is None else values
        check_number("intensity", v["intensity"], 0.0, 1.0, "(0 none, 1 full)")
        emotion = None if v["emotion"] in (None, "none") else (str(v["emotion"]), v["intensity"])
        gaze = (v["gaze_yaw"], v["gaze_pitch"])
        check_controls(gaze, v["distance"], emotion)
        guidance = {"audio": v["guidance_audio"], "gaze": v["guidance_gaze"], "emotion": v["guidance_emotion"]}
        guidance_scales(guidance, self.model.cfg)
        offset = []
        for k in HEAD:
            f = FACTORS[k.split("_")[1]]
            offset.append(check_number(k, v[k], f.low, f.high, "degrees"))
        if v["sampler"] not in SAMPLERS:
            raise InputError(f"unknown sampler {v['sampler']!r}; choose one of: {', '.join(SAMPLERS)}")
        steps = check_number("steps", v["steps"], 1, MAX_STEPS, "sampling steps")
        if not float(steps).is_integer():
            raise InputError(f"steps must be a whole number, got {v['steps']!r}")
        seed = v["seed"]
        check_seed(int(seed) if isinstance(seed, float) and seed.is_integer() else seed)
        return {"motion": {"gaze": tuple(map(float, gaze)), "distance": float(v["distance"]), "emotion": emotion,
                           "guidance": {k: float(x) for k, x in guidance.items()}, "sampler": v["sampler"],
                           "steps": int(steps), "seed": int(seed)},
                "offset": tuple(offset)}

    # -------------------------------------------------------------------------------------------- generate
    def generate(self, progress: bool = False) -> Take:
        """The talking clip for the current portrait, speech and controls (the same seed gives the same clip)."""
        from vasa_lite.motion.animate import frames_of
        from vasa_lite.motion.generate import generate_motion

        s = self.settings()
        t0 = time.perf_counter()
        motion = generate_motion(self.features, model=self.model, device=self.device, progress=progress,
                                 **s["motion"])
        driving, frames = frames_of(self.latent, self.source, self.model, motion, "relative", s["offset"])
        seconds = time.perf_counter() - t0
        settings = {"portrait": self.portrait_name, **self.speech, **dict(self.values)}
        self.take = Take(frames=frames, audio=self.audio, motion=motion, driving=driving, settings=settings,
                         seconds=round(seconds, 3))
        return self.take

    def summary(self, take: "Take | None" = None) -> str:
        """One line about a take: length, time to make it, and its settings."""
        t = take or self.take
        if t is None:
            return "nothing generated yet: press Generate"
        v = t.settings
        emo = "no emotion" if v["emotion"] == "none" else f"{v['emotion']} at {v['intensity']:.1f}"
        return (f"{len(t.frames)} frames ({len(t.frames) / FPS:.1f} s at {FPS} fps) in {t.seconds:.1f} s: "
                f"{v['portrait']}, {emo}, gaze ({v['gaze_yaw']:+.0f}, {v['gaze_pitch']:+.0f}) deg, distance "
                f"{v['distance']:.2f}, head offset ({v['head_yaw']:+.0f}, {v['head_pitch']:+.0f}, "
                f"{v['head_roll']:+.0f}) deg, λ audio {v['guidance_audio']:.1f} / gaze {v['guidance_gaze']:.1f} / "
                f"emotion {v['guidance_emotion']:.1f}, {v['steps']} {v['sampler'].upper()} steps, seed {v['seed']}")

    # ------------------------------------------------------------------------------------------- display
    def pose_figure(self, take: "Take | None" = None):
        """Plotly: the take's head yaw, pitch and roll (degrees) against time (s)."""
        import plotly.graph_objects as go

        t = self._need_take(take)
        p = t.pose_deg()
        fig = go.Figure([go.Scatter(x=p["t"].round(3).tolist(), y=p[k].round(3).tolist(), mode="lines",
                                    name=f"{k} (deg)") for k in ("yaw", "pitch", "roll")])
        fig.update_layout(height=260, width=520, margin=dict(l=40, r=10, t=30, b=40), title="head pose",
                          xaxis_title="time (s)", yaxis_title="degrees", legend=dict(orientation="h", y=-0.3),
                          shapes=[dict(type="line", x0=0, x1=0, y0=0, y1=1, yref="paper", line=dict(color="black"))])
        return fig

    def player_html(self, take: "Take | None" = None, width: int = 256, plotly_js: str = "cdn") -> str:
        """The take's video (with sound) beside its head-pose plot, in sync: a cursor follows the video as it plays,
        and a click on the plot seeks the video there. One self-contained <iframe>, so its script runs in
        JupyterLab, classic Jupyter, Colab and a saved HTML page alike. plotly_js: "cdn" (a browser with internet)
        or "inline" (offline; about 4 MB more)."""
        from vasa_lite.media import video_data_uri

        if plotly_js not in ("cdn", "inline"):
            raise InputError(f"plotly_js must be 'cdn' or 'inline', got {plotly_js!r}")
        t = self._need_take(take)
        uri, _ = video_data_uri(t.frames, audio=t.audio, fps=FPS, sr=SAMPLE_RATE)
        fig = self.pose_figure(t)
        if plotly_js == "inline":
            from plotly.offline import get_plotlyjs

            lib = f"<script>{get_plotlyjs()}</script>"
        else:
            from plotly.offline import get_plotlyjs_version

            lib = f'<script src="https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"></script>'
        doc = f"""<!doctype html><html><body style="margin:0;font-family:sans-serif">
<div style="display:flex;gap:10px;align-items:flex-start">
<video id="v" controls playsinline width="{int(width)}" src="{uri}"></video><div id="p"></div></div>
{lib}
<script>
const fig = {fig.to_json()};
const v = document.getElementById('v'), p = document.getElementById('p');
Plotly.newPlot(p, fig.data, fig.layout).then(() => {{
  const move = () => Plotly.relayout(p, {{'shapes[0].x0': v.currentTime, 'shapes[0].x1': v.currentTime}});
  const loop = () => {{ move(); if (!v.paused) requestAnimationFrame(loop); }};
  v.addEventListener('play', loop); v.addEventListener('seeked', move);
  p.on('plotly_click', d => {{ v.currentTime = d.points[0].x; }});
}});
</script></body></html>"""
        height = max(int(width), 270) + 20
        return (f'<iframe srcdoc="{html.escape(doc, quote=True)}" style="border:0;width:{int(width) + 560}px;'
                f'height:{height}px"></iframe>')

    def player(self, take: "Take | None" = None, width: int = 256, plotly_js: str = "cdn"):
        """The synced player for a notebook (IPython HTML)."""
        from IPython.display import HTML

        return HTML(self.player_html(take, width, plotly_js))

    def _need_take(self, take):
        t = take or self.take
        if t is None:
            raise InputError("nothing generated yet; call generate() first")
        return t

    # -------------------------------------------------------------------------------------------- widgets
    def widget(self, plotly_js: str = "cdn"):
        """The studio as ipywidgets (see vasa_lite.studio_ui.build)."""
        from vasa_lite.studio_ui import build

        return build(self, plotly_js=plotly_js)


def _typed(name: str, value):
    if name in ("emotion", "sampler"):
        return "none" if value is None else str(value)
    if name in ("steps", "seed"):
        return int(value)
    return float(value)


def _from_upload(data: bytes, filename: str, what: str, load):
    """Load an uploaded file's bytes through `load(path)` (the same checks as a file on disk); errors name the
    upload, not the temporary file."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or not len(data):
        raise InputError(f"the uploaded {what} '{filename}' is empty; choose the file again")
    name = Path(str(filename)).name or f"upload.{what}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(bytes(data))
        try:
            return load(path)
        except InputError as exc:
            raise InputError(str(exc).replace(str(path), f"'{name}'")) from None


# ------------------------------------------------------------------------------------------------ measuring
def bench_studio(preset="cpu", seed: int = 0, device=None, frames: "int | None" = None) -> dict:
    """`vasa-lite bench studio`: how fast the studio answers, as JSON. The still-portrait editor: the time from a
    slider change to the new image (re-decode and PNG for the widget), p50 and p95 over `frames` changes (default
    40) that cycle through every slider; the target is 100 ms. And one Generate of 4 s of speech with the studio's
    default 10 DDIM steps."""
    from vasa_lite.latent.controls import slider_ranges

    studio = Studio(preset=preset, device=device)
    ed = studio.editor
    ranges = slider_ranges(ed.controls["factors"])
    rng = np.random.default_rng(seed)
    names = list(ranges)
    ed.set(**{names[0]: ed.values[names[0]]})
    ed.png()                                                          # warm-up
    times = []
    for i in range(max(1, frames or 40)):
        k = names[i % len(names)]
        lo, hi, _, _ = ranges[k]
        t = time.perf_counter()
        ed.set(**{k: float(rng.uniform(lo, hi))})
        ed.png()
        times.append(1000 * (time.perf_counter() - t))
    from vasa_lite.demo import speech_of

    studio.set_speech(audio=np.tile(speech_of("One two three four five six seven."), 3)[:4 * SAMPLE_RATE])
    studio.set(seed=seed)
    studio.generate()                                                # warm-up
    take = studio.generate()
    ms = np.asarray(times)
    return {"target": "studio", "preset": studio.preset.name, "device": str(studio.device),
            "threads": torch.get_num_threads(), "size_px": studio.preset.world.size,
            "editor_ms": {"p50": round(float(np.percentile(ms, 50)), 1), "p95": round(float(np.percentile(ms, 95)), 1),
                          "max": round(float(ms.max()), 1), "changes": len(ms), "sliders": names,
                          "target_p95": SLIDER_TARGET_MS},
            "generate": {"speech_s": round(len(take.audio) / SAMPLE_RATE, 2), "frames": int(len(take.frames)),
                         "seconds": take.seconds, "sampler": take.settings["sampler"], "steps": take.settings["steps"],
                         "x_real_time": round(len(take.audio) / SAMPLE_RATE / take.seconds, 2)},
            "meets": {"editor_p95_100ms": float(np.percentile(ms, 95)) <= SLIDER_TARGET_MS}}


__all__ = ["Studio", "Take", "GALLERY", "bench_studio"]
