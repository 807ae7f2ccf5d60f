"""The studio's ipywidgets (vasa_lite.studio): layout and wiring only. Each observer calls one Studio method, so a
test that sets `widget.value` (or calls `button.click()`) runs exactly what a click in a browser runs.

The returned app has `.controls` (name -> widget), `.portrait`, `.upload_image`, `.text`, `.lang`, `.upload_audio`,
`.generate`, `.player`, `.status`, `.editor_box` and `.tabs`.
"""
from __future__ import annotations

import io

import numpy as np

from vasa_lite.errors import InputError
from vasa_lite.world.params import EMOTIONS, FACTORS


def _png(frame: np.ndarray, scale: int = 1) -> bytes:
    from PIL import Image

    img = Image.fromarray(np.asarray(frame))
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _uploaded(change) -> "tuple[bytes, str] | None":
    """(bytes, file name) of the newest file of a FileUpload value (ipywidgets 8: a tuple of dicts)."""
    files = change["new"]
    if not files:
        return None
    f = files[-1]
    return bytes(f["content"]), str(f["name"])


def control_widgets(studio) -> dict:
    """One widget per studio control, at the studio's current values (degrees and relative units in the labels)."""
    import ipywidgets as W

    from vasa_lite.motion.panel import GUIDANCE_MAX
    from vasa_lite.motion.schedule import SAMPLERS
    from vasa_lite.studio import MAX_STEPS

    def deg(factor, label):
        f = FACTORS[factor]
        return W.FloatSlider(min=f.low, max=f.high, step=1.0, description=f"{label} (deg)")

    fd = FACTORS["distance"]
    w = {"emotion": W.Dropdown(options=["none"] + list(EMOTIONS), description="emotion"),
         "intensity": W.FloatSlider(min=0.0, max=1.0, step=0.05, description="intensity"),
         "gaze_yaw": deg("gaze_yaw", "gaze yaw"), "gaze_pitch": deg("gaze_pitch", "gaze pitch"),
         "distance": W.FloatSlider(min=fd.low, max=fd.high, step=0.01, description="distance (rel)"),
         "head_yaw": deg("yaw", "head yaw +"), "head_pitch": deg("pitch", "head pitch +"),
         "head_roll": deg("roll", "head roll +"),
         "guidance_audio": W.FloatSlider(min=0.0, max=GUIDANCE_MAX, step=0.1, description="λ audio"),
         "guidance_gaze": W.FloatSlider(min=0.0, max=GUIDANCE_MAX, step=0.1, description="λ gaze"),
         "guidance_emotion": W.FloatSlider(min=0.0, max=GUIDANCE_MAX, step=0.1, description="λ emotion"),
         "sampler": W.Dropdown(options=list(SAMPLERS), description="sampler"),
         "steps": W.IntSlider(min=1, max=MAX_STEPS, step=1, description="steps"),
         "seed": W.BoundedIntText(min=0, max=2**31 - 1, description="seed")}
    for k, x in w.items():
        x.style = {"description_width": "110px"}
        if hasattr(x, "continuous_update"):
            x.continuous_update = False
        v = studio.values[k]
        x.value = v if isinstance(x, W.Dropdown) or k in ("steps", "seed") else float(np.clip(v, x.min, x.max))
    return w


def build(studio, plotly_js: str = "cdn"):
    """The app: a Generate tab (gallery and upload, speech by text or file, controls, Generate, the synced player)
    and an Edit portrait tab (the still-portrait editor, re-decoded at each slider change)."""
    import ipywidgets as W

    from vasa_lite.world.speech import LANGUAGES

    from vasa_lite.studio import GALLERY

    portrait = W.Dropdown(options=list(GALLERY), description="portrait",
                          value=studio.portrait_name if studio.portrait_name in GALLERY else None)
    preview = W.Image(value=_png(studio.portrait), format="png", width=128)
    upload_image = W.FileUpload(accept="image/*", multiple=False, description="your photo")
    text = W.Textarea(value=studio.speech["text"] or "", description="text", layout=W.Layout(width="420px"))
    lang = W.Dropdown(options=sorted(LANGUAGES), value=studio.speech["lang"] or "en", description="language")
    upload_audio = W.FileUpload(accept="audio/*", multiple=False, description="audio file")
    controls = control_widgets(studio)
    generate = W.Button(description="Generate", button_style="primary", icon="play")
    reset = W.Button(description="reset controls")
    player = W.HTML(value="")
    status = W.Label(value=studio.summary())
    editor_box = W.VBox([studio.editor.widget()])
    speech_from = {"source": "text" if studio.speech["text"] else "audio"}

    def say(msg):
        status.value = msg

    def new_portrait():
        preview.value = _png(studio.portrait)
        editor_box.children = [studio.editor.widget()]
        player.value = ""

    def on_portrait(change):
        if change["new"] is None:
            return
        try:
            studio.choose_portrait(change["new"])
        except InputError as exc:
            return say(f"portrait not changed: {exc}")
        new_portrait()
        say(f"portrait: {change['new']}")

    def on_upload(change, load, what, after):
        got = _uploaded(change)
        if got is None:
            return
        try:
            load(*got)
        except InputError as exc:
            return say(f"{what} not changed: {exc}")
        after(got[1])

    def portrait_uploaded(name):
        new_portrait()
        say(f"portrait: {name}")

    def audio_uploaded(name):
        speech_from["source"] = "audio"
        say(f"speech: {name}, {studio.speech['seconds']:.1f} s" + "".join(f"; {n}" for n in studio.notes))

    def on_text(_):
        speech_from["source"] = "text"

    def on_control(change, name):
        try:
            studio.set(**{name: change["new"]})
        except InputError as exc:
            say(f"not changed: {exc}")

    def on_generate(_):
        try:
            if speech_from["source"] == "text" and (text.value != studio.speech["text"] or lang.value != studio.speech["lang"]):
                studio.set_speech(text=text.value, lang=lang.value)
            say("generating ...")
            take = studio.generate()
        except InputError as exc:
            return say(f"not generated: {exc}")
        player.value = studio.player_html(take, plotly_js=plotly_js)
        say(studio.summary(take))

    def on_reset(_):
        studio.reset()
        for k, x in controls.items():
            x.value = studio.values[k] if isinstance(x, W.Dropdown) or k in ("steps", "seed") else float(
                np.clip(studio.values[k], x.min, x.max))

    portrait.observe(on_portrait, names="value")
    upload_image.observe(lambda c: on_upload(c, studio.upload_portrait, "portrait", portrait_uploaded), names="value")
    upload_audio.observe(lambda c: on_upload(c, studio.upload_audio, "speech", audio_uploaded), names="value")
    text.observe(on_text, names="value")
    lang.observe(on_text, names="value")
    for k, x in controls.items():
        x.observe(lambda change, name=k: on_control(change, name), names="value")
    generate.on_click(on_generate)
    reset.on_click(on_reset)

    left = W.VBox([W.HTML("<b>Portrait</b>"), portrait, preview, upload_image,
                   W.HTML("<b>Speech</b>"), text, lang, upload_audio])
    right = W.VBox([W.HTML("<b>Controls</b>")] + list(controls.values()) + [W.HBox([generate, reset])])
    tab_generate = W.VBox([W.HBox([left, right]), player, status])
    tabs = W.Tab(children=[tab_generate, editor_box])
    tabs.set_title(0, "Generate")
    tabs.set_title(1, "Edit portrait")
    tabs.controls, tabs.portrait, tabs.upload_image, tabs.text, tabs.lang = controls, portrait, upload_image, text, lang
    tabs.upload_audio, tabs.generate, tabs.player, tabs.status, tabs.editor_box = upload_audio, generate, player, status, editor_box
    tabs.reset, tabs.preview = reset, preview
    return tabs

