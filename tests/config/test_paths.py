"""A relative path means the folder where the command was typed, whatever Hydra's working directory is (#25, kind 7).

In-process, the folder the command was typed in is this process's working directory (no Hydra app runs); the
subprocess tests run the commands with hydra.job.chdir=true, where Hydra works inside the run folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from lego_vae.config import validated, with_defaults
from lego_vae.config.commands import EvaluateConfig, ExploreConfig, GenerateConfig, TuneConfig
from lego_vae.config.paths import typed_url
from lego_vae.config.schema import TrainConfig
from tests.conftest import CONF, ROOT, TINY

TRAIN_PATHS = {"data.root": "faces", "data.cache_dir": "cache", "eval.inception_weights": "weights/inception.pth",
               "paths.output_root": "out", "ckpt_path": "old/checkpoints/last.ckpt"}
# Every path key of every command, as given relative on its command line.
COMMANDS = {
    "train": (TrainConfig, ["data=folder"], TRAIN_PATHS),
    "tune": (TuneConfig, ["data=folder"], {**TRAIN_PATHS, "study.storage": "studies/s.db"}),
    "evaluate": (EvaluateConfig, ["data=folder"], {**TRAIN_PATHS, "checkpoint": "runs/a", "out_dir": "again"}),
    "generate": (GenerateConfig, [], {"checkpoint": "runs/a", "a": "me.png", "b": "you.jpg", "inputs": "mine"}),
    "explore": (ExploreConfig, [], {"checkpoint": "runs/a/checkpoints/best.ckpt"}),
}


def path_keys(schema: type, prefix: str = "") -> set[str]:
    """The dotted keys of the schema's path() fields."""
    hints, keys = typing.get_type_hints(schema), set()
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[f.name]):
            keys |= path_keys(hints[f.name], f"{prefix}{f.name}.")
        elif f.metadata.get("path"):
            keys.add(f"{prefix}{f.name}")
    return keys


def get(plain, key: str):
    for part in key.split("."):
        plain = getattr(plain, part)
    return plain


@pytest.mark.parametrize("command", COMMANDS)
def test_every_relative_path_of_a_command_means_the_folder_it_was_typed_in(tmp_path, monkeypatch, command) -> None:
    schema, groups, given = COMMANDS[command]
    assert path_keys(schema) == set(given)  # a new path key is tested here too
    monkeypatch.chdir(tmp_path)
    overrides = [f"{k}={'sqlite:///' + v if k == 'study.storage' else v}" for k, v in given.items()]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=command, overrides=[*groups, *overrides])
    plain = validated(cfg, schema)
    for key, value in given.items():
        expected = str(tmp_path / value)
        assert get(plain, key) == (f"sqlite:///{expected}" if key == "study.storage" else expected), key


def test_words_urls_and_absolute_paths_stay_as_they_are(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["ckpt_path=last", "data.cache_dir='~/cache'",
                                                      f"paths.output_root={tmp_path / 'abs'}"])
    plain = validated(cfg, TrainConfig)
    assert plain.ckpt_path == "last"
    assert plain.data.cache_dir == str(tmp_path / "home" / "cache")
    assert plain.paths.output_root == str(tmp_path / "abs") and plain.data.root is None
    assert typed_url("sqlite:///s.db?timeout=5") == f"sqlite:///{tmp_path / 's.db'}?timeout=5"
    for url in ("sqlite:////abs/s.db", "sqlite://", "sqlite:///:memory:", "postgresql://u:p@host/db"):
        assert typed_url(url) == url


def test_a_checkpoints_relative_paths_mean_the_folder_the_command_was_typed_in(tmp_path, monkeypatch) -> None:
    # Runs written before paths were stored absolute hold them as they were typed.
    monkeypatch.chdir(tmp_path)
    stored = {"data": {"source": "folder", "root": "faces", "cache_dir": ".cache/lego_vae"}, "model": {"arch": "conv"}}
    plain = with_defaults(stored)
    assert plain.data.root == str(tmp_path / "faces")
    assert plain.data.cache_dir == str(tmp_path / ".cache" / "lego_vae")


def faces(folder: Path, n: int = 40) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"face{i:03d}.png")


def test_chdir_true_finds_relative_paths_where_the_command_was_typed(tmp_path) -> None:
    # hydra.job.chdir=true runs the command inside its run folder. A relative data.root used to be "does not exist"
    # there, and the default cache (data.cache_dir=.cache/lego_vae) moved into every run folder.
    typed = tmp_path / "here"
    faces(typed / "photos")
    tiny = [o for o in TINY if not o.startswith(("data.num_images", "data="))]  # TINY's data=synthetic: not here
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "hydra.job.chdir=true", "data=folder",
                           "data.root=photos", "eval.judge.enabled=false", *tiny, "trainer.max_epochs=1"],
                          cwd=typed, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = (typed / "outputs" / "train").iterdir()  # paths.output_root=outputs: where the command was typed
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "metrics.json").is_file()
    assert list((typed / ".cache" / "lego_vae").glob("folder-16px-*.pt"))  # the default cache, typed-in folder
    assert not (run / ".cache").exists() and not (run / "outputs").exists()
    config = (run / "config.yaml").read_text()
    assert f"root: {typed / 'photos'}" in config and f"cache_dir: {typed / '.cache' / 'lego_vae'}" in config

    # evaluate, with the same relative checkpoint, out_dir and data.cache_dir.
    rel = run.relative_to(typed)
    proc = subprocess.run([sys.executable, "-m", "lego_vae.evaluate", "hydra.job.chdir=true", f"checkpoint={rel}",
                           "out_dir=again", "data.cache_dir=.cache/lego_vae", "eval.judge.enabled=false",
                           "eval.iwae_k=2"],
                          cwd=typed, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # this checkout's lego_vae, from any folder
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((typed / "again" / "metrics.json").read_text())
    assert metrics["checkpoint"] == str((run / "checkpoints" / "best.ckpt").resolve())
    # One decoded cache, read by both commands; nothing decoded again in a run folder.
    assert [p.parent for p in typed.rglob("folder-16px-*.pt")] == [typed / ".cache" / "lego_vae"]
