"""evaluate_run and `python -m lego_vae.evaluate`: a run evaluated again gives the numbers training wrote."""

import json
import subprocess
import sys

import pytest

from lego_vae.errors import UserError
from lego_vae.evaluation.run import evaluate_run
from tests.conftest import HANG_GUARD_S, ROOT

# What may differ between two evaluations of one checkpoint: the clock, and where the checkpoint was read from.
VOLATILE = {"seconds", "checkpoint"}


def same_numbers(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    assert {k: v for k, v in a.items() if k not in VOLATILE} == {k: v for k, v in b.items() if k not in VOLATILE}


def test_evaluating_a_checkpoint_again_gives_the_numbers_training_wrote(gmm_run, tmp_path) -> None:
    run_dir, trained = gmm_run
    assert json.loads((run_dir / "metrics.json").read_text()) == trained
    again = evaluate_run(run_dir, out_dir=tmp_path / "again")
    same_numbers(trained, again)
    assert again["fd_judge"]["gmm"] is not None and again["test_log_sigma"] == trained["test_log_sigma"]
    for name in ("metrics.json", "report.html", "samples.png", "reconstructions.png", "morph.gif", "traversal.png"):
        assert (tmp_path / "again" / name).is_file()
    assert json.loads((run_dir / "metrics.json").read_text()) == trained  # the run's own files were left alone


def test_the_evaluate_command_rewrites_the_run_or_writes_elsewhere(gmm_run, tmp_path) -> None:
    run_dir, trained = gmm_run
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "lego_vae.evaluate", f"checkpoint={run_dir}", f"out_dir={out}",
                           "eval.iwae_k=2", "sample.gmm_components=[2]", f"hydra.run.dir={tmp_path / 'hydra'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0].startswith(f"evaluate {run_dir / 'checkpoints' / 'best.ckpt'} -> {out}")
    got = json.loads((out / "metrics.json").read_text())
    assert got["iwae_k"] == 2 and trained["iwae_k"] == 4  # the override took effect ...
    assert got["psnr"] == trained["psnr"] and got["attr_acc_recon"] == trained["attr_acc_recon"]  # ... nothing else
    assert f"wrote {out / 'report.html'}" in proc.stdout
    # Other mixture sizes: a mixture fitted now, named in metrics.json; the checkpoint keeps the one it holds.
    assert got["gmm_prior"]["candidates"] == [2] and got["gmm_prior"]["components"] == 2
    assert trained["gmm_prior"]["candidates"] == [1, 2]
    assert json.loads((run_dir / "metrics.json").read_text()) == trained


def test_evaluate_refuses_to_change_what_was_trained(gmm_run, tmp_path) -> None:
    run_dir, _ = gmm_run
    proc = subprocess.run([sys.executable, "-m", "lego_vae.evaluate", f"checkpoint={run_dir}", "model.latent=3",
                           f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 2
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        "error: model.latent: evaluate keeps the checkpoint's model, data and training settings; it can change "
        "eval.*, sample.*, pictures.*, seed and data.cache_dir"]


def test_a_folder_without_checkpoints_is_one_line(tmp_path) -> None:
    with pytest.raises(UserError, match="a folder without checkpoints/best.ckpt or last.ckpt"):
        evaluate_run(tmp_path)
