"""VASA-lite: VASA-1 rebuilt at small scale, one chapter at a time."""
__version__ = "0.1.0"

from vasa_lite.config import PRESETS, get_preset  # noqa: E402
from vasa_lite.device import pick_device, seed_everything  # noqa: E402
from vasa_lite.errors import CheckpointError, InputError, VasaError  # noqa: E402

__all__ = ["PRESETS", "get_preset", "pick_device", "seed_everything", "VasaError", "InputError", "CheckpointError",
           "animate", "__version__"]


def __getattr__(name: str):
    """`vasa_lite.animate` is imported on first use (vasa_lite.motion.animate), so `import vasa_lite` stays light."""
    if name == "animate":
        from vasa_lite.motion.animate import animate

        return animate
    raise AttributeError(f"module 'vasa_lite' has no attribute {name!r}")
