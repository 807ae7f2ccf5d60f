"""CAPP-lite: pose features, input checks, a tiny model that learns, and the shipped model's shift table."""
import numpy as np
import pytest
import torch

from vasa_lite import InputError
from vasa_lite.cli import main
from vasa_lite.config import get_preset
from vasa_lite.instruments.capp import (CAPP, PAPER_SHIFT_TABLE, capp_score, capp_shift_table, checkpoint_file,
                                        load_capp, pose_features, pose_of, train_capp)
from vasa_lite.training import load_split, read_log


pytestmark = pytest.mark.usefixtures("one_thread")


def test_pose_features_are_angles_and_deltas():
    pose = np.cumsum(np.ones((10, 3), np.float32), axis=0)      # +1 degree per frame on each axis
    f = pose_features(pose)
    assert f.shape == (10, 6)
    np.testing.assert_array_equal(f[:, :3], pose)
    assert f[0, 3:].tolist() == [0, 0, 0] and np.all(f[1:, 3:] == 1)
    clip = load_split("smoke", "test", limit=1)[0]
    assert pose_of(clip).shape == (len(clip["tracks"]), 3)
    assert pose_of({"yaw": [1, 2], "pitch": [0, 0], "roll": [3, 3]}).tolist() == [[1, 0, 3], [2, 0, 3]]


def test_paper_table_is_kept_for_side_by_side_reporting():
    assert PAPER_SHIFT_TABLE == {0: 0.608, 1: 0.462, 2: 0.206, 3: 0.069, 4: 0.082}


def test_capp_score_rejects_bad_input():
    model = CAPP(get_preset("smoke").capp).eval()
    clip = load_split("smoke", "train", limit=1)[0]
    w = model.window
    assert isinstance(capp_score(clip["audio"], clip["tracks"], model=model), float)
    with pytest.raises(InputError, match="frames"):
        capp_score(clip["audio"][: (w - 2) * 640], clip["tracks"][: w - 2], model=model)
    with pytest.raises(InputError, match="pose has"):
        capp_score(clip["audio"], clip["tracks"][:-10], model=model)
    bad = pose_of(clip).copy()
    bad[3, 1] = np.inf
    with pytest.raises(InputError, match="NaN or Inf"):
        capp_score(clip["audio"], bad, model=model)


def test_tiny_capp_learns(tmp_path):
    out = tmp_path / "capp_smoke.pt"
    summary = train_capp("smoke", out=out, progress=False)     # the preset's 100 steps, a few seconds
    log = read_log(out)
    first, last = log[0]["loss"], np.mean([r["loss"] for r in log[-2:]])
    assert last < 0.5 * first, (first, last)
    gap = [r["cos_pos"] - r["cos_neg"] for r in log]          # matched pairs move apart from mismatched ones
    assert gap[-1] > gap[0] + 0.2 and log[-1]["top1"] > log[0]["top1"] + 0.3
    table = capp_shift_table(load_capp("smoke", path=out), load_split("smoke", "test"))
    assert set(table["score"]) == {0, 1, 2, 3, 4} and table["paper"][0] == 0.608
    assert summary["metrics"]["train_seconds"] > 0


def test_train_and_eval_through_the_cli(tmp_path, capsys):
    out = tmp_path / "c.pt"
    assert main(["train", "capp", "--preset", "smoke", "--steps", "3", "--out", str(out), "--quiet",
                 "--threads", "1"]) == 0
    assert main(["eval", "capp", "--preset", "smoke", "--checkpoint", str(out)]) == 0
    assert '"score"' in capsys.readouterr().out


def test_shipped_capp_prefers_aligned_pose():
    if not checkpoint_file("cpu").exists():
        pytest.skip("data/checkpoints/capp_cpu.pt not shipped; train it with `vasa-lite train capp --preset cpu`")
    model = load_capp("cpu")
    clips = load_split("cpu", "test", min_frames=model.window + 8, limit=24)
    table = capp_shift_table(model, clips)
    s = table["score"]
    assert s[0] > s[4] + 0.1 and s[0] > s[2]
    assert table["aligned_wins"][4] > 0.75
    assert table["retrieval_top1_audio_to_pose"] > 3 * table["retrieval_chance"]
    # the public score agrees: the clip's own pose beats the same pose 4 frames late
    c = clips[0]
    pose = pose_of(c)
    late = np.concatenate([pose[:1].repeat(4, 0), pose[:-4]])
    assert capp_score(c["audio"], pose, model=model) > capp_score(c["audio"], late, model=model)
