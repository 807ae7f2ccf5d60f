"""What a student's machine has: device, versions, ffmpeg and espeak-ng. Notebook 00 and `vasa-lite doctor` print it."""
from __future__ import annotations

import platform
import subprocess


def environment_report() -> dict:
    import numpy
    import torch

    from vasa_lite import __version__
    from vasa_lite.device import pick_device

    report = {
        "vasa_lite": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "device": str(pick_device()),
        "threads": torch.get_num_threads(),
    }
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        first = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=20).stdout.splitlines()[0]
        report["ffmpeg"] = first
    except Exception as exc:  # reported, not raised: the report is how the student finds out
        report["ffmpeg"] = f"MISSING ({exc})"
    try:
        import espeakng_loader

        lib = espeakng_loader.get_library_path()
        report["espeak_ng"] = str(lib)
    except Exception as exc:
        report["espeak_ng"] = f"MISSING ({exc})"
    return report
