"""The paper's table at course scale (vasa_lite.table, `vasa-lite eval all`, notebook 07) on the smoke preset."""
import json
import subprocess
import sys

import numpy as np
import pytest

from vasa_lite.table import COLUMNS, bootstrap


def test_bootstrap_interval_holds_the_mean_and_narrows_with_more_clips():
    rng = np.random.default_rng(0)
    few, many = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 400)
    b_few = bootstrap(few, rng.integers(0, 20, (1000, 20)))
    b_many = bootstrap(many, rng.integers(0, 400, (1000, 400)))
    for b, x in ((b_few, few), (b_many, many)):
        assert b["lo"] < b["mean"] < b["hi"] and b["mean"] == pytest.approx(x.mean(), abs=1e-4)
    assert b_many["hi"] - b_many["lo"] < 0.5 * (b_few["hi"] - b_few["lo"])        # ~ 1 / sqrt(n)
    assert 0.7 < b_many["lo"] < 1.0 < b_many["hi"] < 1.3                            # covers the true mean
    with_gap = np.r_[few[:10], np.nan, few[10:]]
    assert bootstrap(with_gap, rng.integers(0, 21, (500, 21)))["mean"] == pytest.approx(few.mean(), abs=1e-4)
    assert bootstrap([np.nan, np.nan], rng.integers(0, 2, (10, 2))) is None


def test_cli_eval_all_writes_the_table_with_intervals(tmp_path):
    from vasa_lite.checkpoints import checkpoint_path

    need = ["latent", "audio", "motion", "regression", "syncnet", "capp", "identity", "attributes", "fvd",
            "motion_mel", "latent_notransfer", "motion_notransfer", "latent_control", "motion_control"]
    missing = [c for c in need if not checkpoint_path(c, "smoke").exists()]
    if missing:
        pytest.skip(f"smoke checkpoints missing: {missing}")
    out = tmp_path / "table.json"
    r = subprocess.run([sys.executable, "-W", "ignore", "-m", "vasa_lite", "eval", "all", "--preset", "smoke",
                        "--out", str(out), "--threads", "1", "--test-clips", "4"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert json.loads(r.stdout)["rows"] == rep["rows"] and out.with_suffix(".md").exists()
    assert list(rep["rows"]) == ["real", "still head (lip sync only)", "regression", "diffusion, no guidance",
                                 "diffusion, audio guidance only", "diffusion, guidance",
                                 "diffusion, guidance, pose as sampled", "diffusion, 10 steps (DDIM)",
                                 "mel features", "transfer consistency (control)", "no transfer consistency"]
    # 4 test clips, every row: the smoke test split (2 actors, a clip each) grown by the next 2 held-out test actors
    assert rep["clips"] == 4 and rep["splits"] == ["test"] and rep["test_actors"] == 4 and not rep["notes"]
    assert rep["clip_ids"] == [f"test/{i}" for i in range(4)] and "4 test actors" in rep["markdown"]
    for name, row in rep["rows"].items():
        for k, _ in COLUMNS:
            v = row[k]
            assert v is not None and 0 <= v["hi"] - v["lo"], (name, k, v)
            if k != "fvd_lite":          # a set distance on resampled (repeated) clips is biased up: see vasa_lite.table
                assert v["lo"] - 1e-9 <= v["mean"] <= v["hi"] + 1e-9, (name, k, v)
    # a still head barely moves: its ΔP is a small part of the real clips'
    assert rep["rows"]["still head (lip sync only)"]["delta_p"]["mean"] < 0.25 * rep["rows"]["real"]["delta_p"]["mean"]
    assert rep["rows"]["real"]["fvd_lite"]["mean"] == 0.0          # the real clips against themselves
    assert set(rep["directions"]) >= {"guidance raises Sc over no guidance", "still head has ΔP near 0",
                                      "audio guidance alone raises Sc over no guidance",
                                      "transfer consistency raises Sc over its ablation",
                                      "the pose filter raises Sc over the pose as sampled"}
    assert rep["markdown"].count("\n| ") == 11


def test_the_no_transfer_generator_loads_against_its_own_latent_without_a_mismatch_warning():
    import warnings

    from vasa_lite.config import get_preset
    from vasa_lite.table import CONTROL, NO_TRANSFER, _load_ablations

    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = _load_ablations(get_preset("smoke"), "cpu", notes)
    assert NO_TRANSFER in rows and CONTROL in rows, notes
    # and the same generator against the preset's own latent is flagged
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.motion.train import load_motion

    with pytest.warns(UserWarning, match="another latent"):
        load_motion("smoke", path=checkpoint_path("motion_notransfer", "smoke"), device="cpu")



def test_a_held_out_split_grows_by_the_next_actors_and_keeps_its_own_clips():
    from vasa_lite.errors import InputError
    from vasa_lite.training import load_split
    from vasa_lite.world.actor import SPLITS

    own, grown = load_split("smoke", "test"), load_split("smoke", "test", actors=4)
    assert len(own) == 2 and len(grown) == 4                       # smoke: one clip per actor
    for a, b in zip(own, grown):                                   # the preset's clips first, unchanged
        assert a["meta"] == b["meta"] and np.array_equal(a["audio"], b["audio"])
    lo, hi = SPLITS["test"]
    seeds = [c["meta"]["actor_seed"] for c in grown]
    assert seeds == list(range(lo, lo + 4))                        # the next seeds of the test range: held out
    again = load_split("smoke", "test", actors=4)[2:]              # made in memory, the same every time
    assert all(np.array_equal(a["tracks"], b["tracks"]) for a, b in zip(grown[2:], again))
    with pytest.raises(InputError, match="actors"):
        load_split("smoke", "test", actors=0)
