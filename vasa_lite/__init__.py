"""VASA-lite: VASA-1 rebuilt at small scale, one chapter at a time."""
__version__ = "0.1.0"

from vasa_lite.config import PRESETS, get_preset  # noqa: E402
from vasa_lite.device import pick_device, seed_everything  # noqa: E402
from vasa_lite.errors import CheckpointError, InputError, VasaError  # noqa: E402

__all__ = ["PRESETS", "get_preset", "pick_device", "seed_everything", "VasaError", "InputError", "CheckpointError",
           "__version__"]
