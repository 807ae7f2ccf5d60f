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
import torch

from vasa_lite.checkpoints import load_checkpoint
from vasa_lite.paths import CHECKPOINT_DIR
from vasa_lite.config import get_preset
from vasa_lite.motion.data import encoder_identity
from vasa_lite.pipeline import ablation_stages as stages_of_ablations
from vasa_lite.pipeline import generator_steps
from vasa_lite.pipeline import stage_done
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
    assert names.index("identity") < names.index("latent_blind") < names.index("latent_dynamics") \
        < names.index("latent_base") < names.index("latent_refiner") < names.index("latent_decoder") \
        < names.index("latent") < names.index("motion")
    assert names[-1] == "regression" and set(FIRST) <= set(names)


def test_the_latent_space_first_trains_with_its_decoder_blind_to_z_dyn():
    st = {s["name"]: s for s in stages("cpu")}
    assert st["latent_blind"]["kwargs"]["overrides"] == {"dyn_in_decoder": False}
    # then z_dyn joins the decoder, starting from the blind model, and the refiner starts from that
    # between them, a new dynamics encoder learns the read-out on the crops the blind model's pose encoder places
    dyn = st["latent_dynamics"]
    assert dyn["train"].endswith(":train_dynamics") and dyn["kwargs"]["init"] == st["latent_blind"]["checkpoint"]
    assert dyn["after"] == ("latent_blind",)
    base, ref = st["latent_base"]["kwargs"], st["latent_refiner"]["kwargs"]
    assert base["overrides"]["dyn_in_decoder"] is True and base["init"] == dyn["checkpoint"]
    # z_dyn stays that stage's code: its encoder and read-out are frozen, and so is the pose encoder placing its crops
    assert set(base["freeze"]) == {"dynamics", "expression_head", "pose"}
    assert st["latent_base"]["after"] == ("latent_dynamics",)
    assert ref["init"] == st["latent_base"]["checkpoint"] and "dynamics" in ref["freeze"]
    # then the decoder trains on from the refiner stage with the base stage's recipe, the motion encoders frozen
    dec = st["latent_decoder"]
    assert dec["kwargs"]["init"] == st["latent_refiner"]["checkpoint"] and dec["after"] == ("latent_refiner",)
    assert dec["kwargs"]["overrides"] == base["overrides"] and set(dec["kwargs"]["freeze"]) == set(base["freeze"])
    # last, the same recipe with the pixel warp's self-correction on (a decode setting the checkpoint records), and
    # everything that makes the warp frozen: only the renderer and the refiner learn
    last = st["latent"]
    assert last["kwargs"]["init"] == dec["checkpoint"] and last["after"] == ("latent_decoder",)
    assert last["kwargs"]["overrides"] == {**base["overrides"], "self_flow": 3}
    from vasa_lite.latent.model import FaceLatentModel

    parts = {n for n, _ in FaceLatentModel(get_preset("smoke").latent, 64).named_children()}
    assert parts - set(last["kwargs"]["freeze"]) == {"renderer", "refiner"}
    assert all("self_flow" not in st[n]["kwargs"].get("overrides", {})
               for n in ("latent_blind", "latent_base", "latent_refiner", "latent_decoder"))


@pytest.mark.skipif(not all((CHECKPOINT_DIR / f"{c}_smoke.pt").exists() for c in FIRST),
                    reason="shipped smoke checkpoints missing")
def test_train_all_trains_what_is_missing_then_resumes(tmp_path):
    for c in FIRST:
        shutil.copy(CHECKPOINT_DIR / f"{c}_smoke.pt", tmp_path / f"{c}_smoke.pt")
    first = _train_all(tmp_path)
    assert all(first[c]["status"] == "already complete" for c in FIRST)
    trained = ("latent_blind", "latent_dynamics", "latent_base", "latent_refiner", "latent_decoder", "latent", "motion",
               "regression")
    assert all(first[c]["status"] == "trained" for c in trained)
    for c in trained:
        assert (tmp_path / f"{c}_smoke.pt").exists()
    assert load_checkpoint(tmp_path / "latent_blind_smoke.pt")[1]["extra"]["config"]["dyn_in_decoder"] is False
    # the decoder stage keeps the motion encoders the refiner stage left, and trains the renderer on
    refined, final = (load_checkpoint(tmp_path / f"{c}_smoke.pt")[0] for c in ("latent_refiner", "latent"))
    assert encoder_identity(tmp_path / "latent_smoke.pt") == encoder_identity(tmp_path / "latent_refiner_smoke.pt")
    assert any(not torch.equal(refined[k], final[k]) for k in final if k.startswith("renderer."))
    assert load_checkpoint(tmp_path / "latent_smoke.pt")[1]["extra"]["config"]["self_flow"] == 3   # corrects its warp
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
    # a checkpoint of the right length but another recipe (here z_dyn in the decoder) is not taken as the stage's
    blind = {s["name"]: s for s in stages("smoke")}["latent_blind"]
    blind = {**blind, "checkpoint": tmp_path / "latent_blind_smoke.pt"}
    assert stage_done(blind, None)
    assert not stage_done({**blind, "kwargs": {**blind["kwargs"], "overrides": {"dyn_in_decoder": True}}}, None)
    # the read-out stage learns from a bank of its own size: one made from another size is trained again
    readout = {s["name"]: s for s in stages("smoke")}["latent_dynamics"]
    readout = {**readout, "checkpoint": tmp_path / "latent_dynamics_smoke.pt"}
    own = load_checkpoint(readout["checkpoint"])[1]["extra"]["per_actor"]
    assert stage_done({**readout, "kwargs": {**readout["kwargs"], "per_actor": own}}, None)
    assert not stage_done({**readout, "kwargs": {**readout["kwargs"], "per_actor": own + 1}}, None)


ABLATIONS = ("motion_mel", "latent_notransfer_base", "latent_notransfer", "motion_notransfer",
             "latent_control_base", "latent_control", "motion_control")


def test_ablation_stages_use_the_two_stage_latent_recipe_without_the_transfer_loss():
    abl = {s["name"]: s for s in stages_of_ablations("smoke")}
    main = {s["name"]: s for s in stages("smoke")}
    assert list(abl) == list(ABLATIONS)
    # no blind first stage: the base trains from scratch with z_dyn in the decoder
    assert abl["latent_notransfer_base"]["kwargs"]["overrides"] == {"transfer_weight": 0.0}
    assert "init" not in abl["latent_notransfer_base"]["kwargs"]
    # the refiner stage is train all's, from the ablation's own base
    ref, ref_main = abl["latent_notransfer"]["kwargs"], main["latent_refiner"]["kwargs"]
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


@pytest.mark.skipif(not all((CHECKPOINT_DIR / f"{c}_smoke.pt").exists() for c in ("motion_mel", "latent")),
                    reason="shipped smoke checkpoints missing")
def test_a_motion_generator_is_stale_once_its_latent_encoders_change(tmp_path):
    from vasa_lite.checkpoints import save_checkpoint

    # the mel ablation learns from the shipped latent, which no stage of the ablation list trains
    mel = {s["name"]: s for s in stages_of_ablations("smoke")}["motion_mel"]
    assert stage_done(mel, None)
    state, meta = load_checkpoint(CHECKPOINT_DIR / "latent_smoke.pt")
    # the same latent with its decoder changed keeps the motion codes, so the generator stays valid
    decoder = next(k for k in state if k.startswith("renderer."))
    moved = save_checkpoint(tmp_path / "decoder.pt", {**state, decoder: state[decoder] + 0.1}, component="latent",
                            preset="smoke", steps=meta["steps"], extra=meta["extra"])
    assert stage_done({**mel, "kwargs": {**mel["kwargs"], "latent": moved}}, None)
    encoder = next(k for k in state if k.startswith("dynamics."))
    moved = save_checkpoint(tmp_path / "encoder.pt", {**state, encoder: state[encoder] + 0.1}, component="latent",
                            preset="smoke", steps=meta["steps"], extra=meta["extra"])
    assert not stage_done({**mel, "kwargs": {**mel["kwargs"], "latent": moved}}, None)


@pytest.mark.skipif(not (CHECKPOINT_DIR / "motion_mel_smoke.pt").exists(), reason="shipped smoke checkpoints missing")
def test_a_motion_generator_of_another_network_than_the_preset_asks_for_is_trained_again(monkeypatch):
    """A generator records its audio projection (audio_context): the shipped one counts as done until the preset
    asks for another network, and a checkpoint made before the setting existed reads as its default, per frame."""
    import copy
    import dataclasses

    from vasa_lite import config
    from vasa_lite.motion.train import recorded_settings

    mel = {s["name"]: s for s in stages_of_ablations("smoke")}["motion_mel"]
    _, meta = load_checkpoint(CHECKPOINT_DIR / "motion_mel_smoke.pt")
    smoke = config.PRESETS["smoke"]
    assert recorded_settings(meta)["audio_context"] == smoke.motion.audio_context and stage_done(mel, None)
    older = copy.deepcopy(meta)
    older["extra"]["config"].pop("audio_context", None)
    assert recorded_settings(older)["audio_context"] == 0
    # an audio-context generator from before the lookahead existed heard none; a per-frame one has none to hear
    older["extra"]["config"].update(audio_context=2)
    older["extra"]["config"].pop("audio_lookahead", None)
    assert recorded_settings(older)["audio_lookahead"] is False
    older["extra"]["config"]["audio_lookahead"] = True
    assert recorded_settings(older)["audio_lookahead"] is True
    assert recorded_settings(meta)["audio_lookahead"] is False          # audio_context 0: the same network either way
    monkeypatch.setitem(config.PRESETS, "smoke",
                        dataclasses.replace(smoke, motion=dataclasses.replace(smoke.motion,
                                                                         audio_context=smoke.motion.audio_context + 2)))
    assert not stage_done(mel, None)
