import numpy as np
import pytest
import torch

from vasa_lite import InputError, get_preset, pick_device, seed_everything
from vasa_lite.config import PRESETS


def test_presets_scale_up():
    s, c, g = (PRESETS[k] for k in ("smoke", "cpu", "gpu"))
    assert s.world.size < c.world.size < g.world.size
    assert s.world.n_train_actors < c.world.n_train_actors < g.world.n_train_actors
    assert len({s.hash(), c.hash(), g.hash()}) == 3


def test_unknown_preset_names_the_accepted_ones():
    with pytest.raises(InputError, match="smoke, cpu, gpu"):
        get_preset("huge")


def test_seed_everything_reproduces_python_numpy_torch():
    import random

    seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(3))
    seed_everything(7)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_pick_device_prefers_explicit_then_available():
    assert pick_device("cpu").type == "cpu"
    assert pick_device().type in {"cuda", "mps", "cpu"}
    if not torch.cuda.is_available():
        assert pick_device().type in {"mps", "cpu"}
