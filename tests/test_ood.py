"""Out of distribution (vasa_lite.ood, notebook 09) on the smoke preset: the cases are what they say they are, every
case runs end to end and is measured, and fine-tuning on one photo keeps the motion encoders."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from vasa_lite.errors import InputError
from vasa_lite.ood import STYLES, cases, held_out_languages, photo_video, stylise, sung

pytestmark = pytest.mark.usefixtures("one_thread")


def _f0(audio, sr=16000):
    """Median fundamental frequency (Hz) of the voiced 40 ms frames, by autocorrelation (50 to 400 Hz)."""
    n, out = 640, []
    for s in range(0, len(audio) - n, n):
        x = audio[s:s + n] - audio[s:s + n].mean()
        if np.sqrt((x ** 2).mean()) < 0.02:
            continue
        ac = np.correlate(x, x, "full")[n - 1:]
        lo, hi = sr // 400, sr // 50
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            out.append(sr / lag)
    return float(np.median(out))


def test_styles_redraw_the_face():
    from vasa_lite.motion.animate import portrait_frame

    frame = portrait_frame("grace_hopper", 128)
    for style in STYLES:
        out = stylise(frame, style)
        assert out.shape == frame.shape and out.dtype == np.uint8
        assert np.abs(out.astype(float) - frame).mean() > 5, style          # visibly redrawn
    sketch = stylise(frame, "sketch").astype(float)
    assert np.abs(sketch[..., 0] - sketch[..., 2]).max() == 0               # pencil: grey
    assert sketch.mean() > frame.mean()                                     # mostly white paper
    with pytest.raises(InputError, match="style"):
        stylise(frame, "watercolour")


def test_singing_follows_the_melody():
    words = "la la la la la la"
    low, high = sung(words, (25,) * 6), sung(words, (75,) * 6)
    assert _f0(high) > 1.2 * _f0(low)


def test_cases_hold_out_mandarin_and_cover_every_kind():
    assert "cmn" in held_out_languages("cpu") and "en" not in held_out_languages("cpu")
    cs = cases("smoke")
    assert {c.kind for c in cs} == {"in distribution", "photo", "artistic", "singing", "language"}
    for c in cs:
        assert c.portrait.shape == (64, 64, 3) and len(c.audio) > 16000
        assert np.sqrt(np.mean(c.audio ** 2)) > 0.01, c.name                # real speech, not silence


@pytest.fixture(scope="module")
def shipped():
    from vasa_lite.checkpoints import checkpoint_path

    missing = [c for c in ("latent", "audio", "motion", "syncnet", "identity", "attributes")
               if not checkpoint_path(c, "smoke").exists()]
    if missing:
        pytest.skip(f"smoke checkpoints missing: {missing}")


def test_cli_eval_ood_measures_every_case_it_runs(shipped, tmp_path):
    out = tmp_path / "ood.json"
    r = subprocess.run([sys.executable, "-m", "vasa_lite", "eval", "ood", "--preset", "smoke", "--limit", "3",
                        "--threads", "1", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert json.loads(out.read_text())["rows"] == rep["rows"] and out.with_suffix(".md").exists()
    assert list(rep["rows"]) == [c.name for c in cases("smoke")[:3]]
    for name, row in rep["rows"].items():
        assert row["frames"] > 25 and np.isfinite(row["Sc"]) and np.isfinite(row["identity"]), name
        assert 0 < row["portrait_psnr_db"] < 60 and row["mouth_std"] >= 0
    assert rep["markdown"].count("\n") == 4                                 # header, rule, 3 rows


def test_finetune_on_one_photo_keeps_the_motion_encoders(shipped, tmp_path):
    from vasa_lite.checkpoints import checkpoint_path, load_checkpoint
    from vasa_lite.motion.data import MOTION_ENCODERS, encoder_identity
    from vasa_lite.ood import finetune_on_photo
    from vasa_lite.real import VideoFolder, load_portrait

    photo = load_portrait("astronaut")
    folder = photo_video(photo, tmp_path / "one", seconds=1.0)
    clip = VideoFolder(folder, size=64, cache_dir=tmp_path / "cache").clip(0)
    assert len(clip["frames"]) == 25
    s = finetune_on_photo(photo, "smoke", steps=3, out=tmp_path / "ft.pt", work=tmp_path / "work")
    new, meta = load_checkpoint(tmp_path / "ft.pt", component="latent")
    old, _ = load_checkpoint(checkpoint_path("latent", "smoke"), component="latent")
    assert meta["steps"] == 3 and s["steps"] == 3
    assert encoder_identity(tmp_path / "ft.pt") == encoder_identity(checkpoint_path("latent", "smoke"))
    moved = [k for k in new if k.split(".")[0] not in MOTION_ENCODERS and not torch.equal(new[k], old[k])]
    assert moved, "fine-tuning changed nothing outside the motion encoders"
    # the warp learns the photo too, so it trains with its self-correction off, and the tuned model decodes so
    assert any(k.startswith("flow.") for k in moved) and meta["extra"]["config"]["self_flow"] == 0
    with pytest.raises(InputError, match="face"):
        photo_video(np.full((200, 200, 3), 120, np.uint8), tmp_path / "none")
