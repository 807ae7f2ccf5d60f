"""Real-time streaming (vasa_lite.stream), its CLI, and the demo, on the smoke preset.

Speed is measured by `vasa-lite bench stream`, never asserted here. These tests check what a stream must do
whatever the machine: frames appear once their audio is in, one per 40 ms, reproducibly, with bounded memory,
and a stop keeps what was made."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from vasa_lite.config import get_preset
from vasa_lite.errors import InputError
from vasa_lite.stream import SAMPLES_PER_FRAME, StreamingSession, playback, stream_audio

SMOKE = get_preset("smoke")
SIZE = SMOKE.world.size


@pytest.fixture(scope="module")
def speech(one_thread):
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.training import load_split

    missing = [c for c in ("latent", "audio", "motion") if not checkpoint_path(c, "smoke").exists()]
    if missing:
        pytest.skip(f"smoke checkpoints missing: {missing}")
    return load_split("smoke", "test", limit=1)[0]["audio"][:-101]


@pytest.fixture(scope="module")
def session_of():
    def make(**kw):
        return StreamingSession("actor", preset="smoke", **kw)
    return make


def test_first_frames_come_once_the_prefix_of_audio_is_in(session_of, speech):
    s = session_of(prefix=2, hop=3)
    assert len(s.push(speech[:2 * SAMPLES_PER_FRAME - 1])) == 0          # not yet two whole frames of audio
    first = s.push(speech[2 * SAMPLES_PER_FRAME - 1:2 * SAMPLES_PER_FRAME])
    assert first.shape == (2, SIZE, SIZE, 3) and first.dtype == np.uint8
    assert len(s.push(speech[2 * SAMPLES_PER_FRAME:4 * SAMPLES_PER_FRAME])) == 0   # a hop needs 3 more frames
    assert len(s.push(speech[4 * SAMPLES_PER_FRAME:5 * SAMPLES_PER_FRAME])) == 3


def test_a_stream_gives_one_frame_per_40_ms_and_the_same_frames_for_the_same_seed(session_of, speech):
    a = stream_audio(session_of(seed=3), speech, realtime=False)
    b = stream_audio(session_of(seed=3), speech, realtime=False)
    assert len(a.frames) == math.ceil(len(speech) / SAMPLES_PER_FRAME)
    assert np.array_equal(a.frames, b.frames)
    c = stream_audio(session_of(seed=4), speech, realtime=False)
    assert not np.array_equal(a.frames, c.frames)                      # the seed matters
    assert a.summary()["frames"] == len(a.frames) and a.ready_ms.shape == (len(a.frames),)


def test_chunk_size_changes_nothing_that_is_final(session_of, speech):
    """Feeding 40 ms or 200 ms at a time: the same number of frames, all finite images."""
    for chunk in (40, 200, 17):
        r = stream_audio(session_of(), speech, realtime=False, chunk_ms=chunk)
        assert len(r.frames) == math.ceil(len(speech) / SAMPLES_PER_FRAME)


def test_memory_stays_bounded_on_a_long_stream(session_of, speech):
    """A minute of speech: the state a session keeps (features, motion, the audio encoder's caches) is the same size
    after 10 s as after 60 s."""
    s = session_of(hop=SMOKE.motion.window, prefix=SMOKE.motion.window)
    long = np.tile(speech, int(np.ceil(60 * 16000 / len(speech))))[:60 * 16000]

    early, late, chunk = [], [], SAMPLES_PER_FRAME             # 40 ms chunks, as a live source sends them
    for k in range(0, len(long), chunk):
        s.push(long[k:k + chunk])
        sec = k / 16000
        (early if 5 <= sec < 15 else late if sec >= 50 else []).append(s.state_size())
    assert max(late) <= max(early), (max(early), max(late))       # no growth: the state is bounded
    assert len(s._motion) <= SMOKE.motion.prev
    assert s.emitted >= 59 * 25


def test_ctrl_c_keeps_the_frames_made_so_far(session_of, speech):
    seen = []

    def stop_after_first(frames, now):
        seen.append(len(frames))
        if len(seen) == 2:
            raise KeyboardInterrupt

    r = stream_audio(session_of(), speech, realtime=False, on_frames=stop_after_first)
    assert r.interrupted and len(r.frames) == sum(seen) > 0


def test_playback_counts_late_frames_and_jitter():
    steady = np.arange(50) * 40.0 + 100.0                     # every frame 40 ms after the last: smooth
    p = playback(steady)
    assert p["first_frame_ms"] == 100.0 and p["dropped_frames"] == 0 and p["jitter_ms"] == 0.0
    assert p["sustained_fps"] == pytest.approx(25.0)
    bursty = np.repeat(np.arange(10) * 200.0, 5) + 100.0      # 5 frames at once every 200 ms: keeps up exactly
    assert playback(bursty)["dropped_frames"] == 0
    slow = np.arange(50) * 50.0                               # only 20 fps: the player stalls
    p = playback(slow)
    assert p["dropped_frames"] == 49 and p["sustained_fps"] == pytest.approx(20.0)
    assert p["buffer_for_no_drops_ms"] == pytest.approx(49 * 10.0)   # the last frame is 490 ms behind schedule
    one_stall = np.arange(50) * 40.0
    one_stall[10:] += 30.0                                   # one window 30 ms late, then back on pace
    p = playback(one_stall)
    assert p["dropped_frames"] == 40 and p["buffer_for_no_drops_ms"] == pytest.approx(30.0)
    # a player that waits at least that long before the first frame never stalls, and the wait is part of the latency
    p = playback(one_stall, playout_ms=30.0)
    assert p["dropped_frames"] == 0 and p["first_shown_ms"] == pytest.approx(30.0) and p["jitter_ms"] == 0.0
    assert playback(one_stall, playout_ms=29.0)["dropped_frames"] == 40
    assert playback(slow, playout_ms=100.0)["dropped_frames"] == 39             # frames 11.. are still late


def test_bad_settings_fail_before_any_model_loads():
    with pytest.raises(InputError, match="hop"):
        StreamingSession("actor", preset="smoke", hop=0)
    with pytest.raises(InputError, match="sampler"):
        StreamingSession("actor", preset="smoke", sampler="euler")
    with pytest.raises(InputError, match="emotion"):
        StreamingSession("actor", preset="smoke", emotion="bored")
    with pytest.raises(InputError, match="actor:N"):
        StreamingSession("actor:x", preset="smoke")


def test_peek_leaves_the_audio_stream_as_it_was(speech):
    from vasa_lite.audio import StreamingAudioEncoder, load_audio_encoder

    enc = load_audio_encoder("smoke")
    a, b = StreamingAudioEncoder(enc), StreamingAudioEncoder(enc)
    cut = 7 * SAMPLES_PER_FRAME + 100
    out_a = [a.push(speech[:cut])]
    provisional = a.peek()
    assert len(provisional) == 7 - a.frames_out                     # the whole frames still waiting for lookahead
    out_a += [a.push(speech[cut:]), a.flush()]
    ref = torch.cat([b.push(speech), b.flush()])
    assert torch.allclose(torch.cat(out_a), ref, atol=1e-5)


def _cli(*args, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vasa_lite", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_cli_stream_writes_an_mp4_with_sound_and_reports_latency(tmp_path, speech):
    from vasa_lite.media import probe

    out = tmp_path / "s.mp4"
    r = _cli("stream", "--preset", "smoke", "--text", "Hello there, streaming.", "--out", str(out),
             "--as-fast-as-possible", "--threads", "1")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["frames"] > 10 and rep["first_frame_ms"] > 0 and rep["out"] == str(out)
    info = probe(out)
    assert info["audio"] is not None and abs(info["duration"] - rep["frames"] / 25) < 0.1


def test_cli_bench_stream_reports_its_settings_and_the_playout_latency(speech):
    r = _cli("bench", "stream", "--preset", "smoke", "--frames", "25", "--threads", "1")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    assert {"device", "size_px", "steps", "guidance", "playout_ms"} <= set(b) and b["size_px"] == SIZE
    lat = b["latency_ms"]
    # shown = ready + the player's buffer, run by run, so the percentiles move by exactly the buffer
    assert lat["shown_p95"] == pytest.approx(lat["p95"] + b["playout_ms"], abs=0.21)
    assert lat["p50"] >= 1000 * b["prefix_frames"] / 25 - 1          # no frame before its audio prefix exists
    assert b["sustained"]["frames"] == 25 and b["flops_per_frame"]["total"] > b["flops_per_frame"]["decode"] > 0
    assert set(b["meets"]) == {"sustained_25fps_no_drops", "latency_p95_170ms", "offline_45fps"}


@pytest.mark.parametrize("args, words", [
    (["--text", "hola", "--lang", "xx"], "language"),
    (["--text", "hi", "--out", "/proc/nope/x.mp4"], "cannot"),
    (["--text", "hi", "--out", "x.avi"], "mp4"),
])
def test_cli_stream_bad_input_is_one_line_and_exit_2(args, words, tmp_path):
    base = ["stream", "--preset", "smoke", "--as-fast-as-possible"]
    if "--out" not in args:
        args = args + ["--out", str(tmp_path / "o.mp4")]
    r = _cli(*base, *args)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr.lower() and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_stream_refuses_silent_audio(tmp_path):
    from vasa_lite.media import write_audio

    wav = write_audio(tmp_path / "quiet.wav", np.zeros(16000, np.float32))
    r = _cli("stream", "--preset", "smoke", "--audio", str(wav), "--out", str(tmp_path / "o.mp4"))
    assert r.returncode == 2 and "silent" in r.stderr.lower() and "Traceback" not in r.stderr


def test_demo_writes_a_generated_video_with_sound(tmp_path, speech):
    from vasa_lite.media import probe

    out = tmp_path / "demo.mp4"
    r = _cli("demo", "--preset", "smoke", "--out", str(out), "--quiet", "--threads", "1")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    info = probe(out)
    assert info["audio"] is not None and rep["frames"] > 50 and abs(info["duration"] - rep["frames"] / 25) < 0.1
    assert rep["size"] == [SIZE, SIZE]


def test_cli_ctrl_c_stops_cleanly_and_writes_the_frames_so_far(tmp_path, speech):
    import signal
    import time

    from vasa_lite.media import probe

    from vasa_lite.media import write_audio

    out = tmp_path / "stopped.mp4"
    wav = write_audio(tmp_path / "long.wav", np.tile(speech, 20))        # far longer than the test waits
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # a job started in the background by a shell inherits SIGINT ignored, and Python then installs no Ctrl-C handler:
    # give the child the default disposition, as a terminal would
    p = subprocess.Popen([sys.executable, "-m", "vasa_lite", "stream", "--preset", "smoke", "--audio", str(wav),
                          "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(12.0)                                        # loading, then a few seconds of real-time streaming
    assert p.poll() is None, "the stream ended before it could be stopped"
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    assert "kept the" in stderr and "Traceback" not in stderr
    rep = json.loads(stdout)
    assert rep["interrupted"] and rep["frames"] > 0
    assert abs(probe(out)["duration"] - rep["frames"] / 25) < 0.1
