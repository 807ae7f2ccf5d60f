"""Shared fixtures: small, generic helpers that any test may use."""
import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")   # headless: no display on CI


@pytest.fixture
def tone():
    """tone(freq_hz, seconds, sr=16000, amp=0.3) -> float32 sine wave."""

    def make(freq: float = 440.0, seconds: float = 1.0, sr: int = 16_000, amp: float = 0.3) -> np.ndarray:
        t = np.arange(int(round(seconds * sr))) / sr
        return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    return make


@pytest.fixture(scope="session")
def ffmpeg():
    """Path of the ffmpeg binary the course uses, for tests that make media files with it."""
    from vasa_lite.media import ffmpeg_exe

    return ffmpeg_exe()


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one torch thread: small models are faster so, and steady on a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
