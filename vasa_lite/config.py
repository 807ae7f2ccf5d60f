"""Named presets. Scale is configuration, not different code: `smoke` (CI, seconds), `cpu` (a laptop,
minutes) and `gpu` (Colab T4 or bigger, larger resolution) run the same code with other numbers."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from vasa_lite.errors import InputError


@dataclass(frozen=True)
class WorldConfig:
    size: int = 128                # rendered frame size in px (64, 128 or 256)
    n_train_actors: int = 300      # disjoint seed ranges per split, see world.actor.SPLITS
    n_val_actors: int = 20
    n_test_actors: int = 30
    clips_per_actor: int = 2
    min_words: int = 6             # sentence length range of the random text generator
    max_words: int = 14
    languages: tuple = ("en", "es", "fr", "de", "it", "pt", "nl", "pl", "sv", "cs")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    world: WorldConfig = field(default_factory=WorldConfig)
    batch_size: int = 16
    workers: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Short stable hash of every number in the preset: checkpoints record it to catch mismatches."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        description="CI: tiny data and models, seconds per notebook",
        world=WorldConfig(size=64, n_train_actors=6, n_val_actors=2, n_test_actors=2, clips_per_actor=1,
                          min_words=3, max_words=6, languages=("en", "es", "de")),
        batch_size=8,
    ),
    "cpu": Preset(
        name="cpu",
        description="a laptop CPU: minutes per notebook, 128 px",
        world=WorldConfig(size=128, n_train_actors=320, n_val_actors=20, n_test_actors=40, clips_per_actor=2),
        batch_size=16,
    ),
    "gpu": Preset(
        name="gpu",
        description="Colab T4 or bigger: 256 px, more actors and clips",
        world=WorldConfig(size=256, n_train_actors=1000, n_val_actors=50, n_test_actors=100, clips_per_actor=4),
        batch_size=32,
        workers=2,
    ),
}


def get_preset(name: "str | Preset") -> Preset:
    """Look a preset up by name; an unknown name is an InputError that lists the accepted ones."""
    if isinstance(name, Preset):
        return name
    try:
        return PRESETS[str(name)]
    except KeyError:
        raise InputError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}") from None
