"""Run every notebook top to bottom on the smoke preset: papermill injects the parameters into a temporary copy,
then nbval (lax) executes it in this environment. The notebooks' own assert cells make garbage fail."""
import os
import subprocess
import sys

import pytest

from vasa_lite.nbtools import notebook_paths

CELL_TIMEOUT_S = 600


@pytest.mark.notebook
@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_notebook_runs_on_smoke(path, tmp_path):
    papermill = pytest.importorskip("papermill")
    prepared = tmp_path / path.name
    papermill.execute_notebook(str(path), str(prepared), parameters={"preset": "smoke"}, prepare_only=True,
                               kernel_name="python3", progress_bar=False)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
           f"--nbval-cell-timeout={CELL_TIMEOUT_S}", str(prepared)]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{path.name} failed on smoke:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
