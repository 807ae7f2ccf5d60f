"""Where things live, so notebooks and the CLI never depend on the current directory."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
CACHE_DIR = DATA_DIR / "cache"
# VASA_LITE_CHECKPOINTS points training and loading at another folder (a trial run that must not touch the shipped
# checkpoints, or an instructor's own set)
CHECKPOINT_DIR = Path(os.environ.get("VASA_LITE_CHECKPOINTS") or DATA_DIR / "checkpoints")
FIGURES_DIR = ROOT / "figures"
OUTPUTS_DIR = ROOT / "outputs"
REPO = "vasa-lite/vasa-lite"
BRANCH = "main"


def colab_url(notebook: str) -> str:
    return f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/notebooks/{notebook}"
