"""Real-time streaming: speech arrives in small chunks, frames leave as soon as they can be made (VASA-1's online
mode: 40 fps and about 170 ms before the first frame on an RTX 4090).

    session = StreamingSession("grace_hopper", preset="cpu")
    for chunk in microphone_chunks():          # float32 16 kHz mono, any length (40 ms is typical)
        for frame in session.push(chunk):      # uint8 [H, W, 3] each, 0 or more per chunk
            show(frame)
    rest = session.finish()                    # the end of speech: the last frames

What happens inside, per chunk:
1. the audio encoder's streaming mode (`audio.StreamingAudioEncoder`) turns samples into per-frame features. A
   feature is *final* once its lookahead (120 ms on cpu) has arrived; before that, `peek` gives a *provisional*
   feature computed as if the speech ended now: the truncated audio the paper trains with;
2. once `prefix` frames of audio are in (80 ms), the first motion window is sampled from them alone; after that,
   a window is sampled each time `hop` more frames of audio are in. Each window is conditioned on the last P
   frames of the previous one (their motion and their audio features, final by then), as offline generation is;
3. the decoder renders each window's frames at once.

Memory is bounded: the session keeps the audio encoder's fixed-size state, the last P frames of motion and
features, and a few counters, whatever the length of the stream. Frames are handed back, never stored.

`stream_audio` feeds a whole file as a live source would (each chunk pushed when its last sample would have
arrived) and measures what a viewer would see: the latency of the first frame, whether each frame was ready
when a 25 fps player needed it, the sustained fps and the jitter of the frames' display times. The player waits
`playout_ms` after the first frame is ready before it shows it (a jitter buffer, as every live video player has):
later windows may take longer than the first one, and without that margin their first frames would come late.
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque

import numpy as np
import torch

from vasa_lite.errors import InputError
from vasa_lite.world.params import FPS, SAMPLE_RATE

SAMPLES_PER_FRAME = SAMPLE_RATE // FPS           # 640 samples: 40 ms


class StreamingSession:
    """One portrait, speech pushed in chunks, frames out as soon as their motion is sampled (see the module doc).

    Controls and sampling settings are those of `animate`; sampler, steps, prefix and hop default to the preset's
    `stream` settings (DDIM, few steps). `push` returns uint8 frames [n, H, W, 3] (n may be 0); `finish` ends the
    speech and returns the rest. `stats()` gives counts and compute time."""

    def __init__(self, portrait, gaze=None, distance=None, emotion=None, guidance: "dict | None" = None,
                 steps: "int | None" = None, sampler: "str | None" = None, prefix: "int | None" = None,
                 hop: "int | None" = None, seed: int = 0, preset="cpu", device=None, pose: str = "relative",
                 half: "bool | None" = None, playout_ms: "float | None" = None):
        from vasa_lite.audio import StreamingAudioEncoder
        from vasa_lite.config import get_preset
        from vasa_lite.device import pick_device
        from vasa_lite.motion.animate import check_choices, encode_portrait, load_pipeline, portrait_frame
        from vasa_lite.motion.generate import check_controls, check_seed, control_tokens, window_sampler
        from vasa_lite.motion.guidance import guidance_scales

        p = get_preset(preset)
        sc = p.stream
        self.sampler = sampler or sc.sampler
        self.prefix = int(prefix if prefix is not None else sc.prefix)
        self.hop = int(hop if hop is not None else sc.hop)
        # every cheap check first, so bad input fails before any model loads
        controls = check_controls(gaze, distance, emotion)
        scales = guidance_scales(guidance, p.motion)
        check_choices(self.sampler, pose)
        for name, v in (("prefix", self.prefix), ("hop", self.hop)):
            if not 1 <= v <= p.motion.window:
                raise InputError(f"{name} must be 1 to {p.motion.window} frames (the motion window), got {v}")
        playout = float(playout_ms if playout_ms is not None else sc.playout_ms)
        if not 0 <= playout <= 10_000:
            raise InputError(f"playout_ms must be 0 to 10000 ms, got {playout_ms}")
        seed = check_seed(seed)
        frame = portrait_frame(portrait, p.world.size)

        dev = pick_device(device)
        self.latent, self.model, encoder = load_pipeline(p, dev)
        self.preset, self.device, self.pose, self.scales = p, dev, pose, scales
        # half precision on CUDA (autocast: matrix products and convolutions in float16, the rest in float32); a CPU
        # gains nothing from it, see compare_paths
        self.half = (dev.type == "cuda") if half is None else bool(half and dev.type == "cuda")
        self.steps = int(steps if steps is not None else sc.steps)
        self.smp = window_sampler(self.model, self.sampler, self.steps)
        self.portrait = frame
        self.source = encode_portrait(self.latent, frame)       # V_app, z_id, the portrait's pose: once
        self.base = control_tokens(self.model, controls, dev)
        self.gen = torch.Generator().manual_seed(seed)
        self.audio = StreamingAudioEncoder(encoder)
        self.settings = {"preset": p.name, "device": str(dev), "half": self.half, "sampler": self.sampler,
                         "steps": self.steps, "playout_ms": playout,
                         "prefix_frames": self.prefix, "hop_frames": self.hop, "guidance": scales, "pose": pose,
                         "seed": seed, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in controls.items()}}
        self._P = p.motion.prev
        self._final = torch.zeros(0, encoder.width)       # final features of frames [_f0, _f0 + len)
        self._f0 = 0
        self._motion = torch.zeros(0, self.model.motion_dim, device=dev)   # the last P frames' motion (normalised)
        self.emitted = 0                                  # frames handed back so far
        self.windows = 0
        self.compute_s = 0.0
        self.finished = False

    # ------------------------------------------------------------------------------------------------- inputs
    def push(self, chunk) -> np.ndarray:
        """Add speech samples (float32 16 kHz mono); returns the frames that became ready, uint8 [n, H, W, 3]."""
        if self.finished:
            raise InputError("this stream has finished; start a new StreamingSession for more speech")
        return self._step(lambda: self.audio.push(chunk), end=False)

    def finish(self) -> np.ndarray:
        """The end of speech: every remaining frame, its lookahead padded with silence."""
        if self.finished:
            return self._empty()
        self.finished = True
        return self._step(self.audio.flush, end=True)

    def state_size(self) -> int:
        """Numbers the session holds between chunks (features, motion, the audio encoder's caches): bounded,
        whatever the length of the stream."""
        n = self._final.numel() + self._motion.numel()
        for b in self.audio._blocks:
            n += sum(v.numel() for v in vars(b).values() if torch.is_tensor(v))
        return n

    def stats(self) -> dict:
        return {"frames": self.emitted, "windows": self.windows, "audio_s": round(self.audio.samples_in / SAMPLE_RATE, 3),
                "compute_s": round(self.compute_s, 4),
                "compute_frames_per_s": round(self.emitted / max(self.compute_s, 1e-9), 1),
                "buffered_frames": int(len(self._final)), **self.settings}

    # ----------------------------------------------------------------------------------------------- internals
    def _empty(self) -> np.ndarray:
        s = self.preset.world.size
        return np.zeros((0, s, s, 3), np.uint8)

    @torch.inference_mode()
    def _step(self, new_features, end: bool) -> np.ndarray:
        """Take the audio encoder's new final features, then make every frame that can be made; timed."""
        t = time.perf_counter()
        self._final = torch.cat([self._final, new_features().to(self._final)])
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
            out = self._run(end)
        self.compute_s += time.perf_counter() - t
        return out

    def _features(self, a: int, b: int, provisional: "torch.Tensor | None") -> torch.Tensor:
        """Features of frames [a, b): final where known, else provisional (peek)."""
        have = torch.cat([self._final, provisional]) if provisional is not None else self._final
        return have[a - self._f0:b - self._f0]

    def _run(self, end: bool) -> np.ndarray:
        from vasa_lite.motion.animate import frames_of
        from vasa_lite.motion.generate import sample_window

        received = -(-self.audio.samples_in // SAMPLES_PER_FRAME) if end else self.audio.samples_in // SAMPLES_PER_FRAME
        out, provisional = [], None
        while True:
            avail = received - self.emitted
            need = self.prefix if self.emitted == 0 else self.hop
            if avail <= 0 or (not end and avail < need):
                break
            # at the end, the rest goes in whole windows: nothing more will arrive to wait for
            n = min(avail, self.model.cfg.window) if end else need
            known = self._f0 + len(self._final)
            if provisional is None and self.emitted + n > known:
                provisional = self.audio.peek().to(self._final)
            a, b = self.emitted, self.emitted + n
            feats = self._features(a, b, provisional).to(self.device)
            prev = None
            if a > 0:
                pa = max(0, a - self._P)
                pm, pf = self._motion[-(a - pa):], self._features(pa, a, provisional).to(self.device)
                if len(pm) < self._P:       # fewer than P frames so far: as if the first one had been held
                    k = self._P - len(pm)
                    pm, pf = torch.cat([pm[:1].expand(k, -1), pm]), torch.cat([pf[:1].expand(k, -1), pf])
                prev = (pm, pf)
            x0 = sample_window(self.model, self.smp, feats, self.base, self.scales, self.gen, prev)
            x0 = x0.float()
            self._motion = torch.cat([self._motion, x0])[-self._P:]
            _, frames = frames_of(self.latent, self.source, self.model, self.model.denormalise(x0).cpu(), self.pose)
            out.append(frames)
            self.emitted, self.windows = b, self.windows + 1
            # keep only the features the next window's previous-frames condition can reach
            drop = max(0, min(self.emitted - self._P - self._f0, len(self._final)))
            self._final, self._f0 = self._final[drop:], self._f0 + drop
        return np.concatenate(out) if out else self._empty()


@dataclasses.dataclass
class StreamReport:
    """What `stream_audio` measured. Times in ms, from the first audio sample (t = 0)."""
    frames: np.ndarray
    audio: np.ndarray
    ready_ms: np.ndarray            # when each frame was ready
    chunks_ms: np.ndarray           # when each chunk was pushed
    interrupted: bool
    session: dict

    def summary(self) -> dict:
        """What a 25 fps player with the session's playout buffer would show (see `playback`), in ms."""
        return {"frames": int(len(self.ready_ms)), "audio_s": round(len(self.audio) / SAMPLE_RATE, 3),
                "interrupted": self.interrupted, **playback(self.ready_ms, self.session.get("playout_ms", 0.0)),
                **self.session}

    def save(self, path):
        """Write the frames as an mp4 with the speech they were made from."""
        from vasa_lite.media import write_video

        n = len(self.frames) * SAMPLES_PER_FRAME
        return write_video(path, self.frames, fps=FPS, audio=self.audio[:n], sr=SAMPLE_RATE)

    def show(self, width: "int | None" = None):
        """The frames with their speech, for a notebook."""
        from vasa_lite.media import show_video

        return show_video(self.frames, audio=self.audio[:len(self.frames) * SAMPLES_PER_FRAME], width=width, fps=FPS,
                          sr=SAMPLE_RATE)


def show_times(ready_ms, playout_ms: float = 0.0) -> np.ndarray:
    """When a 25 fps player shows each frame (ms): the first playout_ms after it is ready, each later one 40 ms
    after the previous one, or when it is ready if that is later (a stall)."""
    r = np.asarray(ready_ms, np.float64)
    shown = r.copy()
    if len(r):
        shown[0] = r[0] + playout_ms
    for i in range(1, len(r)):
        shown[i] = max(r[i], shown[i - 1] + 1000.0 / FPS)
    return shown


def playback(ready_ms, playout_ms: float = 0.0) -> dict:
    """A 25 fps player that shows the first frame playout_ms after it is ready and frame i at that start + 40 i ms,
    or when it is ready if later (then the frame counts as dropped, a stall). Returns the first-frame latency
    (ready, and shown), dropped frames, sustained fps (shown frames per second), jitter (std of the intervals between
    shown frames, ms) and the smallest playout buffer (ms) with which no frame would be late."""
    r = np.asarray(ready_ms, np.float64)
    if not len(r):
        return {"first_frame_ms": None, "first_shown_ms": None, "playout_ms": playout_ms, "dropped_frames": 0,
                "sustained_fps": 0.0, "jitter_ms": 0.0}
    shown = show_times(r, playout_ms)
    behind = r - (r[0] + np.arange(len(r)) * 1000.0 / FPS)          # how late each frame is for the schedule
    late = int(np.sum(behind[1:] > playout_ms + 1e-6))
    gaps = np.diff(shown)
    span = shown[-1] - shown[0]
    return {"first_frame_ms": round(float(r[0]), 1), "first_shown_ms": round(float(shown[0]), 1),
            "playout_ms": playout_ms, "dropped_frames": late,
            "sustained_fps": round(float((len(r) - 1) / span * 1000.0), 2) if span > 0 else float(FPS),
            "jitter_ms": round(float(gaps.std()), 2) if len(gaps) else 0.0,
            # a player that waits this long after the first frame before it starts never stalls
            "buffer_for_no_drops_ms": round(float(max(0.0, behind.max())), 1)}


def stream_audio(session: StreamingSession, audio, sr: "int | None" = None, realtime: bool = True,
                 chunk_ms: "int | None" = None, on_frames=None, keep_frames: bool = True) -> StreamReport:
    """Feed speech to a session in chunks as a live source would: with realtime, each chunk is pushed when its
    last sample would have arrived (never earlier; later if the session fell behind). on_frames(frames,
    ready_ms) is called with each batch of new frames. Ctrl-C stops cleanly: the report keeps the frames made
    so far (interrupted=True). keep_frames=False keeps only their times (long streams)."""
    from vasa_lite.audio import prepare_audio

    samples = prepare_audio(audio, sr)
    chunk = int(SAMPLE_RATE * (chunk_ms or session.preset.stream.chunk_ms) / 1000)
    if chunk < 1:
        raise InputError(f"chunk_ms must give at least one sample, got {chunk_ms}")
    frames, ready, pushed = [], [], []
    interrupted = False
    t0 = time.perf_counter()

    def take(new):
        now = 1000.0 * (time.perf_counter() - t0)
        ready.extend([now] * len(new))
        if keep_frames and len(new):
            frames.append(new)
        if on_frames is not None and len(new):
            on_frames(new, now)

    try:
        for s in range(0, len(samples), chunk):
            piece = samples[s:s + chunk]
            if realtime:
                due = t0 + (s + len(piece)) / SAMPLE_RATE
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            pushed.append(1000.0 * (time.perf_counter() - t0))
            take(session.push(piece))
        take(session.finish())
    except KeyboardInterrupt:
        interrupted = True
    size = session.preset.world.size
    out = np.concatenate(frames) if frames else np.zeros((0, size, size, 3), np.uint8)
    return StreamReport(frames=out, audio=samples, ready_ms=np.asarray(ready), chunks_ms=np.asarray(pushed),
                        interrupted=interrupted, session=session.stats())


__all__ = ["StreamingSession", "StreamReport", "stream_audio", "playback", "show_times", "SAMPLES_PER_FRAME"]


# ------------------------------------------------------------------------------------------------ measuring
BENCH_TEXT = ("Streaming makes each frame as soon as its speech has arrived. The first frame must come quickly, "
              "and every later one must be ready before the player needs it.")


def bench_speech(seconds: float = 12.0, lang: str = "en") -> np.ndarray:
    """About `seconds` of espeak-ng speech at 16 kHz (the benchmark text, repeated): the same input every run."""
    from vasa_lite.world.speech import speak

    one = speak(BENCH_TEXT, lang=lang).audio
    reps = max(1, int(np.ceil(seconds * SAMPLE_RATE / len(one))))
    return np.tile(one, reps)[:int(seconds * SAMPLE_RATE)].astype(np.float32)


def flops_per_frame(session: StreamingSession) -> dict:
    """Floating-point operations per frame, counted by torch's FlopCounterMode (matrix products and convolutions;
    sampling and element-wise work are left out, so these are lower bounds): the decoder, the guided motion
    network (every step of a window, shared by the window's hop frames) and the audio encoder."""
    from torch.utils.flop_counter import FlopCounterMode

    from vasa_lite.motion.generate import sample_window

    dev, model = session.device, session.model
    D = session.audio.model.width
    with torch.inference_mode():
        with FlopCounterMode(display=False) as fc:
            session.latent.decode(session.source, torch.zeros(1, 6, device=dev),
                                  torch.zeros(1, model.motion_dim - 6, device=dev))
        decode = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc:
            sample_window(model, session.smp, torch.zeros(session.hop, D, device=dev), session.base, session.scales,
                          torch.Generator().manual_seed(0))
        window = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc:
            session.audio.model.encode_array(np.zeros(SAMPLE_RATE, np.float32))
        audio = fc.get_total_flops() / FPS
    motion = window / session.hop
    return {"decode": int(decode), "motion": int(motion), "audio": int(audio), "total": int(decode + motion + audio)}


def profile_frame(session: StreamingSession, repeats: int = 3) -> dict:
    """Where a streamed frame's time goes, in ms per frame (best of `repeats`): the audio encoder (a second of
    speech, offline), the motion generator (one guided window of the session's steps, shared by its hop frames) and
    the decoder (hop frames in one batch)."""
    from vasa_lite.motion.animate import frames_of
    from vasa_lite.motion.generate import sample_window

    dev, model, hop = session.device, session.model, session.hop
    D = session.audio.model.width
    speech = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.1
    feats = torch.randn(hop, D, device=dev)
    motion = torch.zeros(hop, model.motion_dim)

    def best(fn):
        out = []
        for _ in range(repeats + 1):                       # the first call warms up
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return min(out[1:])

    with torch.inference_mode():
        audio = best(lambda: session.audio.model.encode_array(speech)) / FPS
        mot = best(lambda: sample_window(model, session.smp, feats, session.base, session.scales,
                                         torch.Generator().manual_seed(0))) / hop
        dec = best(lambda: frames_of(session.latent, session.source, model, motion, session.pose)) / hop
    ms = {"audio": 1000 * audio, "motion": 1000 * mot, "decode": 1000 * dec}
    ms = {k: round(v, 3) for k, v in ms.items()}
    ms["total"] = round(sum(ms.values()), 3)
    ms["frames_per_s"] = round(1000.0 / ms["total"], 1)
    return ms


def compare_paths(latent, source: dict, motion: torch.Tensor, repeats: int = 3) -> dict:
    """The decoder's speed and output on the device paths this machine has, against the plain path (autograd
    off with no_grad): inference_mode, channels-last memory for its 2D convolutions, and on CUDA half precision.
    Each: frames/s and the largest difference from the plain frames (0 to 1 scale)."""
    dev = source["image"].device
    m = motion.to(dev)

    def run():
        return latent.decode(source, m[:, :6], m[:, 6:]).float().clamp(0, 1)

    def timed(ctx_fn):
        best, out = float("inf"), None
        for _ in range(repeats + 1):
            with ctx_fn():
                t = time.perf_counter()
                out = run()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t)
        return len(m) / best, out

    fps0, ref = timed(torch.no_grad)
    res = {"plain": {"frames_per_s": round(fps0, 1), "max_abs_diff": 0.0}}
    fps, out = timed(torch.inference_mode)
    res["inference_mode"] = {"frames_per_s": round(fps, 1), "max_abs_diff": float((out - ref).abs().max())}
    flat = [m for m in (latent.renderer, getattr(latent, "refiner", None)) if m is not None]   # the 2D parts
    for m_ in flat:
        m_.to(memory_format=torch.channels_last)
    try:
        fps, out = timed(torch.inference_mode)
    finally:
        for m_ in flat:
            m_.to(memory_format=torch.contiguous_format)
    res["channels_last"] = {"frames_per_s": round(fps, 1), "max_abs_diff": float((out - ref).abs().max())}
    if dev.type == "cuda":
        fps, out = timed(lambda: torch.autocast("cuda", dtype=torch.float16))
        res["half"] = {"frames_per_s": round(fps, 1), "max_abs_diff": float((out - ref).abs().max())}
    for v in res.values():
        v["speedup"] = round(v["frames_per_s"] / res["plain"]["frames_per_s"], 2)
    return res


def device_gflops(device, seconds: float = 0.5) -> float:
    """Measured float32 matrix-product throughput of the device (GFLOP/s): the practical ceiling."""
    n = 1024
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    (a @ b).sum().item()
    t, k = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        (a @ b).sum().item()
        k += 1
    return 2 * n ** 3 * k / (time.perf_counter() - t) / 1e9


def bench_stream(preset="cpu", seed: int = 0, device=None, frames: "int | None" = None, runs: int = 10,
                 steps: "int | None" = None, hop: "int | None" = None, guidance=None,
                 playout_ms: "float | None" = None) -> dict:
    """`vasa-lite bench stream`: real-time streaming and offline batch speed, as JSON.

    - latency: `runs` fresh streams of 1.2 s of speech fed in real time; first-frame latency p50 and p95 (ms), to
      the frame ready and to the frame shown (after the player's playout buffer);
    - sustained: one real-time stream of `frames` frames (default 12 s) played with the same buffer: shown fps,
      dropped frames, jitter, and the session's compute capacity (frames per second of compute);
    - offline batch: the whole audio at once (`animate`'s path: 50-frame windows, decode in batches), with the
      streaming sampler and with the paper's 50 DDPM steps;
    - FLOPs per frame against the device's measured matrix-product throughput."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.motion.animate import animate, portrait_frame

    p = get_preset(preset)
    dev = pick_device(device)
    portrait = portrait_frame("actor", p.world.size)
    n = int(frames or 12 * FPS)
    if n < FPS:
        raise InputError(f"--frames must be at least {FPS} (one second), got {n}")
    speech = bench_speech(n / FPS)

    def session():
        return StreamingSession(portrait, preset=p, device=dev, seed=seed, steps=steps, hop=hop,
                                prefix=hop, guidance=guidance, playout_ms=playout_ms)

    stream_audio(session(), speech[:SAMPLE_RATE], realtime=False)          # warm-up
    firsts = [stream_audio(session(), speech[:int(1.2 * SAMPLE_RATE)], keep_frames=False).summary()
              for _ in range(max(1, runs))]
    ready, shown = ([f[k] for f in firsts] for k in ("first_frame_ms", "first_shown_ms"))
    rep = stream_audio(session(), speech, keep_frames=False).summary()
    s0 = session()
    out = {"target": "stream", "preset": p.name, "device": str(dev), "threads": torch.get_num_threads(),
           "size_px": p.world.size, "sampler": s0.sampler, "steps": s0.steps, "prefix_frames": s0.prefix,
           "hop_frames": s0.hop, "guidance": s0.scales, "chunk_ms": p.stream.chunk_ms,
           "playout_ms": s0.settings["playout_ms"],
           "latency_ms": {"p50": round(float(np.percentile(ready, 50)), 1), "p95": round(float(np.percentile(ready, 95)), 1),
                          "shown_p50": round(float(np.percentile(shown, 50)), 1),
                          "shown_p95": round(float(np.percentile(shown, 95)), 1),
                          "runs": len(ready), "target_p95": 170},
           "sustained": {k: rep[k] for k in ("frames", "audio_s", "sustained_fps", "dropped_frames", "jitter_ms",
                                             "buffer_for_no_drops_ms", "compute_frames_per_s")} | {"target_fps": 25}}
    offline = {}
    for key, kw in (("stream_sampler", {"sampler": s0.sampler, "steps": s0.steps}),
                    ("ddpm_50_steps", {"sampler": "ddpm", "steps": 50})):
        a = animate(portrait, speech, preset=p, device=dev, seed=seed, guidance=guidance, **kw)
        t = a.timing
        busy = t["encode_s"] + t["motion_s"] + t["decode_s"]
        offline[key] = {"frames": int(len(a.frames)), "frames_per_s": round(len(a.frames) / busy, 1), **kw,
                        "encode_s": t["encode_s"], "motion_s": t["motion_s"], "decode_s": t["decode_s"]}
    offline["target_fps"] = 45
    out["offline"] = offline
    fl = flops_per_frame(s0)
    peak = device_gflops(dev)
    out["flops_per_frame"] = {**{k: round(v / 1e6, 2) for k, v in fl.items()}, "unit": "MFLOP"}
    out["device_gflops_measured"] = round(peak, 1)
    out["frames_per_s_at_device_limit"] = round(peak * 1e9 / fl["total"], 1)
    # the stricter reading of latency: until the first frame is shown, playout buffer included
    out["meets"] = {"sustained_25fps_no_drops": rep["sustained_fps"] >= 25 - 0.05 and rep["dropped_frames"] == 0,
                    "latency_p95_170ms": out["latency_ms"]["shown_p95"] <= 170,
                    "offline_45fps": offline["stream_sampler"]["frames_per_s"] >= 45}
    return out


__all__ += ["bench_stream", "bench_speech", "flops_per_frame", "device_gflops", "profile_frame", "compare_paths"]
