"""Device choice and seeding, shared by every chapter (d2l's try_gpu, for three backends)."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def pick_device(device: "str | torch.device | None" = None) -> torch.device:
    """The requested device, or the best one present: CUDA, then MPS, then CPU."""
    if device is not None and str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (all devices); returns a CPU generator seeded the same, for local use."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(n: "int | None" = None) -> int:
    """Use every core for intra-op parallelism (torch's default can be lower in notebooks)."""
    n = n or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n
