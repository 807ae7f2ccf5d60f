"""The face-attribute estimator: frame checks, a tiny model that learns, ΔP, and the shipped model's accuracy on
fresh renders of test actors it never saw."""
import numpy as np
import pytest
import torch

from vasa_lite import InputError
from vasa_lite.config import get_preset
from vasa_lite.instruments.attributes import (AttributeNet, _targets, checkpoint_file, clip_emotion, delta_p,
                                              delta_p_of, estimate, load_attributes, loss_fn, train_attributes)
from vasa_lite.instruments.banks import as_frames, bank_batch, crop_face, face_track, pose_bank
from vasa_lite.world.actor import actor_seeds, sample_actor
from vasa_lite.world.params import FACTORS
from vasa_lite.world.render import Renderer


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def smoke_bank(tmp_path_factory):
    root = tmp_path_factory.mktemp("instruments")
    return root, pose_bank("smoke", "train", root=root, progress=False)


def test_frames_are_checked():
    ok = as_frames(np.zeros((2, 32, 32, 3), np.uint8))
    assert ok.shape == (2, 3, 32, 32) and ok.dtype == torch.float32
    bad = torch.rand(2, 3, 32, 32)
    bad[1, 0, 3, 3] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        as_frames(bad)
    with pytest.raises(InputError, match="shape"):
        as_frames(torch.rand(3, 32, 32))
    with pytest.raises(InputError, match="values in"):
        as_frames(torch.rand(2, 3, 32, 32) * 3)


def test_pose_bank_labels_match_its_pixels(smoke_bank):
    _, bank = smoke_bank
    n = len(bank["tracks"])
    assert bank["frames"].shape == (n, 3, 64, 64) and bank["frames"].dtype == np.uint8
    # poses are drawn over the whole range, not the narrow range of talking clips
    yaw = bank["tracks"][:, 0]
    assert yaw.min() < -15 and yaw.max() > 15
    # the face track puts the face crop on the face: crops of one frame at its own track vs a wrong one differ
    x = bank_batch(bank["frames"], np.arange(4))
    tr = np.asarray(bank["track"][:4])
    assert np.all(tr[:, 2] > 5) and np.all(np.abs(np.degrees(tr[:, 3])) < 60)
    assert crop_face(x, tr, 32).shape == (4, 3, 32, 32)


def test_tiny_estimator_learns(smoke_bank):
    """A fixed batch of smoke renders: the loss must fall well below its start within a few dozen steps."""
    _, bank = smoke_bank
    torch.manual_seed(0)
    model = AttributeNet(get_preset("smoke").instruments.attributes)
    idx = np.arange(len(bank["tracks"]))[:16]
    x = bank_batch(bank["frames"], idx)
    f, e = _targets(bank, idx)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for step in range(40):
        loss, _ = loss_fn(model, x, f, e, np.asarray(bank["track"][idx]), torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3]), losses


def test_train_command_writes_a_checkpoint(smoke_bank, tmp_path):
    root, _ = smoke_bank
    out = tmp_path / "attributes_smoke.pt"
    summary = train_attributes("smoke", steps=4, out=out, root=root, progress=False, resume=False)
    assert out.exists() and summary["steps"] == 4 and "val_yaw_mae" in summary["metrics"]
    model = load_attributes("smoke", path=out)
    est = estimate(torch.rand(3, 3, 48, 48), model)
    assert est["yaw"].shape == (3,) and est["track"].shape == (3, 4) and est["emotion_probs"].shape == (3, 5)
    assert np.allclose(est["emotion_probs"].sum(1), 1, atol=1e-5)


def test_delta_p_is_the_mean_absolute_frame_difference():
    pose = np.array([[0, 0, 0], [1, 2, 3], [1, 2, 3], [0, 0, 0]], np.float32)
    assert delta_p_of(pose) == pytest.approx(np.mean([1, 2, 3, 0, 0, 0, 1, 2, 3]))
    assert delta_p_of(pose[:1]) == 0.0
    model = AttributeNet(get_preset("smoke").instruments.attributes).eval()
    still = torch.rand(1, 3, 32, 32).repeat(5, 1, 1, 1)
    assert delta_p(still, model) == pytest.approx(0.0, abs=1e-4)      # a frozen video has no motion
    with pytest.raises(InputError, match="at least 2"):
        delta_p(still[:1], model)


def test_clip_emotion_averages_frame_logits():
    logits = np.array([[2.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0], [2.0, 0, 0, 0, 0]])
    out = clip_emotion(logits=logits)
    assert out["emotion"] == "neutral" and sum(out["probs"].values()) == pytest.approx(1, abs=1e-3)


@pytest.mark.skipif(not checkpoint_file("cpu").exists(), reason="no shipped attributes_cpu.pt")
def test_shipped_estimator_reads_pose_of_unseen_actors():
    """Fresh random renders of test actors (seeds the evaluation bank does not use): yaw within a few degrees."""
    rng = np.random.default_rng(1234)
    n = 12
    actors = [sample_actor(s) for s in rng.choice(actor_seeds("test", 40), n)]
    tracks = {f.name: rng.uniform(f.low, f.high, n).astype(np.float32) for f in FACTORS.values()}
    for k in ("jaw", "lip_close", "smile", "brow_raise", "brow_furrow", "blink", "squint"):
        tracks[k] = rng.uniform(0, 0.4, n).astype(np.float32)
    tracks["yaw"] = rng.uniform(-30, 30, n).astype(np.float32)
    frames = Renderer(128).render(actors, tracks)
    est = estimate(frames, load_attributes("cpu"))
    yaw_mae = np.abs(est["yaw"] - tracks["yaw"]).mean()
    assert yaw_mae < 4.0, yaw_mae
    truth = face_track(actors, tracks, 128)
    assert np.linalg.norm(est["track"][:, :2] - truth[:, :2], axis=1).mean() < 3.0   # pixels at 128 px
