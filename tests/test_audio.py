"""The audio encoder: mel alignment, input handling, streaming == offline, lookahead, training, the shipped model."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from vasa_lite import CheckpointError, InputError
from vasa_lite.audio import (MEL_PER_FRAME, AudioEncoder, StreamingAudioEncoder, encode, load_audio_encoder, log_mel,
                             mel_frames_per_video_frame, n_video_frames, prepare_audio, train_audio)
from vasa_lite.config import get_preset
from vasa_lite.training import Trainer, load_split, read_log, resume_path

SR = 16_000


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def speech():
    """3 s of the world's speech (a smoke test clip padded with its own train clips)."""
    clips = load_split("smoke", "train", limit=3)
    return np.concatenate([c["audio"] for c in clips])[: 3 * SR]


@pytest.fixture(scope="module")
def tiny():
    """An untrained smoke-size encoder with random relative biases, so masks and positions matter."""
    torch.manual_seed(0)
    model = AudioEncoder(get_preset("smoke").audio).eval()
    for blk in model.blocks:
        torch.nn.init.normal_(blk.rel, std=1.0)
    return model


# ------------------------------------------------------------------------------------------- features


def test_four_mel_frames_per_video_frame_and_one_feature_per_frame(speech, tiny):
    assert mel_frames_per_video_frame() == MEL_PER_FRAME == 4
    for t in (1, 7, 75):
        x = speech[: t * 640]
        assert log_mel(x).shape == (4 * t, 80)
        assert tiny.encode_array(x).shape == (t, tiny.width)
    # a partial last frame is padded to a whole one
    assert n_video_frames(7 * 640 + 1) == 8 and tiny.encode_array(speech[: 7 * 640 + 1]).shape[0] == 8


def test_log_mel_matches_librosa_and_is_causal(speech):
    import librosa

    x = speech[: 20 * 640]
    ref = librosa.feature.melspectrogram(y=np.pad(x, (240, 0)), sr=SR, n_fft=400, hop_length=160, n_mels=80,
                                         center=False)
    np.testing.assert_allclose(log_mel(x), np.log(ref.T + 1e-6), atol=1e-3)
    # mel frames of video frame k use no audio after frame k
    y = x.copy()
    y[10 * 640:] = np.random.default_rng(0).normal(0, 0.3, len(y) - 10 * 640)
    assert np.array_equal(log_mel(x)[:40], log_mel(y)[:40]) and not np.allclose(log_mel(x)[40:44], log_mel(y)[40:44])


# ---------------------------------------------------------------------------------------------- inputs


def test_stereo_and_other_rates_become_16k_mono(tone, tmp_path):
    mono = tone(300, 1.0)
    for stereo in (np.stack([mono, mono]), np.stack([mono, mono], 1)):   # (C, N) and (N, C)
        np.testing.assert_allclose(prepare_audio(stereo), mono, atol=1e-6)
    for sr in (8000, 44100, 48000):
        x = prepare_audio(tone(300, 1.0, sr=sr), sr=sr)
        assert abs(len(x) - SR) <= 1
        spec = np.abs(np.fft.rfft(x))
        assert abs(np.argmax(spec) - 300) <= 1       # 1 Hz bins: the tone stays at 300 Hz
    from vasa_lite.media import write_audio

    path = write_audio(tmp_path / "a.wav", tone(300, 0.5, sr=44100), sr=44100)
    assert abs(len(prepare_audio(path)) - SR // 2) <= 1


def test_bad_audio_is_a_clear_input_error(tone, tiny):
    x = tone(300, 1.0)
    x[100] = np.nan
    with pytest.raises(InputError, match="NaN"):
        prepare_audio(x)
    with pytest.raises(InputError, match="NaN"):
        encode(x, model=tiny)
    with pytest.raises(InputError, match="40 ms"):
        prepare_audio(tone(300, 0.03))
    with pytest.raises(InputError, match="silent"):
        encode(np.zeros(SR, np.float32), model=tiny)
    # silence allowed on request: features of silence, one per frame
    assert encode(np.zeros(SR, np.float32), model=tiny, allow_silence=True).shape == (25, tiny.width)
    with pytest.raises(InputError, match="sample rate"):
        prepare_audio(x, sr=-5)


# -------------------------------------------------------------------------------- streaming and lookahead


@pytest.mark.parametrize("chunk", [640, 1000, 160, 3200])
def test_streaming_matches_offline(speech, tiny, chunk):
    x = speech[: len(speech) - 300]          # not a whole number of frames: the flush pads the last one
    offline = tiny.encode_array(x)
    stream = StreamingAudioEncoder(tiny)
    online = torch.cat([stream.push(x[i:i + chunk]) for i in range(0, len(x), chunk)] + [stream.flush()])
    assert online.shape == offline.shape == (n_video_frames(len(x)), tiny.width)
    torch.testing.assert_close(online, offline, atol=1e-4, rtol=0)


def test_streaming_returns_each_frame_after_its_lookahead(speech, tiny):
    stream = StreamingAudioEncoder(tiny)
    got = [len(stream.push(speech[i * 640:(i + 1) * 640])) for i in range(20)]
    la = tiny.lookahead_frames
    assert sum(got[:la]) == 0 and all(g == 1 for g in got[la:])
    assert tiny.lookahead_ms == 40 * la == 40 * (1 + tiny.cfg.lookahead * tiny.cfg.lookahead_layers)


def test_windowed_offline_encoding_is_seamless(speech, tiny):
    long = np.concatenate([speech] * 3)      # 225 frames
    torch.testing.assert_close(tiny.encode_array(long, chunk_frames=40), tiny.encode_array(long, chunk_frames=10**6),
                               atol=1e-4, rtol=0)


def test_lookahead_is_exactly_what_is_stated(speech, tiny):
    t, la = 30, tiny.lookahead_frames
    base = tiny.encode_array(speech)
    late = speech.copy()
    late[(t + la + 1) * 640:] = 0.0          # change everything after frame t + lookahead
    assert torch.allclose(tiny.encode_array(late)[: t + 1], base[: t + 1], atol=1e-5)
    edge = speech.copy()
    edge[(t + la) * 640:(t + la + 1) * 640] = 0.0    # change frame t + lookahead only
    assert not torch.allclose(tiny.encode_array(edge)[t], base[t], atol=1e-4)


# ------------------------------------------------------------------------------------------------ training


def test_smoke_training_makes_the_loss_fall(tmp_path):
    out = tmp_path / "audio_smoke.pt"
    summary = train_audio("smoke", steps=60, out=out, progress=False)
    log = read_log(out)
    assert summary["steps"] == 60 and log[-1]["step"] == 60 and not resume_path(out).exists()
    first, last = log[0]["loss"], np.mean([r["loss"] for r in log[-2:]])
    assert last < 0.75 * first, (first, last)
    model = load_audio_encoder("smoke", path=out)
    assert isinstance(model, AudioEncoder)


def _toy_fit(path, stop_at=None, ema=0.0, trajectory=None):
    """12 steps of a linear regression through the Trainer: (summary, model). stop_at: Ctrl-C before that step;
    trajectory: a list that gets the weights before every step."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    w_true = torch.tensor([[1.0, -2.0, 0.5]])

    def step_fn(step, gen):
        if step == stop_at:
            raise KeyboardInterrupt
        if trajectory is not None:
            trajectory.append(net.weight.detach().clone())
        x = torch.randn(8, 3, generator=gen)
        return {"loss": (net(x) - x @ w_true.T).pow(2).mean()}

    trainer = Trainer(net, opt, component="toy", preset="smoke", path=path, progress=False, log_every=1,
                      ckpt_every=100, ema=ema)
    return trainer.fit(step_fn, 12), net


def test_trainer_resumes_exactly_where_it_stopped(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _toy_fit(tmp_path / "a.pt", stop_at=7)
    assert resume_path(tmp_path / "a.pt").exists()
    resumed, net_a = _toy_fit(tmp_path / "a.pt")
    straight, net_b = _toy_fit(tmp_path / "b.pt")
    assert resumed["resumed_from"] == 7 and resumed["steps_this_run"] == 5
    assert torch.equal(net_a.weight, net_b.weight)
    assert [r["step"] for r in read_log(tmp_path / "a.pt")] == list(range(1, 13))
    assert read_log(tmp_path / "b.pt")[-1]["loss"] < read_log(tmp_path / "b.pt")[0]["loss"]


def test_trainer_ema_saves_the_averaged_weights_and_resumes_them(tmp_path):
    """With ema = d the checkpoint holds the moving average of the weight trajectory (warmed-up decay), not the last
    weights, and a run stopped and resumed ends with the same average as one straight run."""
    from vasa_lite.checkpoints import load_checkpoint

    weights = []                                         # w_0 .. w_11 before each step, then w_12
    weights.append(_toy_fit(tmp_path / "plain.pt", trajectory=weights)[1].weight.detach().clone())
    expected = weights[0]
    for k in range(12):                                  # the update after step k + 1
        d = min(0.9, (2 + k) / (11 + k))
        expected = d * expected + (1 - d) * weights[k + 1]
    net = _toy_fit(tmp_path / "a.pt", ema=0.9)[1]
    saved, _ = load_checkpoint(tmp_path / "a.pt", component="toy")
    assert torch.equal(saved["weight"], net.weight)      # eval_fn and the file see the same (averaged) weights
    assert torch.allclose(saved["weight"], expected, atol=1e-6)
    assert not torch.allclose(saved["weight"], weights[-1], atol=1e-3)
    with pytest.raises(InputError, match="ema"):
        Trainer(torch.nn.Linear(1, 1), None, component="toy", preset="smoke", path=tmp_path / "c.pt", ema=1.0)
    with pytest.raises(KeyboardInterrupt):
        _toy_fit(tmp_path / "b.pt", stop_at=7, ema=0.9)
    assert torch.equal(_toy_fit(tmp_path / "b.pt", ema=0.9)[1].weight, net.weight)


# ------------------------------------------------------------------------------------------- checkpoints


def test_corrupt_or_mismatched_checkpoint_is_a_checkpoint_error(tmp_path, tiny):
    bad = tmp_path / "audio_cpu.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_audio_encoder("cpu", path=bad)
    from vasa_lite.checkpoints import save_checkpoint

    small = save_checkpoint(tmp_path / "small.pt", tiny.state_dict(), component="audio", preset="cpu",
                            extra={"config": dataclasses.asdict(get_preset("smoke").audio)})
    with pytest.raises(CheckpointError, match="other settings"):
        load_audio_encoder("cpu", path=small)


def test_shipped_cpu_encoder_knows_visemes():
    from vasa_lite.audio import checkpoint_file, evaluate_audio, head_accuracy

    if not checkpoint_file("cpu").exists():
        pytest.skip("data/checkpoints/audio_cpu.pt not shipped; train it with `vasa-lite train audio --preset cpu`")
    model = load_audio_encoder("cpu")
    test = load_split("cpu", "test", limit=8)
    assert head_accuracy(model, test) > 0.6            # 15 classes: majority class is ~13%
    report = evaluate_audio(model, load_split("cpu", "train", limit=40), test, probe_frames=3000, mel_window=False)
    assert report["probe_acc"] > max(0.75, 5 * report["chance_majority"])
    assert report["probe_acc"] > report["mel_frame_probe_acc"] + 0.05     # learned features beat raw log-mel
    assert json.dumps(report)
