"""The CLI's bad-input contract: one clear line on stderr, exit status 2, never a traceback."""
import subprocess
import sys

import numpy as np
import pytest

from vasa_lite.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "vasa_lite", *args], capture_output=True, text=True, timeout=300)


def assert_clean_error(result, *needles):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_unknown_preset():
    assert_clean_error(run_cli("doctor", "--preset", "nope"), "unknown preset 'nope'", "smoke")


def test_eval_options_refused_where_they_do_nothing(tmp_path):
    assert_clean_error(run_cli("eval", "latent", "--preset", "smoke", "--out", str(tmp_path / "x.json")),
                       "--out works with: eval all, eval ood")
    assert_clean_error(run_cli("eval", "ood", "--preset", "smoke", "--test-clips", "4"), "--test-clips with: eval all")
    assert not (tmp_path / "x.json").exists()


def test_missing_input_file(tmp_path):
    assert_clean_error(run_cli("inspect", str(tmp_path / "missing.png")), "not found")


def test_unreadable_image(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    assert_clean_error(run_cli("inspect", str(bad)), "broken.png")


def test_unreadable_audio(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    assert_clean_error(run_cli("inspect", str(bad)), "broken.wav")


def test_doctor_reports_environment(capsys):
    assert main(["doctor", "--preset", "smoke"]) == 0
    out = capsys.readouterr().out
    assert '"torch"' in out and '"ffmpeg"' in out and "MISSING" not in out


def test_notebooks_check_passes_on_committed_notebooks(capsys):
    assert main(["notebooks", "check"]) == 0
