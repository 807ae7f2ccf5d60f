"""Keep committed notebooks clean: no outputs, no execution counts, python3 kernel, one `parameters` cell.

`vasa-lite notebooks clean` rewrites them; `vasa-lite notebooks check` (and the hygiene test) reports problems.
Cleaning keeps cell tags, which some generic cleaners drop (papermill then injects at the top)."""
from __future__ import annotations

import json
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
COLAB_PREFIX = "https://colab.research.google.com/github/"


def notebook_paths(root: "str | Path | None" = None) -> list[Path]:
    return sorted(Path(root or NOTEBOOK_DIR).glob("*.ipynb"))


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def clean_notebook(path) -> bool:
    """Strip outputs and counts in place, set the python3 kernelspec; returns True if the file changed."""
    path = Path(path)
    text = path.read_text()
    nb = json.loads(text)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        meta = cell.get("metadata", {})
        # Execution timing and collapse state are noise in diffs; tags stay.
        for key in ("execution", "collapsed", "scrolled", "papermill", "ExecuteTime"):
            meta.pop(key, None)
        cell["metadata"] = meta
    md = nb.setdefault("metadata", {})
    md["kernelspec"] = dict(KERNELSPEC)
    md.pop("papermill", None)
    md.pop("widgets", None)
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new)
        return True
    return False


def check_notebook(path) -> list[str]:
    """Every rule the hygiene test enforces, as a list of human-readable problems (empty: clean)."""
    path = Path(path)
    try:
        nb = json.loads(path.read_text())
    except Exception as exc:
        return [f"{path.name}: not valid JSON ({exc})"]
    problems = []
    cells = nb.get("cells", [])
    code = [c for c in cells if c.get("cell_type") == "code"]
    if any(c.get("outputs") for c in code):
        problems.append(f"{path.name}: has stored outputs (run `vasa-lite notebooks clean`)")
    if any(c.get("execution_count") is not None for c in code):
        problems.append(f"{path.name}: has execution counts (run `vasa-lite notebooks clean`)")
    if nb.get("metadata", {}).get("kernelspec", {}).get("name") != "python3":
        problems.append(f"{path.name}: kernelspec is not python3")
    if not cells or cells[0].get("cell_type") != "markdown":
        problems.append(f"{path.name}: first cell must be a markdown title")
    else:
        lines = [ln for ln in _source(cells[0]).strip().splitlines() if ln.strip()]
        if len(lines) != 1 or not lines[0].startswith("# "):
            problems.append(f"{path.name}: first cell must hold only a '# Title' line")
    badge = f"{COLAB_PREFIX}"
    if not any(c.get("cell_type") == "markdown" and badge in _source(c) and path.name in _source(c) for c in cells[1:3]):
        problems.append(f"{path.name}: second cell needs an Open-in-Colab badge linking to notebooks/{path.name}")
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"{path.name}: needs exactly one cell tagged 'parameters' (found {len(tagged)})")
    elif tagged[0].get("cell_type") != "code" or "preset" not in _source(tagged[0]) or "seed" not in _source(tagged[0]):
        problems.append(f"{path.name}: the 'parameters' cell must be code that sets preset and seed")
    return problems
