"""SyncNet-lite: Sc/Sd exactly as SyncNet defines them, a tiny model that learns, input checks, and the shipped
model finding a known audio delay on a test clip."""
import numpy as np
import pytest
import torch

from vasa_lite import InputError
from vasa_lite.audio import MEL_PER_FRAME
from vasa_lite.config import get_preset
from vasa_lite.instruments.banks import bank_batch, clip_bank
from vasa_lite.instruments.syncnet import (SyncNet, _jitter_crops, _speaking_starts, checkpoint_file, load_syncnet,
                                           pair_loss, scores_from_embeddings, smooth_track, sync_scores,
                                           train_syncnet)
from vasa_lite.training import load_split
from vasa_lite.world.actor import sample_actor
from vasa_lite.world.params import FRAME_FACTOR_NAMES, SAMPLES_PER_FRAME
from vasa_lite.world.render import Renderer


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("instruments")
    return root, clip_bank("smoke", "train", root=root, progress=False), load_split("smoke", "train")


def test_sc_sd_offset_follow_syncnet_definitions():
    """Video embeddings equal to the audio embeddings 3 frames later: the mean-distance curve dips to 0 at +3."""
    torch.manual_seed(0)
    n, mo = 20, 5
    a = torch.randn(n + 2 * mo, 8)
    v = a[mo + 3: mo + 3 + n].clone()
    r = scores_from_embeddings(v, a, mo)
    curve = np.array(r["curve"])
    assert r["offsets"] == list(range(-mo, mo + 1)) and len(curve) == 2 * mo + 1
    assert r["offset"] == 3 and r["Sd"] == pytest.approx(0.0, abs=1e-4)
    assert r["Sd"] == pytest.approx(curve.min(), abs=1e-4)
    assert r["Sc"] == pytest.approx(np.median(curve) - curve.min(), abs=1e-4)


def test_training_windows_skip_silence():
    vis = np.array([0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0])
    assert _speaking_starts(vis, 5).tolist() == [2, 3, 4, 5, 6]
    assert smooth_track(np.ones((6, 4))).shape == (6, 4)


def test_tiny_syncnet_learns(smoke):
    """One fixed batch of smoke windows with shifted audio: the contrastive + offset loss must fall."""
    _, bank, clips = smoke
    from vasa_lite.audio import log_mel

    cfg = get_preset("smoke").instruments.sync
    torch.manual_seed(0)
    model = SyncNet(cfg)
    k, pad = cfg.frames, cfg.max_offset
    crops, mels, shifts = [], [], []
    gen = torch.Generator().manual_seed(0)
    for i, c in enumerate(clips[:6]):
        starts = _speaking_starts(c["visemes"], k)
        s = int(starts[len(starts) // 2])
        t = len(c["tracks"])
        x = np.zeros((t + 2 * pad) * SAMPLES_PER_FRAME, np.float32)
        x[pad * SAMPLES_PER_FRAME: (pad + t) * SAMPLES_PER_FRAME] = c["audio"][: t * SAMPLES_PER_FRAME]
        mel = log_mel(x)
        sh = [0, 1, -1, 3, -4]
        shifts.append(sh)
        mels.append(np.stack([mel[(s + d + pad) * MEL_PER_FRAME:(s + d + pad + k) * MEL_PER_FRAME] for d in sh]))
        m = bank_batch(bank["mouth"], bank["offsets"][i] + s + np.arange(k))[None]
        crops.append(_jitter_crops(m, (cfg.crop_h, cfg.crop_w), gen)[0])
    crops, mels, shifts = torch.stack(crops), torch.from_numpy(np.stack(mels)), torch.tensor(shifts)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    losses = []
    for _ in range(40):
        loss, stats = pair_loss(model, crops, mels, shifts)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3]), losses
    assert float(stats["d_pos"]) < float(stats["d_other"])


def test_train_command_writes_a_checkpoint(smoke, tmp_path):
    root, _, _ = smoke
    out = tmp_path / "syncnet_smoke.pt"
    summary = train_syncnet("smoke", steps=3, out=out, root=root, progress=False, resume=False)
    assert out.exists() and summary["steps"] == 3
    model = load_syncnet("smoke", path=out)
    assert not any(p.requires_grad for p in model.parameters())          # an instrument is frozen


def test_sync_scores_checks_its_inputs(smoke, tmp_path):
    model = SyncNet(get_preset("smoke").instruments.sync).eval()
    frames = torch.rand(12, 3, 32, 32)
    track = np.tile([16.0, 20.0, 8.0, 0.0], (12, 1))
    r = sync_scores(frames, np.zeros(12 * SAMPLES_PER_FRAME, np.float32) + 0.01, model, track=track)
    assert set(r) >= {"Sc", "Sd", "offset", "curve"} and len(r["curve"]) == 2 * model.cfg.max_offset + 1
    with pytest.raises(InputError, match="video frames"):
        sync_scores(frames, np.zeros(30 * SAMPLES_PER_FRAME, np.float32), model, track=track)
    bad = frames.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        sync_scores(bad, np.zeros(12 * SAMPLES_PER_FRAME, np.float32), model, track=track)


@pytest.mark.skipif(not checkpoint_file("cpu").exists(), reason="no shipped syncnet_cpu.pt")
def test_shipped_syncnet_finds_a_known_audio_delay():
    """A test clip (unseen actor and sentence) with its audio delayed by 4 frames: the curve's minimum is at +4."""
    clip = load_split("cpu", "test", limit=1)[0]
    t = min(len(clip["tracks"]), 100)
    named = {n: clip["tracks"][:t, j] for j, n in enumerate(FRAME_FACTOR_NAMES)}
    frames = Renderer(128).render(sample_actor(clip["meta"]["actor_seed"]), named)
    audio = clip["audio"][: t * SAMPLES_PER_FRAME]
    delayed = np.concatenate([np.zeros(4 * SAMPLES_PER_FRAME, np.float32), audio])[: len(audio)]
    r = sync_scores(frames, delayed)
    assert abs(r["offset"] - 4) <= 1, r
    assert int(np.argmin(r["curve"])) == r["offsets"].index(r["offset"])
    r0 = sync_scores(frames, audio)
    assert abs(r0["offset"]) <= 1 and r0["Sc"] > 0, r0
