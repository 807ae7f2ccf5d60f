"""`vasa-lite bench TARGET`: speed measured as JSON, never asserted in unit tests."""
from __future__ import annotations

import time


def bench_world(preset="cpu", seed: int = 0, device=None, frames=None) -> dict:
    """Batched render throughput at 64/128/256 px, and how fast speech and performances are made."""
    import numpy as np
    import torch

    from vasa_lite.device import pick_device, set_threads
    from vasa_lite.world.perform import perform
    from vasa_lite.world.render import bench_render
    from vasa_lite.world.speech import random_speech

    threads = set_threads()
    dev = pick_device(device)
    out = {"target": "world", "device": str(dev), "threads": threads, "torch": str(torch.__version__), "render": {}}
    targets = {64: 300, 128: 100, 256: 25}
    for size, target in targets.items():
        n = frames or {64: 512, 128: 256, 256: 64}[size]
        r = bench_render(size, n_frames=n, device=dev)
        out["render"][f"{size}px"] = {**r, "target_frames_per_s": target, "meets_target": r["frames_per_s"] >= target}
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    audio_s = 0.0
    for _ in range(5):
        sp = random_speech(rng, lang="en")
        audio_s += len(sp.audio) / 16000
        perform(sp, seed=seed)
    wall = time.perf_counter() - t0
    out["speech_and_performance"] = {"audio_s": round(audio_s, 2), "wall_s": round(wall, 3),
                                     "x_real_time": round(audio_s / wall, 1)}
    return out


def bench_audio(**kwargs) -> dict:
    """Offline and streaming x-real-time of the audio encoder, and its lookahead (see vasa_lite.audio)."""
    from vasa_lite.audio import bench_audio as run

    return run(**kwargs)


def bench_instruments(**kwargs) -> dict:
    """Frames per second of each instrument and of `metrics.evaluate` (see vasa_lite.metrics)."""
    from vasa_lite.metrics import bench_instruments as run

    return run(**kwargs)


def bench_latent(**kwargs) -> dict:
    """Decoder frames per second of the face latent space, batched (see vasa_lite.latent.evaluate)."""
    from vasa_lite.latent.evaluate import bench_latent as run

    return run(**kwargs)


def bench_motion(**kwargs) -> dict:
    """Motion generation frames per second, 50 DDPM and 10 DDIM steps with guidance (see vasa_lite.motion.evaluate)."""
    from vasa_lite.motion.evaluate import bench_motion as run

    return run(**kwargs)


def bench_stream(**kwargs) -> dict:
    """Real-time streaming (latency p50/p95, sustained fps, dropped frames, jitter) and offline batch frames per
    second, with FLOPs per frame against the device's limit (see vasa_lite.stream)."""
    from vasa_lite.stream import bench_stream as run

    return run(**kwargs)


def bench_studio(**kwargs) -> dict:
    """The interactive studio: still-portrait editor response per slider change (p50/p95 ms, target 100 ms) and one
    Generate (see vasa_lite.studio)."""
    from vasa_lite.studio import bench_studio as run

    return run(**kwargs)


BENCHES = {"world": bench_world, "audio": bench_audio, "instruments": bench_instruments, "latent": bench_latent,
           "motion": bench_motion, "stream": bench_stream, "studio": bench_studio}


def run_bench(target: str, **kwargs) -> dict:
    return BENCHES[target](**kwargs)
