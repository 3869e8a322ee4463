"""Running a package function from an entry point: a user's mistake is one line and exit code 2.

In a Hydra multirun (`python train.py -m key=a,b`) Hydra runs the jobs one after another in this process, so a
job's mistake must not exit: its line names the job, the other jobs run, and `finish` (after Hydra returned)
exits with the worst status of the failed jobs, after one line listing them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from lego_vae.conf import CONF_DIR
from lego_vae.config.store import SCHEMAS
from lego_vae.config.validate import composition_error, parsed_overrides, validate_tune, validated
from lego_vae.errors import Interrupted, UserError, WorkersFailed, out_of_memory
from lego_vae.files import is_storage_error, storage_message, write_bytes

FAILED_JOBS: list[tuple[str, int]] = []  # the name and exit status of each failed job of this multirun


def current_job() -> str | None:
    """This job's name when Hydra runs it in a multirun, `job N (its swept overrides)` (its values of the
    command line's sweeps: `model.latent=0` of `-m model.latent=0,4`); None otherwise."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hydra_cfg = HydraConfig.get()
    keys = {o.input_line.split("=", 1)[0] for o in parsed_overrides(sys.argv[1:]) if o.is_sweep_override()}
    swept = " ".join(o for o in hydra_cfg.overrides.task if o.split("=", 1)[0] in keys)
    return f"job {hydra_cfg.job.num} ({swept})" if swept else f"job {hydra_cfg.job.num}"


def _fail(message: str, status: int) -> None:
    """Print message as one line; exit with status, or in a multirun record the job and let Hydra go on."""
    job = current_job()
    if job is None:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(status)
    FAILED_JOBS.append((job, status))
    print(f"error: {job}: {message}", file=sys.stderr, flush=True)


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _warning_line(show: Callable[..., None], message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: Any = None, line: str | None = None) -> None:
    """Our own warnings (a skipped image, a link not followed, ...) as one `warning: <message>` line on stderr;
    any other library's as show (Python's way) prints them."""
    if issubclass(category, UserWarning) and os.path.abspath(filename).startswith(_PACKAGE):
        print(f"warning: {message}", file=file or sys.stderr, flush=True)
    else:
        show(message, category, filename, lineno, file, line)


def run_app(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call fn; a UserError, a write the disk refused (lego_vae.files.storage_message) or trainer settings
    Lightning refuses on this machine are `error: <message>` on stderr and exit status 2, no traceback.

    Running out of memory (lego_vae.errors.out_of_memory) and a failed worker of tune.py: one line, status 1.
    An interrupt (SIGINT, SIGTERM) exits with 128 + the signal's number, as a shell reports it. In a multirun,
    an error line names the job and returns None so that Hydra runs the next job (see `finish`).
    """
    try:
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_warning_line, warnings.showwarning)
            return fn(*args, **kwargs)
    except UserError as err:
        _fail(str(err), 2)
    except OSError as err:
        if not is_storage_error(err):
            raise
        # A write() that names no file (a library's own): the run's output folder is where it was writing.
        unnamed = not (err.filename or err.filename2) and HydraConfig.initialized()
        _fail(storage_message(err, HydraConfig.get().runtime.output_dir if unnamed else None), 2)
    except Interrupted as err:
        print(f"stopped: {err}", file=sys.stderr)
        sys.exit(128 + err.signum)
    except WorkersFailed as err:
        _fail(str(err), 1)
    except Exception as err:
        # Loaded by then: fn trained.
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        if isinstance(err, MisconfigurationException):  # Lightning refused the trainer's settings for this machine
            _fail(f"the trainer's settings: {str(err).strip().splitlines()[0]} (trainer.accelerator, trainer.devices, "
                  "trainer.strategy, trainer.precision)", 2)
            return None
        # A trial of tune.py records running out of memory instead and goes on.
        reason = out_of_memory(err)
        if reason is None:
            raise
        _fail(f"{reason}; lower data.batch_size, data.image_size or model.hidden (or run on a device with more "
              "memory)", 1)
    return None


class OutputFolderCheck(Callback):
    """A Hydra callback (each command's hydra.callbacks): an output folder that is empty or cannot be written is one
    line, exit 2, where Hydra's own writes of .hydra/ (before run_app) would be its traceback."""

    PROBE_BYTES = 64 * 1024  # about what Hydra writes there (.hydra/*.yaml, the log's first lines)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.check(OmegaConf.select(config, "hydra.run.dir"), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.check(OmegaConf.select(config, "hydra.sweep.dir"), "hydra.sweep.dir")

    def check(self, folder: str | None, key: str) -> None:
        """Exit with one line (status 2) if folder (Hydra's key) cannot be made or written."""
        if folder is None:
            return
        if not str(folder).strip():  # Hydra would write the run into the folder the command was typed in
            print(f"error: {key} is empty: name the output folder ({key}=outputs/run)", file=sys.stderr)
            sys.exit(2)
        probe = Path(folder) / ".lego-vae-write-check"
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            write_bytes(probe, bytes(self.PROBE_BYTES))
            probe.unlink()
        except OSError as err:
            if not is_storage_error(err):
                raise
            path = Path(err.filename) if err.filename and Path(err.filename) != probe else Path(folder)
            print(f"error: {storage_message(err, path)} (the output folder: {key}=...)", file=sys.stderr)
            sys.exit(2)


def finish() -> None:
    """After a command's Hydra app returned: exit non-zero if a multirun job failed (2, or 1 for failed
    workers); nothing after a single run (its errors have exited already) or a multirun whose jobs all
    succeeded."""
    if not FAILED_JOBS:
        return
    failed = list(FAILED_JOBS)
    FAILED_JOBS.clear()
    print(f"error: {len(failed)} multirun job{'s' if len(failed) > 1 else ''} failed: "
          f"{', '.join(name for name, _ in failed)}", file=sys.stderr)
    sys.exit(max(status for _, status in failed))


@contextlib.contextmanager
def one_line_usage_errors() -> Iterator[None]:
    """While Hydra reads the command line: an unknown flag or a bad value of one (`--cfg jobs`) is one line and exit
    status 2, instead of argparse's usage block. Hydra's parser is not public (hydra._internal.utils), so this
    replaces argparse.ArgumentParser.error, argparse's documented way to report a usage error, for the duration."""

    def error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
        print(f"error: {message} (--help lists the flags)", file=sys.stderr)
        sys.exit(2)

    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = error  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original  # type: ignore[method-assign]


def command(config_name: str, fn: Callable[..., Any], *hydra_args: Callable[[Any], Any]) -> Callable[[], None]:
    """The main() of a command: a Hydra app over lego_vae/conf/<config_name>.yaml that checks the composed
    config, then calls run_app(fn, cfg, ...) with the values hydra_args take from Hydra's config (RUN_DIR,
    OVERRIDES), then finish(). Each command's fn imports its pipeline when called, so a config mistake's line
    comes before Lightning loads: about 6 s on a 2-core CPU instead of 11-15."""

    from_task: list[BaseException] = []  # what the command itself raised: a bug's traceback, left whole

    def checked_call(cfg: DictConfig, *args: Any) -> Any:
        if config_name == "tune":  # each value of its space too
            validate_tune(cfg)
        else:
            validated(cfg, SCHEMAS[config_name])
        return fn(cfg, *args)

    def task(cfg: DictConfig) -> None:
        hydra_cfg = HydraConfig.get()
        try:
            run_app(checked_call, cfg, *(arg(hydra_cfg) for arg in hydra_args))
        except Exception as err:
            from_task.append(err)
            raise

    task.__name__ = task.__qualname__ = config_name
    app = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(task)

    def main() -> None:
        # Hydra prints a composition error on several lines and exits 1; HYDRA_FULL_ERROR=1 (its documented
        # switch) lets the error reach us, to be one line and exit 2. Set by the user to anything else,
        # Hydra's own way.
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
        try:
            with one_line_usage_errors():
                app()
        except Exception as err:
            if any(err is e for e in from_task):
                raise
            first = (str(err).strip() or type(err).__name__).splitlines()[0]
            _fail(composition_error(err, SCHEMAS[config_name], sys.argv[1:]) or first, 2)
        finish()

    main.__doc__ = f"The {config_name} command (lego_vae/conf/{config_name}.yaml)."
    return main


def RUN_DIR(hydra_cfg: Any) -> str:  # noqa: N802  (a constant-like selector passed to command())
    """The run's output folder."""
    return hydra_cfg.runtime.output_dir


def OVERRIDES(hydra_cfg: Any) -> list[str]:  # noqa: N802
    """The command line's overrides."""
    return list(hydra_cfg.overrides.task)
