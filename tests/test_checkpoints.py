import pytest
import torch

from vasa_lite import CheckpointError, __version__
from vasa_lite.checkpoints import load_checkpoint, save_checkpoint


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    net = torch.nn.Linear(4, 3)
    path = save_checkpoint(tmp_path / "m.pt", net.state_dict(), component="toy", preset="smoke", steps=12,
                           metrics={"loss": 0.5})
    state, meta = load_checkpoint(path, component="toy", preset="smoke")
    other = torch.nn.Linear(4, 3)
    other.load_state_dict(state)
    assert torch.equal(other.weight, net.weight)
    assert meta["steps"] == 12 and meta["metrics"]["loss"] == 0.5 and meta["version"] == __version__
    assert meta["preset"] == "smoke" and len(meta["config_hash"]) == 12


def test_missing_checkpoint_says_how_to_make_it(tmp_path):
    with pytest.raises(CheckpointError, match="vasa-lite train toy"):
        load_checkpoint(tmp_path / "nope.pt", component="toy", preset="cpu")


def test_corrupt_checkpoint(tmp_path):
    net = torch.nn.Linear(4, 3)
    path = save_checkpoint(tmp_path / "m.pt", net.state_dict(), component="toy", preset="smoke")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "junk.pt")


def test_mismatched_component_or_preset(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", {"w": torch.zeros(2)}, component="toy", preset="smoke")
    with pytest.raises(CheckpointError, match="component 'toy'"):
        load_checkpoint(path, component="latent")
    with pytest.raises(CheckpointError, match="preset 'smoke'"):
        load_checkpoint(path, preset="cpu")


def test_foreign_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"meta": {}, "state_dict": {}, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")


def test_hash_covers_the_component_and_its_world_only():
    from vasa_lite.checkpoints import component_config, config_hash

    cfg = component_config("cpu", "audio")
    assert set(cfg) == {"audio", "world"}
    assert config_hash(cfg) != config_hash(component_config("smoke", "audio"))
    assert config_hash(component_config("cpu", "capp")) != config_hash(cfg)
