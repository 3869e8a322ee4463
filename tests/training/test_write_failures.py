"""A full disk, a read-only folder, a truncated checkpoint: one line that says what and where, and nothing good lost.

The full disks and read-only folders are real: small tmpfs file systems mounted for the test (which needs root or
CAP_SYS_ADMIN, as in CI; elsewhere those tests skip and say why). The damaged checkpoints are real checkpoints of a
tiny run, cut short.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as L
import optuna
import pytest
import torch
from hydra import compose, initialize_config_dir

from lego_vae.cli import run_app
from lego_vae.config import validate_tune
from lego_vae.errors import UserError
from lego_vae.evaluation.generating import generate
from lego_vae.evaluation.run import evaluate_run
from lego_vae.model.checkpoints import DamagedCheckpoint, load_checkpoint
from lego_vae.pictures import save_gif, save_grid
from lego_vae.runs import load_model
from lego_vae.strict_json import write_json
from lego_vae.training.run import train
from lego_vae.tuning.refit import refit
from tests.conftest import CONF, ROOT, TINY
from tests.tuning.test_tuning import TUNE_TINY

FAST_EVAL = ["eval.judge.enabled=false", "eval.iwae_k=4"]


@pytest.fixture
def small_disk(tmp_path):
    """mount(name, size_kb, read_only=False) -> a real tmpfs of that size at tmp_path/name; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, size_kb: int, read_only: bool = False) -> Path:
        where = tmp_path / name
        where.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("no mount command: a small real file system cannot be made here")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k" + (",ro" if read_only else ""),
                               "tmpfs", str(where)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): {proc.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", str(where)], check=True)


def fill(folder: Path) -> None:
    """Fill folder's file system to the last page: a real full disk (writes until the kernel says ENOSPC)."""
    with open(folder / "filler", "wb", buffering=0) as f:
        while True:
            try:
                f.write(bytes(4096))
            except OSError as err:
                assert err.errno == errno.ENOSPC
                return


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


# ---- a full disk or a read-only folder --------------------------------------------------------------------------


class FillAfterFirstEpoch(L.Callback):
    """Fills the run's disk at the end of epoch 2's training, before its checkpoints; records epoch 1's ones."""

    def __init__(self, run: Path) -> None:
        self.run, self.kept = run, {}

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # runs before ModelCheckpoint's hook of the same moment
        if trainer.current_epoch == 1:
            self.kept = {p.name: digest(p) for p in (self.run / "checkpoints").glob("*")}
            fill(self.run)


def test_a_disk_that_fills_up_keeps_the_last_good_checkpoints(make_cfg, small_disk) -> None:
    # The issue's case: the disk fills after epoch 1. Lightning wrote epoch 2's checkpoint in /tmp and copied it over
    # best.ckpt, cut short by the full disk: epoch 1's good best.ckpt was lost, and the traceback was 76 lines.
    run = small_disk("disk", 8 * 1024) / "run"
    filler = FillAfterFirstEpoch(run)
    checkpoints = run / "checkpoints"
    with pytest.raises(UserError) as caught:
        train(make_cfg("trainer.max_epochs=2"), run, callbacks=[filler])
    message = str(caught.value)
    assert re.fullmatch(rf"checkpoint: cannot write {re.escape(str(checkpoints))}/(best|last)\.ckpt: no space left on "
                        rf"device \(0 B free in {re.escape(str(checkpoints))}\); free space there or choose another "
                        rf"folder; kept intact: best\.ckpt, last\.ckpt \(resume with "
                        rf"ckpt_path={re.escape(str(checkpoints / 'last.ckpt'))}\)", message), message
    assert filler.kept.keys() == {"best.ckpt", "last.ckpt"}
    # Epoch 1's checkpoints, byte for byte, and no temporary file left behind on the full disk.
    assert {p.name: digest(p) for p in checkpoints.iterdir()} == filler.kept
    for name in filler.kept:
        assert load_checkpoint(checkpoints / name)["epoch"] == 0


def test_a_disk_too_small_for_a_checkpoint_is_one_line(make_cfg, small_disk, capsys) -> None:
    # As the command runs it (run_app): one line, exit status 2, no traceback, no partial checkpoint left.
    run = small_disk("disk", 256) / "run"  # room for the config and TensorBoard's events, not for a 320 kB checkpoint
    with pytest.raises(SystemExit) as caught:
        run_app(train, make_cfg("trainer.max_epochs=1"), run)
    assert caught.value.code == 2
    folder = run / "checkpoints"
    # The free space is what is left once the temporary file is gone: less than the checkpoint needs.
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: checkpoint: cannot write {re.escape(str(folder / 'best.ckpt'))}: no space left on "
                        rf"device \([0-9.]+ kB free in {re.escape(str(folder))}\); free space there or choose another "
                        "folder", "\n".join(error_lines(err))), err[-3000:]
    assert "Traceback" not in err
    assert list(folder.iterdir()) == []


def test_a_read_only_output_folder_is_one_line(tmp_path, small_disk) -> None:
    # Hydra makes the output folder before the command runs: that used to be Hydra's traceback (exit 1).
    read_only = small_disk("ro", 1024, read_only=True)
    proc = subprocess.run([sys.executable, "train.py", *TINY, f"data.cache_dir={tmp_path / 'cache'}",
                           f"paths.output_root={read_only / 'outputs'}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [f"error: cannot write {read_only / 'outputs'}: read-only file system (1.0 MB "
                                        f"free in {read_only}); choose a writable folder (the output folder: "
                                        "hydra.run.dir=...)"]


def test_a_read_only_cache_folder_is_one_line(make_cfg, tmp_path, small_disk, capsys) -> None:
    read_only = small_disk("ro", 1024, read_only=True)
    cache = read_only / "cache"
    with pytest.raises(SystemExit) as caught:
        run_app(train, make_cfg(f"data.cache_dir={cache}"), tmp_path / "run")
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: cannot write {cache}: read-only file system (1.0 MB free "
                                                    f"in {read_only}); choose a writable folder"]


@pytest.mark.parametrize("writer", ["metrics.json", "samples.png", "morph.gif"])
def test_a_file_rewritten_on_a_full_disk_keeps_its_good_version(small_disk, writer: str) -> None:
    # metrics.json and the pictures used to be rewritten in place: a full disk left them empty or cut short.
    disk = small_disk("disk", 1024)
    write = {
        "metrics.json": lambda path, n: write_json(path, {"values": list(range(100 * n))}),
        "samples.png": lambda path, n: save_grid(torch.rand(n, 3, 16, 16), path, nrow=2),
        "morph.gif": lambda path, n: save_gif(torch.rand(n, 3, 16, 16), path),
    }[writer]
    path = write(disk / writer, 2)
    good = digest(path)
    fill(disk)
    with pytest.raises(OSError) as caught:
        write(path, 64)  # pages larger than the first (noise does not compress): it cannot fit where that was
    assert digest(path) == good
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(path)
    assert sorted(p.name for p in disk.iterdir()) == sorted([writer, "filler"])  # no temporary file left


# ---- a damaged checkpoint ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny trained run (best.ckpt, last.ckpt); tests copy it before damaging anything."""
    tmp = tmp_path_factory.mktemp("trained")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, *FAST_EVAL, f"data.cache_dir={tmp / 'cache'}",
                                          f"paths.output_root={tmp}"])
    train(cfg, tmp / "run")
    return tmp / "run"


def copy_run(trained: Path, to: Path) -> Path:
    shutil.copytree(trained, to)
    return to


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cut a file short, as a copy or write stopped by a full disk leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def test_a_truncated_checkpoint_is_named_damaged_with_the_way_out(trained, tmp_path) -> None:
    run = copy_run(trained, tmp_path / "run")
    best, last = run / "checkpoints" / "best.ckpt", run / "checkpoints" / "last.ckpt"
    truncate(best)
    size = best.stat().st_size
    with pytest.raises(DamagedCheckpoint) as caught:
        load_checkpoint(best)
    assert str(caught.value) == (f"checkpoint: '{best}' is damaged (truncated: {size / 1000:.1f} kB, its end is missing; "
                                 "a write cut short, e.g. by a full disk or a killed copy); its run's last.ckpt is "
                                 f"intact: use {last}, or delete the damaged file")
    truncate(last, 0.9)
    with pytest.raises(DamagedCheckpoint, match=r"is damaged \(truncated: .*; delete it \(nothing else in its folder "
                                                r"is intact: train again\)$"):
        load_checkpoint(best)
    # A file that is no torch checkpoint at all is not "damaged": it is foreign, as before.
    foreign = tmp_path / "notes.ckpt"
    foreign.write_text("not a checkpoint")
    with pytest.raises(UserError, match="is not a lego-vae checkpoint") as caught:
        load_checkpoint(foreign)
    assert not isinstance(caught.value, DamagedCheckpoint)


def test_evaluate_and_generate_use_last_ckpt_when_best_ckpt_is_truncated(trained, tmp_path, capsys) -> None:
    run = copy_run(trained, tmp_path / "run")
    best, last = run / "checkpoints" / "best.ckpt", run / "checkpoints" / "last.ckpt"
    truncate(best)
    warning = re.compile(rf"^warning: checkpoint: '{re.escape(str(best))}' is damaged \(truncated: [0-9.]+ kB, its end "
                         rf"is missing\); using '{re.escape(str(last))}' instead \(delete the damaged file to silence "
                         rf"this\)$", re.M)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("generate", overrides=[f"checkpoint={run}", "n=3", "pairs=2", "steps=5"])
    written = generate(cfg, tmp_path / "pictures")
    assert [p.name for p in written][:2] == ["samples.png", "morph.png"]
    assert len(warning.findall(capsys.readouterr().err)) == 1
    metrics = evaluate_run(run, out_dir=tmp_path / "evaluated")
    assert metrics["checkpoint"] == str(last.resolve()) and metrics["test_loss"] > 0
    assert len(warning.findall(capsys.readouterr().err)) == 1
    assert load_model(run)[1].model.latent == 4


def test_ckpt_path_last_names_a_truncated_newest_last_ckpt(make_cfg, trained, tmp_path) -> None:
    # It used to pass over the newest run's damaged last.ckpt in silence and resume an older run.
    out = tmp_path / "outputs" / "train"
    older = copy_run(trained, out / "older") / "checkpoints"
    newer = copy_run(trained, out / "newer") / "checkpoints"
    truncate(newer / "last.ckpt")
    stamp = (newer / "last.ckpt").stat().st_mtime
    os.utime(older / "last.ckpt", (stamp - 60, stamp - 60))
    with pytest.raises(DamagedCheckpoint) as caught:
        train(make_cfg("trainer.max_epochs=3", "ckpt_path=last"), out / "third")
    message = str(caught.value)
    newer, older = newer.resolve(), older.resolve()
    assert message.startswith(f"ckpt_path=last: the newest last.ckpt, '{newer / 'last.ckpt'}', is damaged (truncated: ")
    assert message.endswith(f"; resume its run from its intact best.ckpt with ckpt_path={newer / 'best.ckpt'}; or resume "
                            f"the next newest run of this data and model with ckpt_path={older / 'last.ckpt'}; or "
                            "delete it (ckpt_path=last then finds that one)")
    assert not (out / "third" / "checkpoints").exists()  # nothing was trained


def test_a_refit_rerun_with_a_truncated_last_ckpt_says_the_way_out(make_cfg, trained, tmp_path) -> None:
    # A refit killed mid-write left a truncated last.ckpt: every rerun of tune.py ended in "not a lego-vae checkpoint".
    plain = validate_tune(make_cfg(*TUNE_TINY, config_name="tune"))
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(
        params={"hidden": 32, "latent": 4}, value=1.0,
        distributions={"hidden": optuna.distributions.IntDistribution(8, 64),
                       "latent": optuna.distributions.IntDistribution(2, 8)}))
    best = study.best_trial
    run = tmp_path / "study" / "refit" / f"trial_{best.number:04d}"
    shutil.copytree(trained / "checkpoints", run / "checkpoints")
    last = run / "checkpoints" / "last.ckpt"
    truncate(last)
    with pytest.raises(UserError) as caught:
        refit(plain, best, run, tmp_path / "study" / "tb" / "refit_0000")
    assert re.fullmatch(
        rf"refit: '{re.escape(str(last))}' is damaged \(truncated: [0-9.]+ kB, its end is missing\), so the refit of "
        rf"trial 0 cannot resume from it; copy its intact best\.ckpt over it \(cp {re.escape(str(last.with_name('best.ckpt')))} "
        rf"{re.escape(str(last))}\) to resume from that epoch, or delete the folder {re.escape(str(run))} to refit from "
        rf"the start \(rerun the same command\)", str(caught.value)), str(caught.value)
    assert not (run / "metrics.json").exists() and not (tmp_path / "study" / "tb").exists()  # nothing trained
