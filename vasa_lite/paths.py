"""Where things live, so notebooks and the CLI never depend on the current directory."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
CACHE_DIR = DATA_DIR / "cache"
CHECKPOINT_DIR = DATA_DIR / "checkpoints"
FIGURES_DIR = ROOT / "figures"
OUTPUTS_DIR = ROOT / "outputs"
REPO = "vasa-lite/vasa-lite"
BRANCH = "main"


def colab_url(notebook: str) -> str:
    return f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/notebooks/{notebook}"
