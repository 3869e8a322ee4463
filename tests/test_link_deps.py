"""scripts/link-deps.py, which check-install.sh uses to give a fresh venv the dev venv's runtime dependencies."""

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "link-deps.py"


def test_the_closure_is_the_runtime_requirements_without_the_extras(tmp_path):
    subprocess.run([sys.executable, str(SCRIPT), "lego-vae", str(tmp_path)], check=True)
    names = {p.name for p in tmp_path.iterdir()}
    for needed in ("torch", "torchvision", "lightning", "optuna", "optuna_integration", "hydra", "botorch"):
        assert needed in names, needed
        assert (tmp_path / needed).is_symlink() and (tmp_path / needed / "__init__.py").exists()
    # the dev and app extras and the package itself stay out, so the explorer's refusal is checked for real
    assert not {"gradio", "playwright", "pytest", "lego_vae"} & names
    assert not any(n.startswith("__editable__") for n in names)


def test_a_missing_distribution_is_one_line():
    closure = runpy.run_path(str(SCRIPT))["closure"]
    with pytest.raises(SystemExit, match="^error: no-such-dist-xyz is required but not installed in "):
        closure("no-such-dist-xyz")
