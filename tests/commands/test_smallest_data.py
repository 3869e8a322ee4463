"""Every command on the smallest data sets it accepts: it works, or it refuses with one line before any work.

Two data sets: the issue's folder of 11 images (split 9 / 1 / 1), and 3 synthetic faces split 1 / 1 / 1
(data.num_images=3 is the least the config accepts; data.seed=30 with these fractions puts one face in each split).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from lego_vae.errors import UserError
from lego_vae.evaluation.generating import generate
from lego_vae.explorer.session import Explorer
from lego_vae.pipeline import train_and_evaluate
from lego_vae.training.run import train
from lego_vae.tuning.study import tune
from tests.conftest import CONF, HANG_GUARD_S, ROOT, TINY

SIZE, CELL = 16, 16 + 2  # tiny faces; grids pad each by 2 px
ONE_EACH = ["data.num_images=3", "data.seed=30", "data.val_fraction=0.34", "data.test_fraction=0.33"]


def _compose(tmp: Path, *overrides: str, config_name: str = "train"):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name, overrides=[*TINY, "trainer.max_epochs=1", f"data.cache_dir={tmp / 'cache'}",
                                               f"paths.output_root={tmp / 'outputs'}", *overrides])


def _split_sizes(run: Path) -> list[int]:
    from lego_vae.data.datamodule import LegoFacesDataModule
    from lego_vae.runs import load_model

    dm = LegoFacesDataModule.ready(load_model(run)[1].data)
    return [len(dm.split_indices[s]) for s in ("train", "val", "test")]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    """One folder (and one data and judge cache) for the module."""
    return tmp_path_factory.mktemp("smallest")


@pytest.fixture(scope="module")
def folder_run(tmp: Path) -> Path:
    """The issue's run: a folder of 11 images (PNGs written here), which splits 9 / 1 / 1; trained one epoch."""
    root = tmp / "eleven"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(11):  # each face its own colour and noise, so two faces decode differently
        face = np.clip(rng.integers(0, 256, 3) + rng.normal(0, 30, (20, 20, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(face).save(root / f"face{i:03d}.jpg")
    train(_compose(tmp, "data=folder", f"data.root={root}"), tmp / "folder-run")
    assert _split_sizes(tmp / "folder-run") == [9, 1, 1]
    return tmp / "folder-run"


@pytest.fixture(scope="module")
def one_each_run(tmp: Path) -> tuple[Path, dict]:
    """3 synthetic faces, one per split, trained and evaluated as train.py does it: (run folder, metrics)."""
    # fp32: two epochs on one face leave the model nearly untrained, and in bf16 its decoder can draw both ends of
    # a morph as the same 8-bit image, which would hide whether the morph has two different ends.
    metrics = train_and_evaluate(_compose(tmp, *ONE_EACH, "trainer.precision=32-true"), tmp / "one-each")
    assert _split_sizes(tmp / "one-each") == [1, 1, 1]
    return tmp / "one-each", metrics


def _generate_cfg(checkpoint: Path, **kw) -> dict:
    cfg = {"checkpoint": str(checkpoint), "n": 2, "temperature": 1.0, "seed": 0, "steps": 5, "pairs": 4, "a": None,
           "b": None, "prior": "normal", "morph": {"mode": "linear"}, "traversal": {"dims": 2, "steps": 3, "range": 3.0},
           "inputs": None, "classes": {"factor": None, "values": [], "per_class": 2}}
    return {**cfg, **kw}


def _cells(path: Path, row: int = 0) -> list[np.ndarray]:
    """The faces of one row of a saved grid, left to right."""
    grid = np.asarray(Image.open(path).convert("RGB"))
    top = 2 + row * CELL
    return [grid[top : top + SIZE, 2 + i * CELL : 2 + i * CELL + SIZE] for i in range((grid.shape[1] - 2) // CELL)]


def test_generate_on_a_run_with_one_test_face_morphs_a_test_and_a_validation_face(folder_run, tmp, capsys) -> None:
    # The issue: `generate checkpoint=RUN` (pairs=4) and pairs=1 stopped with a traceback from torch.stack([]).
    for pairs in (4, 1):
        out = tmp / f"generate-pairs{pairs}"
        written = generate(_generate_cfg(folder_run, pairs=pairs), out)
        assert [p.name for p in written] == ["samples.png", "morph.png", "morph.gif", "traversal.png"]
        assert Image.open(out / "morph.png").size == (5 * CELL + 2, CELL + 2)  # one row: the only pair there is
        row = _cells(out / "morph.png")
        assert len(row) == 5 and not np.array_equal(row[0], row[-1])  # two different faces, not one with itself
        said = capsys.readouterr().out
        assert "morph: the test split has 1 face, so the 1 validation face is drawn from too" in said
        assert ("1 pair of 2 faces, not pairs=4" in said) == (pairs == 4)
    # The command itself: exit 0, no traceback.
    proc = subprocess.run([sys.executable, "-m", "lego_vae.generate", f"checkpoint={folder_run}",
                           f"hydra.run.dir={tmp / 'generate-cli'}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert (tmp / "generate-cli" / "morph.gif").is_file()


def test_run_pictures_and_the_explorer_morph_two_faces_when_the_test_split_has_one(one_each_run) -> None:
    run, _ = one_each_run
    # train.py's morph.png went from the one test face to itself: a row of one face.
    row = _cells(run / "morph.png")
    assert len(row) == 5 and not np.array_equal(row[0], row[-1])
    explorer = Explorer.from_checkpoint(run)
    assert len(explorer.gallery(24)) == 2  # the test face, then the validation face
    a, b = explorer.test_face(0), explorer.test_face(1)
    assert (a.label, b.label) == ("test face 0", "val face 0") and not a.image.equal(b.image)
    assert explorer.morph_strip(a, b, 5, "slerp").isfinite().all()


def test_active_units_of_one_test_face_are_null_with_a_reason(one_each_run) -> None:
    # One face varies in nothing: every dimension looked collapsed ("active units 0/4"), a wrong signal.
    run, metrics = one_each_run
    saved = json.loads((run / "metrics.json").read_text())
    for m in (metrics, saved):
        assert m["active_units"] is None and m["active_units_reason"] == "active units need at least 2 images, got 1"
        assert m["latent"] == 4
        # The other sample metrics of one test face were already null with a reason.
        assert m["fid"] is None and "at least 2 images" in m["fid_reason"]
        assert m["precision"]["normal"] is None and m["pr_reason"]
    assert "active_units_reason" in (run / "report.html").read_text()


def test_a_mixture_prior_on_one_training_face_is_refused_before_any_work(one_each_run, tmp) -> None:
    run, _ = one_each_run
    expected = "sample.prior=gmm: the train split has 1 face, too few for a mixture of 1 component"
    # train.py: refused before training (it used to train, then fail in scikit-learn with a traceback).
    with pytest.raises(UserError, match=expected):
        train(_compose(tmp, *ONE_EACH, "sample.prior=gmm"), tmp / "gmm-run")
    assert not (tmp / "gmm-run" / "checkpoints").exists()
    # tune.py: refused before its first trial (it used to train every trial and fail at the refit).
    with pytest.raises(UserError, match=expected):
        tune(_compose(tmp, *ONE_EACH, "sample.prior=gmm", "study.n_trials=1", "study.n_initial=1", "study.epochs=1",
                      "refit.epochs=1", "pruner.kind=none", "sampler.kind=random", config_name="tune"), tmp / "gmm-study")
    assert not (tmp / "gmm-study" / "study.db").exists()
    # python -m lego_vae.evaluate with sample.prior=gmm on such a run: one line, exit status 2.
    proc = subprocess.run([sys.executable, "-m", "lego_vae.evaluate", f"checkpoint={run}", "sample.prior=gmm",
                           f"out_dir={tmp / 'gmm-eval'}", f"hydra.run.dir={tmp / 'gmm-eval-hydra'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}")
    assert not (tmp / "gmm-eval").exists()
