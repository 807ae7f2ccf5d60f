"""Checkpoints that load safely (weights_only=True) and carry their own story: component, preset, steps,
metrics, package version and a hash of the preset's numbers, so a mismatch is caught before it misleads."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from vasa_lite.errors import CheckpointError

# Pretrained weights ship in data/checkpoints, one file per component and preset.
from vasa_lite.paths import CHECKPOINT_DIR  # noqa: E402


def checkpoint_path(component: str, preset: str, root: "str | Path | None" = None) -> Path:
    return Path(root or CHECKPOINT_DIR) / f"{component}_{preset}.pt"


def component_config(preset, component: str) -> dict:
    """The numbers a component depends on: its own config section plus the world it learns from. Hashing only
    these keeps shipped checkpoints valid when an unrelated section of the preset changes."""
    import dataclasses

    from vasa_lite.config import get_preset

    p = get_preset(preset)
    base = component.split("-")[0]
    section = getattr(p, base, None)
    if section is None:
        section = getattr(getattr(p, "instruments", None), {"syncnet": "sync"}.get(base, base), None)
    if section is None or not dataclasses.is_dataclass(section):
        return {"preset": p.to_dict()}
    return {base: dataclasses.asdict(section), "world": dataclasses.asdict(p.world)}


def config_hash(config: dict) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def save_checkpoint(path, state_dict: dict, *, component: str, preset, steps: int = 0,
                    metrics: "dict | None" = None, extra: "dict | None" = None) -> Path:
    """Write weights plus metadata atomically (temp file, then rename), so a crash never leaves half a file."""
    from vasa_lite import __version__
    from vasa_lite.config import get_preset

    p = get_preset(preset)
    meta = {
        "component": component,
        "preset": p.name,
        "config_hash": config_hash(component_config(p, component)),
        "steps": int(steps),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "version": __version__,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "extra": dict(extra or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    state = {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in state_dict.items()}
    torch.save({"meta": meta, "state_dict": state}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path, *, component: "str | None" = None, preset=None, map_location="cpu") -> tuple[dict, dict]:
    """Return (state_dict, meta). Raises CheckpointError for a missing, corrupt or mismatched file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"checkpoint not found: {path}; train it with `vasa-lite train {component or '<component>'}"
            f" --preset {getattr(preset, 'name', preset) or '<preset>'}` or check the path")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a VASA-lite checkpoint ({type(exc).__name__}); "
                              "delete it and train again") from None
    if not isinstance(blob, dict) or "meta" not in blob or "state_dict" not in blob:
        raise CheckpointError(f"checkpoint {path} has no VASA-lite metadata; it was not written by save_checkpoint")
    meta = blob["meta"]
    if component is not None and meta.get("component") != component:
        raise CheckpointError(f"checkpoint {path} holds component '{meta.get('component')}', expected '{component}'")
    if preset is not None:
        from vasa_lite.config import get_preset

        p = get_preset(preset)
        if meta.get("preset") != p.name:
            raise CheckpointError(f"checkpoint {path} was trained with preset '{meta.get('preset')}', "
                                  f"expected '{p.name}'; pass --preset {meta.get('preset')} or retrain")
        expected = config_hash(component_config(p, meta.get("component", "")))
        if meta.get("config_hash") != expected:
            raise CheckpointError(f"checkpoint {path} was trained with other '{p.name}' preset numbers "
                                  f"(hash {meta.get('config_hash')} vs {expected}); retrain it")
    return blob["state_dict"], meta
