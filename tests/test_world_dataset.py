import json

import numpy as np
import pytest
import torch

from vasa_lite import InputError
from vasa_lite.cli import main
from vasa_lite.config import get_preset
from vasa_lite.world.dataset import WorldClips, build_world, load_clip
from vasa_lite.world.params import FRAME_FACTOR_NAMES, SAMPLES_PER_FRAME


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    summary = build_world("smoke", root=root, seed=0, progress=False)
    return root, summary


def test_build_makes_every_split_with_disjoint_actors(smoke_root):
    root, summary = smoke_root
    w = get_preset("smoke").world
    actors = {}
    for split, n in (("train", w.n_train_actors), ("val", w.n_val_actors), ("test", w.n_test_actors)):
        index = json.loads((root / f"{split}.json").read_text())["clips"]
        assert len(index) == n * w.clips_per_actor == summary["splits"][split]["clips"]
        actors[split] = {c["actor_seed"] for c in index}
        assert set(c["lang"] for c in index) <= set(w.languages)
    assert not (actors["train"] & actors["val"]) and not (actors["train"] & actors["test"])


def test_clips_hold_aligned_audio_and_ground_truth(smoke_root):
    root, _ = smoke_root
    for f in sorted((root / "train").glob("*.npz")):
        clip = load_clip(f)
        n = clip["meta"]["n_frames"]
        assert clip["tracks"].shape == (n, len(FRAME_FACTOR_NAMES))
        assert clip["audio"].shape == (n * SAMPLES_PER_FRAME,) and np.abs(clip["audio"]).max() > 1000
        assert clip["visemes"].shape == (n,)


def test_build_resumes_and_is_deterministic(smoke_root, tmp_path):
    root, _ = smoke_root
    again = build_world("smoke", root=root, seed=0, progress=False, splits=["train"])
    assert again["splits"]["train"]["built_now"] == 0
    fresh = build_world("smoke", root=tmp_path, seed=0, progress=False, splits=["train"])
    assert fresh["splits"]["train"]["built_now"] > 0
    digests = lambda r: [c["digest"] for c in json.loads((r / "train.json").read_text())["clips"]]  # noqa: E731
    assert digests(root) == digests(tmp_path)
    other = build_world("smoke", root=tmp_path / "other", seed=1, progress=False, splits=["train"])
    assert other["splits"]["train"]["clips"] > 0 and digests(tmp_path / "other") != digests(root)


def test_interrupted_clip_is_rebuilt(smoke_root, tmp_path):
    build_world("smoke", root=tmp_path, seed=0, progress=False, splits=["val"])
    victim = sorted((tmp_path / "val").glob("*.npz"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    again = build_world("smoke", root=tmp_path, seed=0, progress=False, splits=["val"])
    assert again["splits"]["val"]["built_now"] == 1
    load_clip(victim)


def test_dataset_items_render_frames_and_windows(smoke_root):
    root, _ = smoke_root
    ds = WorldClips("smoke", "test", root=root, window=10)
    item = ds[0]
    size = get_preset("smoke").world.size
    assert item["frames"].shape == (10, 3, size, size) and item["frames"].dtype == torch.float32
    assert 0 <= item["frames"].min() and item["frames"].max() <= 1
    assert item["audio"].shape == (10 * SAMPLES_PER_FRAME,)
    assert item["tracks"].shape == (10, len(FRAME_FACTOR_NAMES))
    assert torch.equal(ds[0]["frames"], item["frames"])  # same seed, same window, same bytes
    blind = WorldClips("smoke", "test", root=root, render=False)[0]
    assert "frames" not in blind and blind["tracks"].shape[0] == len(blind["audio"]) // SAMPLES_PER_FRAME


def test_missing_split_and_bad_split_are_clear(tmp_path):
    with pytest.raises(InputError, match="vasa-lite world build"):
        WorldClips("smoke", "train", root=tmp_path)
    with pytest.raises(InputError, match="unknown split"):
        build_world("smoke", root=tmp_path, splits=["holdout"])


def test_cli_world_build_and_languages(tmp_path, capsys):
    assert main(["world", "build", "--preset", "smoke", "--root", str(tmp_path), "--splits", "val"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["splits"]["val"]["clips"] == get_preset("smoke").world.n_val_actors
    assert main(["world", "languages"]) == 0
    assert "en" in capsys.readouterr().out
