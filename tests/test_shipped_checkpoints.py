"""The shipped `cpu` checkpoints still do what their own metadata says they do.

Each checkpoint in data/checkpoints/<component>_cpu.pt records, in meta["metrics"], the figures measured when it was
trained (val_head_acc, val_verification_auc, val_yaw_mae, val_loss_t0.5, ...). A code change that breaks a model
without touching its file (a wrong input normalisation, a renamed buffer that now stays at its default, a changed
layer, a broken loader or feature pipeline) leaves that file untouched, so the number in it no longer holds. Each
test below loads a shipped checkpoint with the package's own loader, measures the same figure with the package's
own evaluation function on a small fixed sample (a few seconds on one CPU thread), and compares it with the
recorded one.

Tolerances. Where the recorded figure was measured on a set that costs under two seconds (the audio, attribute
and identity val sets, the CAPP val clips, the motion validation windows with the same seed), the test measures
on that very set, so today the numbers agree to float rounding. The tolerances are nevertheless wide enough to
hold on a *different* sample of the same size (measured on other subsets when they were chosen: see each test),
so that a benign change of how the sample is drawn or rendered does not fail CI, and tight enough that a model
with random weights or a wrong normalisation fails by a wide margin (checked by perturbing the loaded weights
in a scratch script when the tolerances were chosen). Where the recorded figure comes from a larger test
evaluation (identity on test actors, SyncNet), a fixed small subset is measured against the whole-set figure.

Not covered: FVD-lite (its figures are biased on small samples).
A missing checkpoint skips its test; the motion tests build the val motion sequences when they are not cached
(about 40 s), and skip if the motion model was trained on other latent/audio/attribute checkpoints.
"""
from __future__ import annotations

import numpy as np
import pytest

from vasa_lite.checkpoints import checkpoint_path, load_checkpoint

PRESET = "cpu"

pytestmark = pytest.mark.usefixtures("one_thread")


def _shipped(component: str) -> bool:
    return checkpoint_path(component, PRESET).exists()


def _needs(component: str):
    return pytest.mark.skipif(not _shipped(component), reason=f"no shipped {component}_{PRESET}.pt")


def recorded(component: str) -> dict:
    """meta["metrics"] of a shipped checkpoint."""
    return load_checkpoint(checkpoint_path(component, PRESET), component=component)[1]["metrics"]


def check(component: str, rows) -> None:
    """rows: (metric, measured, recorded, limit, sense) with sense ">=" (measured >= limit) or "<=".
    Asserts them all at once, with a table of every row in the message."""
    lines, bad = [], []
    for name, got, rec, limit, sense in rows:
        ok = bool(np.isfinite(got)) and (got >= limit if sense == ">=" else got <= limit)
        lines.append(f"  {name:28s} measured {got:9.4f}  recorded {rec:9.4f}  needs {sense} {limit:.4f}"
                     f"{'' if ok else '   <-- FAILS'}")
        if not ok:
            bad.append(name)
    table = "\n".join(lines)
    print(f"\n{component}:\n{table}")
    assert not bad, f"{component}_{PRESET}.pt no longer matches its recorded metrics ({', '.join(bad)}):\n{table}"


# ----------------------------------------------------------------------------------------- measurements
# Module-level so that the same code can be pointed at a deliberately broken model when choosing tolerances.


@pytest.fixture(scope="module")
def val_clips():
    from vasa_lite.training import load_split

    return load_split(PRESET, "val")           # 40 clips, 3757 frames: ~0.1 s from the cache, ~1 s without


def measure_audio(model, clips) -> dict:
    from vasa_lite.audio import head_accuracy

    return {"val_head_acc": head_accuracy(model, clips)}


def audio_rows(got: dict, rec: dict) -> list:
    # 8-clip subsets of the val set spread 0.921 .. 0.939 around the 40-clip 0.929; random weights give 0.03,
    # unnormalised log-mel (mel_mean / mel_std lost) 0.50
    r = rec["val_head_acc"]
    return [("val_head_acc", got["val_head_acc"], r, r - 0.05, ">=")]


def measure_identity(model, bank) -> dict:
    from vasa_lite.instruments.identity import verification

    return verification(model, bank)


def identity_bank_subset(bank: dict, n_actors: int) -> dict:
    """The frames of the first n_actors actors of a pose bank (in bank order)."""
    keep = np.unique(np.asarray(bank["actor"]))[:n_actors]
    idx = np.nonzero(np.isin(np.asarray(bank["actor"]), keep))[0]
    return {"frames": bank["frames"][idx], "actor": np.asarray(bank["actor"])[idx]}


def identity_rows(got_val: dict, got_test: dict, rec: dict) -> list:
    # AUC on 10-actor subsets of the test bank: 0.992 .. 0.999 against 0.997 on all 40 actors, same - different
    # similarity 0.83 .. 0.95 against 0.89; random weights or reset BatchNorm statistics: AUC ~0.58, gap ~0
    rv, rt = rec["val_verification_auc"], rec["test.test_verification.auc"]
    return [("val_verification_auc", got_val["auc"], rv, rv - 0.02, ">="),
            ("test_auc (10 actors)", got_test["auc"], rt, rt - 0.02, ">="),
            ("test_same_minus_different", got_test["same_mean"] - got_test["different_mean"],
             rec["test.test_verification.same_mean"] - rec["test.test_verification.different_mean"],
             0.7 * (rec["test.test_verification.same_mean"] - rec["test.test_verification.different_mean"]), ">=")]


ATTRIBUTE_MAES = ("yaw_mae", "pitch_mae", "roll_mae", "gaze_mae", "distance_mae", "jaw_mae", "track_px_error")


def measure_attributes(model, bank) -> dict:
    from vasa_lite.instruments.attributes import attribute_errors

    return attribute_errors(model, bank)


def attribute_rows(got: dict, rec: dict) -> list:
    # 80-frame subsets of the 640-frame test bank: errors up to 1.41x the whole bank's (distance; yaw 1.14x,
    # gaze 1.33x, track 1.28x), jaw correlation down to -0.08, frame emotion accuracy down to -0.055.
    # val_yaw_mae and val_pitch_mae measure lower today than recorded (1.81 vs 2.48, 1.64 vs 1.74 degrees): the
    # upper bound is what matters here.
    rows = [(f"val_{k}", got[k], rec[f"val_{k}"], 1.6 * rec[f"val_{k}"], "<=") for k in ATTRIBUTE_MAES]
    rows.append(("val_jaw_corr", got["jaw_corr"], rec["val_jaw_corr"], rec["val_jaw_corr"] - 0.15, ">="))
    rows.append(("val_emotion_frame_acc", got["emotion_frame_acc"], rec["val_emotion_frame_acc"],
                 rec["val_emotion_frame_acc"] - 0.12, ">="))
    return rows


def motion_val_data(component: str = "motion"):
    """The val motion sequences made with the checkpoints a motion model (component "motion" or "regression") was
    trained on (from the cache, or built once), or a skip when the shipped latent, audio or attribute checkpoints
    are not those it was trained on."""
    from vasa_lite.config import get_preset
    from vasa_lite.motion.data import motion_data, source_identity

    p = get_preset(PRESET)
    _, meta = load_checkpoint(checkpoint_path(component, PRESET), component=component)
    trained = (meta.get("extra") or {}).get("sources") or {}
    now = source_identity(p, split="val")
    stale = [k for k in ("latent", "audio", "attributes") if trained.get(k) != now[k]]
    if stale:
        pytest.skip(f"{component}_{PRESET}.pt was trained on other {', '.join(stale)} checkpoints "
                    "than the shipped ones")
    # a cache hit, or built once (about 40 s on two threads from a fresh clone) and cached for later runs
    return motion_data(p, "val", progress=False)


def measure_motion(model, data) -> dict:
    from vasa_lite.motion.train import validation_loss

    return validation_loss(model, data, n=64, seed=0)   # the windows, noise and seed the training run used


def motion_rows(got: dict, rec: dict) -> list:
    # 64 windows drawn with seeds 0..7: t=0.5 loss 0.086 .. 0.096 (at most 1.05x seed 0's), mean 0.130 .. 0.147
    # (1.06x). Random weights give ~1.2, lost normalisation stats ~1.0, a zeroed audio input 1.39x on the mean.
    return [(k, got[k], rec[k], 1.3 * rec[k], "<=") for k in ("val_loss_t0.5", "val_loss")]


def regression_rows(got: dict, rec: dict) -> list:
    # the regression baseline's loss spreads more over windows: 0.373 .. 0.451 for seeds 0..7 (at most 1.16x seed 0's)
    return [("val_loss", got["val_loss"], rec["val_loss"], 1.3 * rec["val_loss"], "<=")]


def measure_capp(model, clips) -> dict:
    from vasa_lite.instruments.capp import capp_shift_table

    return capp_shift_table(model, clips)


def capp_rows(got: dict, rec: dict) -> list:
    # 26-clip samples of the val and test clips: shift-0 score 0.262 .. 0.289 (val 0.271), shift 0 - shift 4
    # 0.41 .. 0.47 (0.446), retrieval among the 26 windows 0.46 .. 0.58 (0.539); random weights: 0.08
    s0, s4 = got["score"][0], got["score"][4]
    r0, r4 = rec["val_score_shift0"], rec["val_score_shift4"]
    return [("val_score_shift0", s0, r0, r0 - 0.1, ">="),
            ("val_score_shift0 - shift4", s0 - s4, r0 - r4, 0.6 * (r0 - r4), ">="),
            ("val_retrieval_top1", got["retrieval_top1_audio_to_pose"], rec["val_retrieval_top1"],
             rec["val_retrieval_top1"] - 0.2, ">=")]


SYNC_CLIPS = 6          # the first 6 test clips: 9 two-second windows, x 7 known audio delays


def sync_subset(n_clips: int = SYNC_CLIPS):
    """(clip bank dict, audio list, ground-truth face tracks) of the first n_clips test clips. Uses the full test
    clip bank when it is cached; otherwise renders (once, then cached) just these clips."""
    from vasa_lite.instruments.banks import bank_clip_audio, cache_dir, clip_bank

    full = (cache_dir(PRESET) / "clips_test.npz").exists()
    bank = clip_bank(PRESET, "test", limit=None if full else n_clips, progress=False)
    off = np.asarray(bank["offsets"])[: n_clips + 1]
    sub = {"offsets": off - off[0], "frames": bank["frames"][off[0]:off[-1]]}
    tracks = [np.asarray(bank["track"][off[c]:off[c + 1]]) for c in range(n_clips)]
    return sub, bank_clip_audio(PRESET, "test", limit=n_clips), tracks


def measure_syncnet(model, sub) -> dict:
    from vasa_lite.instruments.syncnet import evaluate_sync

    clips, audio, tracks = sub
    return evaluate_sync(model, clips, audio, tracks, seed=0)


def syncnet_rows(got: dict, rec: dict) -> list:
    # 6-clip subsets (ground-truth track): offsets all within 1 frame, AUC 1.0, Sc 1.51 .. 1.74, Sd 0.59 .. 0.65
    return [("offset_within_1_frame", got["offset_within_1_frame"], rec["test.offset_within_1_frame"],
             rec["test.offset_within_1_frame"] - 0.1, ">="),
            ("sc_auc_sync_vs_mismatched", got["sc_auc_sync_vs_mismatched"], rec["test.sc_auc_sync_vs_mismatched"],
             rec["test.sc_auc_sync_vs_mismatched"] - 0.05, ">="),
            ("Sc_sync_mean", got["Sc_sync_mean"], rec["test.Sc_sync_mean"], 0.75 * rec["test.Sc_sync_mean"], ">="),
            ("Sd_sync_mean", got["Sd_sync_mean"], rec["test.Sd_sync_mean"], 1.25 * rec["test.Sd_sync_mean"], "<=")]


# ------------------------------------------------------------------------------------------------ tests


@_needs("audio")
def test_audio_encoder_viseme_accuracy(val_clips):
    """The viseme head on the 40 val clips (3757 frames, 0.4 s), as the training run measured val_head_acc."""
    from vasa_lite.audio import load_audio_encoder

    check("audio", audio_rows(measure_audio(load_audio_encoder(PRESET), val_clips), recorded("audio")))


@_needs("identity")
def test_identity_verification():
    """Same-vs-different-actor AUC on the val bank (20 actors x 4 frames in other actors' scenes, as recorded)
    and on the first 10 of the 40 test actors (16 frames each) against the whole test figure."""
    from vasa_lite.instruments.banks import pose_bank
    from vasa_lite.instruments.identity import load_identity

    model = load_identity(PRESET)
    size = model.cfg.size
    val = pose_bank(PRESET, "val", per_actor=4, size=size, swap_scene=True, progress=False)
    test = identity_bank_subset(pose_bank(PRESET, "test", size=size, swap_scene=True, progress=False), 10)
    check("identity", identity_rows(measure_identity(model, val), measure_identity(model, test),
                                    recorded("identity")))


@_needs("attributes")
def test_attribute_estimator_errors():
    """Pose, gaze, distance, jaw, emotion and face-track errors on the val bank (20 actors x 4 random renders)."""
    from vasa_lite.instruments.attributes import load_attributes
    from vasa_lite.instruments.banks import pose_bank

    bank = pose_bank(PRESET, "val", per_actor=4, progress=False)
    check("attributes", attribute_rows(measure_attributes(load_attributes(PRESET), bank), recorded("attributes")))


@_needs("motion")
def test_motion_diffusion_validation_loss():
    """x0 loss at noise levels 0.1 / 0.5 / 0.9 on 64 fixed val windows (seed 0, as the training run)."""
    from vasa_lite.motion.train import load_motion

    data = motion_val_data()
    check("motion", motion_rows(measure_motion(load_motion(PRESET), data), recorded("motion")))


@_needs("regression")
def test_regression_baseline_validation_loss():
    """The regression baseline's loss on the same 64 val windows (seed 0, as its training run)."""
    from vasa_lite.motion.train import load_motion

    data = motion_val_data("regression")
    check("regression", regression_rows(measure_motion(load_motion(PRESET, baseline="regression"), data),
                                        recorded("regression")))


@_needs("capp")
def test_capp_shift_table(val_clips):
    """CAPP on the val clips long enough for a shifted 3 s window (26): aligned audio-pose pairs score high,
    pairs 4 frames apart low, and audio retrieves its own pose window."""
    from vasa_lite.instruments.capp import load_capp

    check("capp", capp_rows(measure_capp(load_capp(PRESET), val_clips), recorded("capp")))


@_needs("syncnet")
def test_syncnet_finds_known_delays():
    """Known audio delays (-10 .. +10 frames) on 2 s windows of the first test clips, lower face cropped along the
    ground-truth track (the attribute estimator's tracker is tested above): the offset is found and in-sync
    windows score above mismatched ones."""
    from vasa_lite.instruments.syncnet import load_syncnet

    check("syncnet", syncnet_rows(measure_syncnet(load_syncnet(PRESET), sync_subset()), recorded("syncnet")))


@_needs("latent")
@_needs("attributes")
def test_latent_reconstructs_and_shows_the_driving_jaw():
    """Self reconstruction on the first 64 test frames, and expression transfer (does a reenacted frame show the
    driver's jaw?) on 2 drivers per test actor, against the figures of the whole test evaluation."""
    import torch

    from vasa_lite.instruments.attributes import load_attributes
    from vasa_lite.instruments.banks import bank_batch
    from vasa_lite.latent import losses as L
    from vasa_lite.latent.evaluate import expression_transfer
    from vasa_lite.latent.model import load_latent
    from vasa_lite.latent.train import latent_bank

    rec = recorded("latent")
    model = load_latent(PRESET)
    test = latent_bank(PRESET, "test", progress=False)
    with torch.no_grad():
        x = bank_batch(test["frames"], np.arange(64))
        psnr = float(L.psnr(model.reconstruct(x).clamp(0, 1), x))
        et = expression_transfer(model, test, load_attributes(PRESET), per_actor=2)
    check("latent", [
        # 64-frame blocks of the test bank measured 25.8 to 29.1 dB around a recorded 27.7 (a previous model); this
        # block reads 29.50 against the shipped model's recorded 30.58 (26.42 against 27.8 before the warp's
        # self-correction)
        ("test.self.psnr_db", psnr, rec["test.self.psnr_db"], rec["test.self.psnr_db"] - 1.5, ">="),
        # 80 pairs instead of 160 gave r 0.58 against 0.66 (the shipped model: 0.65 against 0.73); a decoder that
        # ignores z_dyn gives 0
        ("test.expression_transfer.jaw", et["jaw"]["reenacted_r"], rec["test.expression_transfer.jaw.reenacted_r"],
         rec["test.expression_transfer.jaw.reenacted_r"] - 0.2, ">="),
    ])


@_needs("latent")
@_needs("attributes")
def test_latent_expression_sliders_move_what_they_name():
    """The studio's still-portrait editor: the jaw, smile and brow sliders of the shipped latent model move the
    rendered face the way the attribute estimator reads it. Measured on the default actor when the directions were
    fitted: jaw 0 -> 1 read 0.14 -> 0.50, smile -1 -> 1 read -0.21 -> 0.58, brow 0 -> 1 read 0.02 -> 0.82; directions
    with no effect give a change near 0."""
    import torch

    from vasa_lite.instruments.attributes import estimate, load_attributes
    from vasa_lite.latent.controls import PortraitEditor
    from vasa_lite.latent.model import load_latent
    from vasa_lite.motion.animate import portrait_frame

    att = load_attributes(PRESET)
    frame = torch.from_numpy(portrait_frame("actor", 128)).permute(2, 0, 1).float() / 255
    ed = PortraitEditor(load_latent(PRESET), frame)

    def read(name, value):
        ed.reset()
        ed.set(**{name: value})
        return float(np.asarray(estimate(ed.frame[None], att)[name]).mean())

    assert read("jaw", 1.0) - read("jaw", 0.0) > 0.3
    assert read("smile", 1.0) - read("smile", -1.0) > 0.3
    assert read("brow_raise", 1.0) - read("brow_raise", 0.0) > 0.4
