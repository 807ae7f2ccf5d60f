"""`vasa-lite train all`: every stage in order, skipping complete ones, retraining what follows a retrained stage.

Runs in a scratch checkpoint folder (VASA_LITE_CHECKPOINTS) so the shipped checkpoints are never touched. The
audio encoder and instruments are copied in from the shipped smoke set (complete stages), so the run trains the
latent space, the motion generator and the baseline for real, on the smoke preset."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from vasa_lite.paths import CHECKPOINT_DIR
from vasa_lite.config import get_preset
from vasa_lite.pipeline import ablation_stages as stages_of_ablations
from vasa_lite.pipeline import generator_steps
from vasa_lite.pipeline import stages

FIRST = ("audio", "attributes", "identity", "fvd", "syncnet", "capp")


def _train_all(folder, *extra, component="all"):
    env = {**os.environ, "VASA_LITE_CHECKPOINTS": str(folder), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "vasa_lite", "train", component, "--preset", "smoke", "--quiet",
                        "--threads", "1", *extra], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)["stages"]


def test_stages_run_in_dependency_order():
    names = [s["name"] for s in stages("smoke")]
    assert names.index("identity") < names.index("latent_base") < names.index("latent") < names.index("motion")
    assert names[-1] == "regression" and set(FIRST) <= set(names)


@pytest.mark.skipif(not all((CHECKPOINT_DIR / f"{c}_smoke.pt").exists() for c in FIRST),
                    reason="shipped smoke checkpoints missing")
def test_train_all_trains_what_is_missing_then_resumes(tmp_path):
    for c in FIRST:
        shutil.copy(CHECKPOINT_DIR / f"{c}_smoke.pt", tmp_path / f"{c}_smoke.pt")
    first = _train_all(tmp_path)
    assert all(first[c]["status"] == "already complete" for c in FIRST)
    assert all(first[c]["status"] == "trained" for c in ("latent_base", "latent", "motion", "regression"))
    for c in ("latent_base", "latent", "motion", "regression"):
        assert (tmp_path / f"{c}_smoke.pt").exists()
    # the pipeline's product loads and runs from that folder
    env = {**os.environ, "VASA_LITE_CHECKPOINTS": str(tmp_path), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "vasa_lite", "animate", "--preset", "smoke", "--image", "actor",
                        "--text", "Hello.", "--out", str(tmp_path / "a.mp4"), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    # run again: nothing to do
    again = _train_all(tmp_path)
    assert all(v["status"] == "already complete" for v in again.values()), again
    # a lost stage is retrained, and so is every stage that learned from it
    (tmp_path / "motion_smoke.pt").unlink()
    third = _train_all(tmp_path)
    assert third["latent"]["status"] == "already complete"
    assert third["motion"]["status"] == "trained" and third["regression"]["status"] == "trained"


ABLATIONS = ("motion_mel", "latent_notransfer_base", "latent_notransfer", "motion_notransfer",
             "latent_control_base", "latent_control", "motion_control")


def test_ablation_stages_share_train_alls_latent_stages_without_the_transfer_loss():
    abl = {s["name"]: s for s in stages_of_ablations("smoke")}
    main = {s["name"]: s for s in stages("smoke")}
    assert list(abl) == list(ABLATIONS)
    assert abl["latent_notransfer_base"]["kwargs"]["overrides"] == {"transfer_weight": 0.0}
    assert "overrides" not in main["latent_base"]["kwargs"]
    # the refiner stage is train all's, from the ablation's own base
    ref, ref_main = abl["latent_notransfer"]["kwargs"], main["latent"]["kwargs"]
    assert ref["init"] == abl["latent_notransfer_base"]["checkpoint"]
    assert {k: v for k, v in ref.items() if k not in ("init", "out")} == \
        {k: v for k, v in ref_main.items() if k not in ("init", "out")}
    assert abl["motion_notransfer"]["kwargs"]["latent"] == abl["latent_notransfer"]["checkpoint"]
    # the control differs from the ablation only in the transfer weight
    assert "overrides" not in abl["latent_control_base"]["kwargs"]
    assert {k: v for k, v in abl["latent_control"]["kwargs"].items() if k not in ("init", "out")} == \
        {k: v for k, v in ref.items() if k not in ("init", "out")}
    assert abl["motion_control"]["kwargs"]["latent"] == abl["latent_control"]["checkpoint"]
    # every generator trains as long as the shipped one
    n = generator_steps(get_preset("smoke"))
    assert n and all(abl[g]["kwargs"]["steps"] == n for g in ("motion_mel", "motion_notransfer", "motion_control"))


@pytest.mark.skipif(not all((CHECKPOINT_DIR / f"{c}_smoke.pt").exists() for c in FIRST + ABLATIONS),
                    reason="shipped smoke checkpoints missing")
def test_train_ablations_skips_complete_stages_and_retrains_a_lost_one(tmp_path):
    for c in FIRST + ("latent", "latent_base") + ABLATIONS:
        if (CHECKPOINT_DIR / f"{c}_smoke.pt").exists():
            shutil.copy(CHECKPOINT_DIR / f"{c}_smoke.pt", tmp_path / f"{c}_smoke.pt")
    done = _train_all(tmp_path, component="ablations")
    assert all(done[c]["status"] == "already complete" for c in ABLATIONS), done
    (tmp_path / "motion_notransfer_smoke.pt").unlink()
    again = _train_all(tmp_path, component="ablations")
    # only the lost stage trains: the control's stages did not learn from it
    assert all(again[c]["status"] == "already complete" for c in ABLATIONS if c != "motion_notransfer"), again
    assert again["motion_notransfer"]["status"] == "trained"
    assert (tmp_path / "motion_notransfer_smoke.pt").exists()
