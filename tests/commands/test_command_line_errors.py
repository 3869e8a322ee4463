"""Mistakes a newcomer made on the command line (a review, 2026-12-05): each is one line and exit status 2, before
any data is prepared or anything is written where it should not be."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from lego_vae import train as train_command
from lego_vae import tune as tune_command
from lego_vae.cli import run_app
from lego_vae.errors import UserError
from lego_vae.pipeline import train_and_evaluate
from lego_vae.training.trainer import check_accelerator
from tests.conftest import HANG_GUARD_S, ROOT, TINY, run_main

NEEDS_FOLDER = "a file stands where a folder is needed"


@pytest.mark.parametrize("below", ["", "sub"])
def test_a_file_given_as_the_cache_folder_is_one_line_and_stays_as_it_was(below, make_cfg, tmp_path, capsys) -> None:
    # It was a FileExistsError (or NotADirectoryError) traceback from the datamodule's mkdir.
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    cache = a_file / below if below else a_file
    with pytest.raises(SystemExit) as exit_:
        run_app(train_and_evaluate, make_cfg(f"data.cache_dir={cache}"), tmp_path / "run")
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"error: cannot write {re.escape(str(cache))}: {NEEDS_FOLDER} \(.* free in .*\); move that file or choose "
        "another folder", lines[0]), lines
    assert a_file.read_text() == "mine"


def test_a_file_given_as_the_run_folder_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    # Hydra's mkdir of the run folder: it was a FileExistsError traceback.
    a_file = tmp_path / "run"
    a_file.write_text("mine")
    assert run_main(train_command.main, ["train.py", f"hydra.run.dir={a_file}"], monkeypatch) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"error: cannot write {re.escape(str(a_file))}: {NEEDS_FOLDER} \(.* free in {re.escape(str(tmp_path))}\); "
        r"move that file or choose another folder \(the output folder: hydra.run.dir=...\)", lines[0]), lines
    assert a_file.read_text() == "mine"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: trainer.accelerator=gpu is valid here")
@pytest.mark.parametrize("main", [train_command.main, tune_command.main], ids=["train", "tune"])
def test_a_gpu_this_machine_lacks_is_refused_before_any_data(main, tmp_path, monkeypatch, capsys) -> None:
    # It was Lightning's MisconfigurationException traceback, after the faces had been rendered into the cache.
    argv = ["cmd.py", *TINY, "trainer.accelerator=gpu", f"data.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    assert run_main(main, argv, monkeypatch) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: trainer.accelerator=gpu: this machine has no GPU that torch can use; use trainer.accelerator=auto or "
        "cpu"]
    assert not (tmp_path / "cache").exists()


def test_an_accelerator_plain_torch_cannot_run_is_refused(tmp_path, monkeypatch, capsys) -> None:
    # tpu was torch_xla's ModuleNotFoundError traceback.
    argv = ["train.py", *TINY, "trainer.accelerator=tpu", f"data.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    assert run_main(train_command.main, argv, monkeypatch) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: trainer.accelerator=tpu: must be one of auto, cpu, gpu, cuda, mps"]
    assert not (tmp_path / "cache").exists()


def test_check_accelerator_accepts_what_this_machine_has() -> None:
    for name in ("auto", "cpu"):
        check_accelerator(name, "auto")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no GPU"):
            check_accelerator("cuda", 1)
    if not torch.backends.mps.is_available():
        with pytest.raises(UserError, match="MPS"):
            check_accelerator("mps", 1)


@pytest.mark.parametrize(("flag", "message"), [
    ("--bogus-flag", "unrecognized arguments: --bogus-flag"),
    ("--cfg=jobs", "argument --cfg/-c: invalid choice: 'jobs' (choose from 'job', 'hydra', 'all')"),
])
def test_an_unknown_or_bad_flag_is_one_line(flag, message, tmp_path, monkeypatch, capsys) -> None:
    # It was argparse's seven-line usage block, then its message.
    assert run_main(train_command.main, ["train.py", flag, f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {message} (--help lists the flags)"]
    assert not (tmp_path / "run").exists()


CHECKED_FIRST = {  # a command, and a mistake its config check finds (exit 2) before its own modules are imported
    "train": ["model.latent=0"],
    "tune": ["study.n_trials=0"],
    "evaluate": ["checkpoint=/no/such/run", "eval.iwae_k=0"],
    "generate": ["checkpoint=/no/such/run", "n=0"],
    "explore": ["checkpoint=/no/such/run", "grid=0"],
}


def test_a_mistake_in_the_config_is_found_before_lightning_is_imported(tmp_path) -> None:
    # Each command checks its composed config before importing its pipeline (lego_vae.cli.command), so that a typo
    # is its one line without loading Lightning, the training or the evaluation code: in one fresh interpreter,
    # every command's main() with its mistake, then which of those modules were loaded.
    script = f"""
import sys
from importlib import import_module
for name, overrides in {CHECKED_FIRST!r}.items():
    sys.argv = [name, *overrides, "hydra.run.dir={tmp_path}/" + name]
    try:
        import_module("lego_vae." + name).main()
    except SystemExit as exit_:
        print(name, exit_.code)
print(sorted(m for m in sys.modules if m.split(".")[0] == "lightning" or m in
             ("lego_vae.pipeline", "lego_vae.training", "lego_vae.evaluation", "lego_vae.tuning", "lego_vae.explorer")))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    assert proc.stdout.splitlines() == [f"{name} 2" for name in CHECKED_FIRST] + ["[]"], proc.stdout + proc.stderr
    errors = proc.stderr.splitlines()
    assert len(errors) == len(CHECKED_FIRST) and all(e.startswith("error: ") for e in errors), errors
