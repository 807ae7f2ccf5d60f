"""Portrait + speech -> talking-face video (vasa_lite.animate), its CLI, `bench motion` and `eval motion`, on smoke.

Uses the shipped smoke checkpoints (latent, audio, motion, regression, instruments). Quality is not asserted here:
smoke models are trained for seconds; these tests check shapes, reproducibility, bad input and the report's
structure."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import vasa_lite
from vasa_lite.config import get_preset
from vasa_lite.errors import InputError
from vasa_lite.world.params import EMOTIONS, FPS
from vasa_lite.motion.animate import driving_motion
from vasa_lite.motion.evaluate import METRICS, SEAM_SECONDS, SEAM_SEEDS, seam_jerk

SMOKE = get_preset("smoke")
SIZE = SMOKE.world.size


def _skip_without_checkpoints():
    from vasa_lite.checkpoints import checkpoint_path

    need = ("latent", "audio", "motion", "regression", "attributes", "syncnet", "capp", "fvd", "identity")
    missing = [c for c in need if not checkpoint_path(c, "smoke").exists()]
    if missing:
        pytest.skip(f"smoke checkpoints missing: {missing}")


@pytest.fixture(scope="module")
def speech():
    """A test clip's speech (float32, 16 kHz) whose length is not a multiple of 640 samples."""
    from vasa_lite.training import load_split

    _skip_without_checkpoints()
    return load_split("smoke", "test", limit=1)[0]["audio"][:-123]


@pytest.fixture(scope="module")
def render():
    """A world render at the smoke size: an aligned face that passes straight through."""
    from vasa_lite.instruments.banks import clip_bank

    return np.moveaxis(np.asarray(clip_bank("smoke", "test", progress=False)["frames"][0]), 0, -1)


@pytest.fixture(scope="module")
def clip(speech, render, one_thread):
    return vasa_lite.animate(render, speech, preset="smoke", seed=0)


def test_animate_gives_one_frame_per_40_ms_at_the_model_size(clip, speech):
    t = math.ceil(len(speech) / 640)
    assert clip.frames.shape == (t, SIZE, SIZE, 3) and clip.frames.dtype == np.uint8
    assert clip.motion.shape == (t, 6 + SMOKE.latent.dyn_dim) and torch.isfinite(clip.motion).all()
    assert clip.fps == 25 and clip.sr == 16000 and np.allclose(clip.audio, speech)
    assert clip.timing["total_s"] > 0 and clip.timing["motion_frames_per_s"] > 0
    assert clip.settings["steps"] == 50 and clip.settings["guidance"]["audio"] == 0.5
    json.dumps(clip.summary())                                               # JSON-ready


def test_animate_is_reproducible_by_seed(clip, speech, render, one_thread):
    again = vasa_lite.animate(render, speech, preset="smoke", seed=0)
    other = vasa_lite.animate(render, speech, preset="smoke", seed=1)
    assert np.array_equal(clip.frames, again.frames) and torch.equal(clip.motion, again.motion)
    assert not torch.allclose(clip.motion, other.motion)


def test_real_photos_are_detected_and_framed(speech, one_thread):
    out = vasa_lite.animate("grace_hopper", speech, preset="smoke", sampler="ddim", steps=3)
    assert out.frames.shape[1:] == (SIZE, SIZE, 3) and out.portrait.shape == (SIZE, SIZE, 3)


def test_relative_pose_moves_around_the_portraits_own_pose():
    gen = torch.randn(7, 6 + 4)
    own, mean = torch.arange(6.0), torch.full((6,), 0.5)
    rel = driving_motion(gen, own, mean)
    assert torch.allclose(rel[:, :6], gen[:, :6] - mean + own) and torch.equal(rel[:, 6:], gen[:, 6:])
    assert torch.equal(driving_motion(gen, own, mean, "absolute"), gen)
    # a generated clip whose pose stays at the training mean keeps the portrait exactly in its own pose
    assert torch.allclose(driving_motion(mean.repeat(3, 1), own, mean), own.repeat(3, 1))


@pytest.mark.parametrize("kwargs, needle", [
    (dict(gaze=(45, 0)), "[-30, 30]"),
    (dict(distance=2.0), "[0.8, 1.25]"),
    (dict(emotion="bored"), "neutral, happy"),
    (dict(guidance={"audio": -1}), "'audio'"),
    (dict(audio=np.zeros(16000, np.float32)), "silent"),
    (dict(audio=np.zeros(0, np.float32)), "empty"),
    (dict(portrait=np.full((200, 200, 3), 128, np.uint8)), "no face found"),
    (dict(portrait="no/such/portrait.png"), "no such image file"),
])
def test_bad_input_says_what_to_fix(speech, render, kwargs, needle):
    args = {"portrait": render, "audio": speech, "preset": "smoke", **kwargs}
    with pytest.raises(InputError) as err:
        vasa_lite.animate(**args)
    assert needle in str(err.value)


def test_seam_jerk_finds_a_jump_at_a_window_boundary():
    t = np.arange(40, dtype=np.float64)[:, None]
    smooth = (t / 10) ** 3                                                   # constant jerk everywhere
    assert seam_jerk(smooth, window=10)["ratio"] == pytest.approx(1.0)
    jumpy = smooth + (t >= 20)                                               # a step at the second boundary
    assert seam_jerk(jumpy, window=10)["ratio"] > 3


# ---------------------------------------------------------------------------------------------------- CLI


def test_latent_factors_read_z_dyn_in_world_units():
    """The expression read-out gives fractions of each factor's range; latent_factors turns them into degrees (0.5 of
    gaze_yaw's [-30, 30] is 0 deg, 1.0 is 30), so the generator's own gaze error is in the rendered error's units."""
    from vasa_lite.motion.evaluate import latent_factors
    from vasa_lite.world.params import DYNAMICS_NAMES, FACTORS

    class Head(torch.nn.Module):                      # a stand-in latent: z_dyn is its own read-out
        def __init__(self):
            super().__init__()
            self.expression_head = torch.nn.Identity()
            self.w = torch.nn.Parameter(torch.zeros(1))

    z = np.full((3, len(DYNAMICS_NAMES)), 0.5, np.float32)
    yaw, pitch = DYNAMICS_NAMES.index("gaze_yaw"), DYNAMICS_NAMES.index("gaze_pitch")
    z[1, yaw], z[2, pitch] = 1.0, 0.0
    g = latent_factors(Head(), z)
    assert np.allclose(g["gaze_yaw"], [0.0, FACTORS["gaze_yaw"].high, 0.0], atol=1e-5)
    assert np.allclose(g["gaze_pitch"], [0.0, 0.0, FACTORS["gaze_pitch"].low], atol=1e-5)
    assert np.allclose(g["blink"], (FACTORS["blink"].low + FACTORS["blink"].high) / 2)
    assert set(latent_factors(Head(), z, ("jaw",))) == {"jaw"}


def test_cli_animate_writes_an_mp4_with_sound(tmp_path, speech, render, capsys, one_thread):
    from PIL import Image

    from vasa_lite.cli import main
    from vasa_lite.media import probe, write_audio

    Image.fromarray(render).save(tmp_path / "face.png")
    write_audio(tmp_path / "speech.wav", speech)
    out = tmp_path / "talk.mp4"
    code = main(["animate", "--image", str(tmp_path / "face.png"), "--audio", str(tmp_path / "speech.wav"),
                 "--out", str(out), "--preset", "smoke", "--gaze", "10", "-5", "--emotion", "happy",
                 "--sampler", "ddim", "--steps", "5", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == math.ceil(len(speech) / 640) and summary["gaze"] == [10.0, -5.0]
    info = probe(out)
    assert info["video"]["width"] == SIZE and info["audio"] is not None


@pytest.mark.parametrize("extra, needle", [(["--audio", "missing.wav"], "not found"),
                                           (["--emotion", "bored"], "unknown emotion"),
                                           (["--distance", "3"], "[0.8, 1.25]")])
def test_cli_animate_bad_input_is_one_line(tmp_path, speech, capsys, extra, needle):
    from vasa_lite.cli import main
    from vasa_lite.media import write_audio

    write_audio(tmp_path / "speech.wav", speech)
    args = ["animate", "--image", "grace_hopper", "--audio", str(tmp_path / "speech.wav"),
            "--out", str(tmp_path / "x.mp4"), "--preset", "smoke", "--quiet"]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "x.mp4").exists()


def test_cli_animate_missing_image_exits_non_zero_from_the_shell(tmp_path):
    res = subprocess.run([sys.executable, "-m", "vasa_lite", "animate", "--image", str(tmp_path / "none.png"),
                          "--audio", str(tmp_path / "none.wav"), "--out", str(tmp_path / "x.mp4"),
                          "--preset", "smoke"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and "not found" in lines[0], res.stderr


def test_cli_bench_motion_prints_json(capsys):
    from vasa_lite.cli import main

    _skip_without_checkpoints()
    assert main(["bench", "motion", "--preset", "smoke", "--frames", "30", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == "motion" and out["preset"] == "smoke" and out["threads"] == 1
    assert out["ddpm_50_steps"]["frames_per_s"] > 0 and out["ddim_10_steps"]["frames_per_s"] > 0


# ------------------------------------------------------------------------------------------------ eval


def test_eval_motion_refuses_a_row_it_cannot_make():
    from vasa_lite.motion.evaluate import eval_motion

    # refused before any model or clip loads
    with pytest.raises(InputError, match="already in the table"):
        eval_motion("smoke", limit=1, rows={"regression": {}})
    with pytest.raises(InputError, match="unknown keywords.*'gaze'"):
        eval_motion("smoke", limit=1, rows={"mine": {"gaze": (10, 0)}})
    for bad, why in (({"steps": 0}, "sampling steps"), ({"sampler": "euler"}, "unknown sampler"),
                     ({"guidance": {"audio": -1}}, "audio"), ({"pose_smooth": float("nan")}, "pose_smooth")):
        with pytest.raises(InputError, match=f"row 'mine': .*{why}"):
            eval_motion("smoke", limit=1, rows={"mine": bad})


def test_eval_motion_reports_every_row_and_metric(tmp_path, one_thread, monkeypatch):
    from vasa_lite.instruments import banks
    from vasa_lite.motion.evaluate import GENERATED, OTHER, eval_motion, true_controls

    _skip_without_checkpoints()
    clip_bank = banks.clip_bank

    def one_actor(*a, **kw):            # smoke's test actors have one clip each: make them one actor with two
        bank = dict(clip_bank(*a, **kw))
        bank["actor"] = np.full_like(bank["actor"], bank["actor"][0])
        return bank

    monkeypatch.setattr(banks, "clip_bank", one_actor)
    extra = {"emotion guided": {"guidance": {"emotion": 2.0}}}          # a row of the caller's own
    rep = eval_motion("smoke", limit=2, out_json=tmp_path / "motion.json", rows=extra)
    generated = list(GENERATED) + list(extra)
    assert list(rep["rows"]) == ["real", "real motion, latent decoder"] + generated
    finite = lambda v: isinstance(v, float) and math.isfinite(v)            # noqa: E731
    for name, row in rep["rows"].items():
        assert set(row) == set(METRICS) and all(finite(v) for v in row.values()), (name, row)
    assert set(rep["controls"]["rows"]) == {OTHER, *generated}
    assert f"| {OTHER} |" in rep["markdown"]
    # each clip asks for the next emotion, so every emotion gets asked for; accuracy is kept per request
    assert rep["controls"]["requested"]["emotion"] == list(EMOTIONS)
    for name in generated:
        by = rep["controls"]["emotion_acc_by_request"][name]
        assert set(by) == set(EMOTIONS[:2]) and all(v in (0.0, 1.0) for v in by.values()), (name, by)
        assert rep["controls"]["rows"][name]["emotion_acc"] == pytest.approx(np.mean(list(by.values())))
    # the ceiling row is measured against what the other clip truly shows: the world's own record of it
    from vasa_lite.training import load_split

    bank, clips = clip_bank("smoke", "test", progress=False), load_split("smoke", "test", limit=2)
    for i, clip in enumerate(clips):
        want = true_controls(bank, i)
        assert want["emotion"] == clip["meta"]["emotion"]
        assert abs(want["distance"] - clip["meta"]["distance"]) < 1e-4
        assert np.abs(np.subtract(want["gaze"], clip["meta"]["gaze"])).max() < 5.0    # saccades around the main gaze
    for name, row in rep["controls"]["rows"].items():
        assert set(row) == {"gaze_error_deg", "latent_gaze_error_deg", "distance_error_pct", "emotion_acc"}
        assert all(finite(v) for v in row.values()), (name, row)
    assert set(rep["diversity"]) == set(generated) and rep["diversity"]["regression"] == 0.0
    assert all(finite(v) for v in rep["diversity"].values())
    # the seam test runs on the 60 s of speech, over several seeds
    assert rep["seams"]["frames"] == round(SEAM_SECONDS * FPS)
    assert rep["seams"]["windows"] == math.ceil(rep["seams"]["frames"] / get_preset("smoke").motion.window)
    for row in rep["seams"]["rows"].values():
        assert all(finite(row[k]) for k in ("jerk_boundary", "jerk_inside", "ratio"))
        assert len(row["ratio_per_seed"]) == SEAM_SEEDS and all(finite(r) for r in row["ratio_per_seed"])
    assert rep["clips"] == 2 and "| real |" in rep["markdown"]
    assert json.loads((tmp_path / "motion.json").read_text())["rows"] == rep["rows"]
    assert (tmp_path / "motion.md").read_text().startswith("| motion |")


# ------------------------------------------------------------------------------------------- the panel (05)


def test_generation_panel_regenerates_from_widget_values_headlessly(speech, render, one_thread):
    """Notebook 05's widget: setting a slider's value (what a drag does) regenerates the clip through
    GenerationPanel.set, and the result is what `animate` makes with the same settings."""
    pytest.importorskip("ipywidgets")
    from vasa_lite.motion.panel import GenerationPanel

    panel = GenerationPanel(render, speech, preset="smoke", seed=0, steps=3)
    t = math.ceil(len(speech) / 640)
    assert panel.frames.shape == (t, SIZE, SIZE, 3) and panel.renders == 0
    box = panel.widget()
    assert set(box.sliders) == set(GenerationPanel.CONTROLS) and panel.renders == 0   # building it renders nothing
    before_video, before_motion = box.video.value, panel.motion.clone()
    assert "<video controls" in before_video and "muted" not in before_video           # plays with sound

    box.sliders["gaze_yaw"].value = 20.0
    assert panel.values["gaze_yaw"] == 20.0 and panel.renders == 1
    assert box.video.value != before_video and not torch.allclose(panel.motion, before_motion)
    box.sliders["emotion"].value = "happy"
    box.sliders["guidance_audio"].value = 1.5
    box.sliders["distance"].value = 1.1
    assert panel.renders == 4 and panel.values["emotion"] == "happy" and "happy" in box.status.value

    same = vasa_lite.animate(render, speech, preset="smoke", seed=0, sampler="ddim", steps=3, gaze=(20, 0),
                             distance=1.1, emotion="happy", guidance={"audio": 1.5, "gaze": 1.0, "emotion": 0.0})
    assert torch.allclose(panel.motion, same.motion) and np.array_equal(panel.frames, same.frames)

    box.sliders["seed"].value = 1                                            # another sample of the same settings
    assert panel.renders == 5 and not torch.allclose(panel.motion, same.motion)
    box.reset.click()
    assert panel.values == panel.initial and box.sliders["gaze_yaw"].value == 0.0
    assert torch.allclose(panel.motion, before_motion)                       # back to the first clip

    with pytest.raises(InputError, match="unknown control"):
        panel.set(lips=1.0)
    with pytest.raises(InputError, match=r"\[-30, 30\]"):
        panel.set(gaze_yaw=45.0)
    with pytest.raises(InputError, match="unknown emotion"):
        panel.set(emotion="bored")
    assert panel.values == panel.initial                                     # a bad value changes nothing
