"""The interactive studio (vasa_lite.studio, notebook 08) on the smoke preset, headless: widgets are driven by
setting their values and clicking their buttons, which runs the same code a browser does. Speed is measured by
`vasa-lite bench studio`, never asserted here."""
import base64
import datetime
import html
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from vasa_lite.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def studio():
    from vasa_lite.checkpoints import checkpoint_path

    missing = [c for c in ("latent", "audio", "motion") if not checkpoint_path(c, "smoke").exists()]
    if missing:
        pytest.skip(f"smoke checkpoints missing: {missing}")
    from vasa_lite.studio import Studio

    return Studio("smoke", text="Hello from the studio.")


def _png_bytes(frame) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(frame)).save(buf, format="PNG")
    return buf.getvalue()


def _wav_bytes(audio, sr, tmp_path) -> bytes:
    from vasa_lite.media import write_audio

    return write_audio(tmp_path / "a.wav", audio, sr=sr).read_bytes()


def test_generate_is_reproducible_and_follows_the_head_offset(studio):
    studio.reset()
    a = studio.generate()
    b = studio.generate()
    assert np.array_equal(a.frames, b.frames)                               # the same seed, the same clip
    assert len(a.frames) == int(np.ceil(len(studio.audio) / 640)) and a.frames.dtype == np.uint8
    studio.set(seed=1)
    assert not np.array_equal(studio.generate().frames, a.frames)
    studio.set(seed=0, head_yaw=12.0, head_roll=-5.0)
    c = studio.generate()
    # the same motion, every frame's head turned by the offset (z_pose's angles are degrees)
    assert torch.allclose(c.motion, a.motion)
    assert np.allclose(c.pose_deg()["yaw"] - a.pose_deg()["yaw"], 12.0, atol=1e-4)
    assert np.allclose(c.pose_deg()["roll"] - a.pose_deg()["roll"], -5.0, atol=1e-4)
    assert not np.array_equal(c.frames, a.frames)
    studio.reset()


def test_bad_controls_name_the_control_and_change_nothing(studio):
    studio.reset()
    before = dict(studio.values)
    for bad, words in [({"gaze_yaw": 90.0}, "gaze yaw"), ({"intensity": 1.5}, "intensity"),
                       ({"head_pitch": 60.0}, "head_pitch"), ({"steps": 0}, "steps"), ({"emotion": "bored"}, "emotion"),
                       ({"sampler": "euler"}, "sampler"), ({"wink": 1.0}, "unknown control"),
                       ({"guidance_audio": -1.0}, "audio")]:
        with pytest.raises(InputError, match=words):
            studio.set(**bad)
        assert studio.values == before, bad


def test_emotion_intensity_is_a_mixture_with_neutral():
    from vasa_lite.motion.generate import check_controls, control_tokens
    from vasa_lite.world.params import EMOTIONS

    class M:                                      # control_tokens reads only the mean distance
        distance_mean = torch.tensor(1.0)

    e = control_tokens(M(), check_controls(emotion=("happy", 0.3)), "cpu")["emotion"][0]
    assert e[EMOTIONS.index("happy")] == pytest.approx(0.3) and e[EMOTIONS.index("neutral")] == pytest.approx(0.7)
    assert float(e.sum()) == pytest.approx(1.0)
    full = control_tokens(M(), check_controls(emotion="sad"), "cpu")["emotion"][0]
    assert full[EMOTIONS.index("sad")] == 1.0 and float(full.sum()) == 1.0
    with pytest.raises(InputError, match="intensity"):
        check_controls(emotion=("happy", 2.0))


def test_widgets_generate_and_edit_headlessly(studio, tmp_path):
    studio.reset()
    app = studio.widget()
    app.text.value = "Widgets drive the same code."                        # what typing does
    app.controls["emotion"].value = "happy"
    app.controls["intensity"].value = 0.5
    app.controls["head_yaw"].value = 8.0
    assert studio.values["emotion"] == "happy" and studio.values["head_yaw"] == 8.0
    app.generate.click()                                                    # what a click does
    take = studio.take
    assert take is not None and take.settings["text"] == "Widgets drive the same code."
    assert take.settings["intensity"] == 0.5 and str(len(take.frames)) in app.status.value
    # the player: an iframe with the video (with sound) and the head-pose plot that follows it
    doc = html.unescape(re.search(r'srcdoc="([^"]*)"', app.player.value).group(1))
    assert "<video" in doc and "plotly_click" in doc and "requestAnimationFrame" in doc
    mp4 = base64.b64decode(re.search(r"data:video/mp4;base64,([A-Za-z0-9+/=]+)", doc).group(1))
    from vasa_lite.media import probe

    path = tmp_path / "p.mp4"
    path.write_bytes(mp4)
    info = probe(path)
    assert info["audio"] is not None and abs(info["duration"] - len(take.frames) / 25) < 0.1
    fig = json.loads(re.search(r"const fig = (\{.*?\});\n", doc, re.S).group(1))
    assert np.allclose(fig["data"][0]["y"], take.pose_deg()["yaw"], atol=1e-3)
    app.controls["distance"].value = app.controls["distance"].min
    assert studio.values["distance"] == pytest.approx(app.controls["distance"].min)
    # the portrait gallery: a new portrait, a new preview and a new editor
    png = app.preview.value
    app.portrait.value = "actor:2"
    assert studio.portrait_name == "actor:2" and app.preview.value != png and app.player.value == ""
    editor = app.editor_box.children[0]
    before = editor.image.value
    editor.sliders["yaw"].value = 20.0
    assert editor.image.value != before and studio.editor.values["yaw"] == 20.0
    assert "jaw" in editor.sliders                                          # expression sliders too
    app.reset.click()
    assert studio.values == studio.initial and app.controls["head_yaw"].value == 0.0
    # uploads through the widgets: a good photo is used, a broken one is refused with a message
    from vasa_lite.motion.animate import portrait_frame

    def upload(widget, name, data):
        widget.value = ({"name": name, "type": "", "size": len(data), "content": memoryview(data),
                         "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)},)

    upload(app.upload_image, "broken.png", b"garbage")
    assert "portrait not changed" in app.status.value and "broken.png" in app.status.value
    assert studio.portrait_name == "actor:2"
    upload(app.upload_image, "friend.png", _png_bytes(portrait_frame("actor:7", studio.preset.world.size)))
    assert studio.portrait_name == "friend.png" and "friend.png" in app.status.value
    from vasa_lite.demo import speech_of

    upload(app.upload_audio, "talk.wav", _wav_bytes(speech_of("Uploaded speech."), 16000, tmp_path))
    assert studio.speech["text"] is None and "talk.wav" in app.status.value
    app.generate.click()                                   # the uploaded speech is used, not the text box's
    assert studio.take.settings["text"] is None and len(studio.take.audio) == len(studio.audio)


def test_uploads_work_and_bad_files_say_what_is_wrong(studio, tmp_path):
    from vasa_lite.motion.animate import portrait_frame

    studio.choose_portrait("actor")
    frame = portrait_frame("actor:5", studio.preset.world.size)
    got = studio.upload_portrait(_png_bytes(frame), "me.png")
    assert np.array_equal(got, frame) and studio.portrait_name == "me.png"
    for data, words in [(b"", "empty"), (b"not an image at all", "me.jpg"),
                        (_png_bytes(np.full((300, 300, 3), 128, np.uint8)), "face")]:
        with pytest.raises(InputError, match=words) as e:
            studio.upload_portrait(data, "me.jpg")
        assert "/tmp" not in str(e.value)                                   # names the upload, not a temp file
        assert studio.portrait_name == "me.png"                             # the portrait is kept
    from vasa_lite.demo import speech_of

    speech = speech_of("An uploaded file.")
    stereo = np.stack([speech, speech], 1)
    from vasa_lite.audio import prepare_audio

    samples = studio.upload_audio(_wav_bytes(stereo, 16000, tmp_path), "talk.wav")
    assert len(samples) == len(prepare_audio(speech)) and studio.speech["text"] is None
    with pytest.raises(InputError, match="silen"):
        studio.upload_audio(_wav_bytes(np.zeros(16000, np.float32), 16000, tmp_path), "quiet.wav")
    assert len(studio.audio) == len(samples)                                # the speech is kept
    with pytest.raises(InputError, match="or as audio"):
        studio.set_speech()
    with pytest.raises(InputError, match="empty"):
        studio.set_speech(text="   ")


def test_long_speech_is_cut_with_a_note(studio):
    from vasa_lite.demo import speech_of

    long = np.tile(speech_of("A long speech."), 12)
    studio.max_seconds, keep = 3.0, studio.max_seconds
    try:
        got = studio.set_speech(audio=long)
    finally:
        studio.max_seconds = keep
    assert len(got) == 3 * 16000 and studio.notes and "3 s" in studio.notes[0]
    assert len(studio.features) == 75


def test_cli_bench_studio_prints_json():
    r = subprocess.run([sys.executable, "-m", "vasa_lite", "bench", "studio", "--preset", "smoke", "--frames", "10",
                        "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    e = b["editor_ms"]
    assert b["target"] == "studio" and e["changes"] == 10 and 0 < e["p50"] <= e["p95"] <= e["max"]
    assert {"jaw", "yaw", "gaze_yaw"} <= set(e["sliders"]) and b["generate"]["frames"] == 100
