import json
import shutil

import pytest

from vasa_lite.nbtools import check_notebook, clean_notebook, notebook_paths

NOTEBOOKS = notebook_paths()


def test_there_are_notebooks():
    assert any(p.name.startswith("00_") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    assert check_notebook(path) == []


def test_clean_strips_outputs_but_keeps_tags(tmp_path):
    src = NOTEBOOKS[0]
    dirty = tmp_path / src.name
    shutil.copy(src, dirty)
    nb = json.loads(dirty.read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]
    code["execution_count"] = 3
    nb["metadata"]["kernelspec"]["name"] = "venv"
    dirty.write_text(json.dumps(nb))
    assert len(check_notebook(dirty)) == 3
    assert clean_notebook(dirty) is True
    assert check_notebook(dirty) == []
    assert clean_notebook(dirty) is False  # idempotent
