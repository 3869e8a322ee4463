"""Shared fixtures: a composed config on tiny data, without Hydra's app runner."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

# The commands import these once their config is checked (lego_vae.cli.command). Imported here, at collection,
# because botorch and linear_operator attach a StreamHandler to sys.stderr when first imported: inside a test that
# captures stderr (capsys), that would be the test's own stream, closed after it, and every later log line of theirs
# a "--- Logging error ---" in another test's output.
import lego_vae.evaluation.generating  # noqa: F401
import lego_vae.evaluation.run  # noqa: F401
import lego_vae.explorer.serve  # noqa: F401
import lego_vae.pipeline  # noqa: F401
import lego_vae.tuning.study  # noqa: F401
from lego_vae.conf import CONF_DIR
from lego_vae.config.store import SCHEMAS
from lego_vae.config.validate import composition_error
from lego_vae.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
CONF = CONF_DIR

# A hang guard for every subprocess and wait of the tests, never a verdict: no test may judge how fast the
# machine is (a busy laptop is often 3x slower than a quiet one). Only a command that hangs for good hits it.
HANG_GUARD_S = 1800


def wait_until(condition: Callable[[], object], proc: subprocess.Popen | None = None, what: str = "the event"):
    """Poll condition() until it returns something true, and return that: an event (a file, a study state),
    never a time. Fails if proc ends first; HANG_GUARD_S is a hang guard, not a verdict."""
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        got = condition()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            got = condition()  # the event may have come just before the process ended
            if got:
                return got
            raise AssertionError(f"the process ended (status {proc.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"hang guard: {what} did not happen in {HANG_GUARD_S} s")

# Tiny and fast: 16 px faces, a couple of hundred images, a few epochs.
TINY = [
    # The procedural faces, whose labels and judge these tests expect; the default data (ldraw) has its own tests
    # (tests/data/test_ldraw*.py) and the documented commands run on it. A later data=... override wins.
    "data=synthetic",
    "data.image_size=16",
    "data.num_images=160",
    "data.batch_size=32",
    "model.hidden=32",
    "model.latent=4",
    "model.channels=8",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "log.progress=plain",
    "log.images_every_n_epochs=1",
    "pictures.grid=4",
    "pictures.morph_steps=5",
    # a small judge: a few hundred rendered faces, 2 epochs (its metrics are real, its accuracy modest)
    "eval.judge.num_train=300",
    "eval.judge.num_holdout=100",
    "eval.judge.epochs=2",
]


@pytest.fixture
def make_cfg(tmp_path: Path):
    """compose(overrides) -> the train config on tiny data, caching and writing under tmp_path."""

    def make(*overrides: str, config_name: str = "train") -> DictConfig:
        # Composition checks keys and types against the schema (lego_vae.config.store); its error is the command's
        # one line (lego_vae.cli), raised here as the UserError a command would print.
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            try:
                return compose(
                    config_name=config_name,
                    overrides=[*TINY, f"data.cache_dir={tmp_path / 'cache'}",
                               f"paths.output_root={tmp_path / 'outputs'}", *overrides],
                )
            except Exception as err:
                message = composition_error(err, SCHEMAS[config_name])
                if message is None:
                    raise
                raise UserError(message) from None

    return make


def data_module(source: str = "synthetic", **changes):
    """The data module of conf/data/<source>.yaml's defaults with changes (keys of the data section)."""
    from lego_vae.config import default_data
    from lego_vae.data.datamodule import LegoFacesDataModule

    return LegoFacesDataModule.from_config(default_data(source, **changes))


def judge_config(**changes):
    """The default eval.judge section (conf/common.yaml) as its typed object, with changes (e.g. num_train=32)."""
    import dataclasses

    from lego_vae.config import with_defaults

    return dataclasses.replace(with_defaults({}).eval.judge, **changes)


def run_main(main, argv: list[str], monkeypatch) -> int:
    """A command's main() (lego_vae.train.main, ...) run in this process with sys.argv = argv; its exit status.
    Hydra's global state is cleared after it, so the next compose starts afresh."""
    monkeypatch.setattr(sys, "argv", argv)
    loggers = [logging.getLogger(), *(x for x in logging.root.manager.loggerDict.values() if isinstance(x, logging.Logger))]
    handlers = {logger: (list(logger.handlers), logger.level) for logger in loggers}
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        GlobalHydra.instance().clear()
        # Hydra's job logging gives the root logger a handler on this test's captured stderr, closed after it:
        # the handlers and levels of before, so that a later test's log lines do not go to a closed stream.
        for logger, (before, level) in handlers.items():
            logger.handlers[:] = before
            logger.setLevel(level)
    return exit_.value.code
