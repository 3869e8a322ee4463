"""Every command README.md and docs/*.md show runs as written, at a tiny size, so a documented command cannot rot.

Which lines count, and how each is checked: tests/commands/documented.py and docs/testing.md ("The documented
commands"). Each command runs in-process (its Hydra app's main() with sys.argv set, in a copy of a workspace
that holds a tiny run, study and images for the placeholders), with only the size keys of TINY lowered; a
command whose config is the same as one already run here is not run twice. A documented output (the lines
under a `$ ` command) must be printed as shown, with exit status 2 for an `error:` line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import importlib.util
import io
import itertools
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from PIL import Image

from lego_vae.conf import CONF_DIR
from lego_vae.config import validated
from lego_vae.config.commands import EvaluateConfig, ExploreConfig, GenerateConfig, TuneConfig
from lego_vae.config.schema import TrainConfig
from tests.commands.documented import PREVIEWS, RUN, DocCommand, Step, Unplanned, extract, plan

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = extract()
COPIES = itertools.count()  # unique names of workspace copies (id() of a freed step may come back)

# The only keys appended to a documented command: sizes and budgets, each lowered to this value where the
# command's config (with its preset) has more. A key the command itself sets is kept as written when the docs
# show the command's output (that output depends on it; such commands are small already).
TINY = {
    "train": {"data.image_size": 16, "data.num_images": 160, "data.extra_train_faces": 40, "model.channels": 8,
              "trainer.max_epochs": 1, "trainer.max_steps": 3, "eval.iwae_k": 2, "eval.judge.num_train": 300, "eval.judge.num_holdout": 100,
              "eval.judge.epochs": 2, "pictures.grid": 4, "pictures.morph_steps": 5},
    "tune": {"study.n_trials": 1, "study.n_initial": 1, "study.epochs": 1, "refit.epochs": 1, "study.steps": 3,
             "study.val_every_steps": 1, "pruner.warmup_steps": 1, "refit.steps": 3},
    "evaluate": {"eval.iwae_k": 2, "pictures.grid": 4, "pictures.morph_steps": 5},
}
# trainer.max_steps 3: one epoch of the tiny train split (125 faces + 40 extra, batch 64), so that the run
# validates at least once.
TINY["tune"] = {**TINY["train"], **TINY["tune"]}
# The searched sizes of the search preset's space (space/search.yaml), as choices fit for 16 px and tiny data.
TINY_SPACE = {"data.extra_train_faces": [0, 40], "model.feature_size": [2, 4]}
RESUMED_EPOCHS = 3  # trainer.max_epochs of a resume (ckpt_path=...): one more than the tiny run's 2
SCHEMAS = {"train": TrainConfig, "tune": TuneConfig, "evaluate": EvaluateConfig, "generate": GenerateConfig,
           "explore": ExploreConfig}


@dataclass
class Result:
    status: int
    output: str


@dataclass
class Workspace:
    template: Path   # the tiny run, study and images the placeholders name; copied for each command
    cache: Path      # data.cache_dir of every command (a location, like the workspace)
    scratch: Path
    results: dict    # a command's config -> its Result: the same config is run once


@contextlib.contextmanager
def _isolated(cwd: Path, argv: list[str]):
    """Run a command's main() as its own process would: argv, cwd; restore what it changes in this process."""
    saved = (sys.argv, os.getcwd(), torch.get_num_threads(), dict(os.environ))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    sys.argv = argv
    os.chdir(cwd)
    try:
        yield
    finally:
        sys.argv = saved[0]
        os.chdir(saved[1])
        torch.set_num_threads(saved[2])
        os.environ.clear()
        os.environ.update(saved[3])
        for h in root.handlers:
            if h not in handlers:
                h.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        GlobalHydra.instance().clear()
        # A multirun's HydraConfig left behind would make a later in-process command think it is a multirun job.
        HydraConfig.instance().cfg = None


def _call(fn: Callable[[], object], cwd: Path, argv: list[str]) -> Result:
    out = io.StringIO()
    status = 0
    with _isolated(cwd, argv), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            fn()
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return Result(status, out.getvalue())


def _compose(program: str, args: list[str], validate: bool = True) -> dict:
    """The command's config (a sweep: its first values), validated as the command would (UserError: its line)."""
    # a sweep key=a,b: its first value; not a list [a,b] nor a dict {a: 1, b: 2}
    overrides = [a.split(",")[0] if "=" in a and "," in a and not {"[", "{"} & set(a) else a for a in args if a != "-m"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=program, overrides=[o for o in overrides if not o.startswith("hydra.")])
    if validate:
        return validated(cfg, SCHEMAS[program])
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _get(plain: dict, key: str):
    for part in key.split("."):
        plain = plain.get(part) if isinstance(plain, dict) else None
    return plain


def tiny_args(program: str, args: list[str], cache: Path, keep_set: bool) -> list[str]:
    """args with the size keys of TINY lowered where the config has more (keep_set: not those args set)."""
    if program not in TINY:
        return list(args)
    base = [*args, f"data.cache_dir={cache}"]
    plain = _compose(program, base, validate=False)  # a mistake the docs show is the command's to refuse
    given = {a.split("=", 1)[0] for a in args if "=" in a}
    tiny = dict(TINY[program])
    if "trainer.max_epochs" in tiny and plain.get("ckpt_path"):
        tiny["trainer.max_epochs"] = RESUMED_EPOCHS
    extra = [f"{key}={value}" for key, value in tiny.items()
             if isinstance(_get(plain, key), int) and _get(plain, key) > value and not (keep_set and key in given)]
    for key, choices in TINY_SPACE.items():  # a searched size: its choices lowered too (space/search.yaml)
        leaf = _get(plain.get("space") or {}, key)
        if isinstance(leaf, dict) and "choices" in leaf:
            extra.append(f"space.{key}.choices=[{','.join(map(str, choices))}]")
    return [*base, *extra]


def _workspace_copy(ws: Workspace, name: str, with_study: bool = True) -> Path:
    """A fresh copy of the workspace for one command (a command may rewrite a run's report, resume a study)."""
    target = ws.scratch / name
    ignore = None if with_study else (lambda folder, names: ["tune"] if Path(folder).name == "outputs" else [])
    shutil.copytree(ws.template, target, symlinks=True, ignore=ignore)
    return target


def run_hydra(ws: Workspace, program: str, args: list[str], keep_set: bool, cwd: Path | None = None) -> Result:
    """A command's main() in-process, in a copy of the workspace, with the tiny keys; once per config."""
    full = tiny_args(program, args, ws.cache, keep_set)
    plain = _compose(program, full, validate=False) if program in TINY else full
    key = json.dumps([program, plain, [a for a in full if a.startswith(("hydra.", "-m")) or "," in a]],
                     sort_keys=True, default=str)
    if key not in ws.results:
        main = importlib.import_module(f"lego_vae.{program}").main
        where = cwd or _workspace_copy(ws, f"{program}-{len(ws.results)}", with_study=_continues_a_study(program, args))
        ws.results[key] = _call(main, where, [f"{program}.py", *full])
    return ws.results[key]


def _continues_a_study(program: str, args: list[str]) -> bool:
    """A tune.py command that acts on a finished study (refit.only=true; study.n_trials=N "extends a finished
    study") runs where the workspace's tiny study is; any other starts its own, as in a fresh checkout."""
    return program == "tune" and any(a == "refit.only=true" or a.startswith("study.n_trials=") for a in args)


def _faces(folder: Path, n: int, suffix: str = ".png") -> None:
    from lego_vae.data.synthetic import render_faces

    images, _ = render_faces(n, size=24, seed=5)
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(np.asarray(images)):
        Image.fromarray(image).save(folder / f"face{i}{suffix}")


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    """The workspace the placeholders name: RUN (2 epochs, cosine lr, a fitted mixture: what the resume and
    prior=gmm examples need), STUDY (`python tune.py` at the tiny size), path/to/best.ckpt, images."""
    base = tmp_path_factory.mktemp("documented")
    ws = Workspace(base / "template", base / "cache", base / "scratch", {})
    ws.template.mkdir()
    ws.scratch.mkdir()
    run = run_hydra(ws, "train", ["optim.schedule=cosine", "trainer.max_epochs=2", "sample.prior=gmm",
                                  f"hydra.run.dir={RUN}"], keep_set=True, cwd=ws.template)
    assert run.status == 0, run.output[-3000:]
    study = run_hydra(ws, "tune", [], keep_set=False, cwd=ws.template)  # the README's `python tune.py`
    assert study.status == 0, study.output[-3000:]
    (ws.template / "path/to").mkdir(parents=True)
    shutil.copy(ws.template / RUN / "checkpoints/best.ckpt", ws.template / "path/to/best.ckpt")
    _faces(ws.template / "path/to/images", 12)
    _faces(ws.template / "my_faces", 3)
    _faces(ws.template, 1)
    (ws.template / "face0.png").rename(ws.template / "face1.png")
    Image.open(ws.template / "face1.png").convert("RGB").rotate(90).save(ws.template / "face2.jpg")
    (ws.template / "docs").mkdir()
    return ws


class _Parsed(Exception):
    pass


def _parse_bench(module: str, args: list[str], monkeypatch) -> None:
    """The bench's own argument parser on the documented arguments; nothing after it runs."""
    real = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, argv=None, namespace=None):
        real(self, argv, namespace)  # a wrong argument exits 2 here, as the command would
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    with pytest.raises(_Parsed):
        importlib.import_module(module).main(args)


def _exists(step: Step) -> None:
    name = step.program
    if name.startswith("make "):
        return  # plan() ran `make -n` on it: the target exists
    if name.endswith(".py"):
        assert (ROOT / name).is_file(), name
    elif name.startswith("lego-vae-"):
        scripts = {e.name: e for e in importlib.metadata.entry_points(group="console_scripts")}
        assert name in scripts, f"{name}: not an installed command (pyproject.toml [project.scripts])"
        assert callable(scripts[name].load()), name
    else:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, name
        assert 'if __name__ == "__main__":' in Path(spec.origin).read_text(), f"{name} is not runnable with -m"


def _check(step: Step, ws: Workspace, doc: DocCommand, monkeypatch) -> None:
    if step.how == "exists":
        _exists(step)
    elif step.how == "skip":
        return
    elif step.how == "parse" and step.program in SCHEMAS:
        _compose(step.program, list(step.args))  # raises UserError (the command's one line) if it would refuse
    elif step.how == "parse":
        _parse_bench(step.program, list(step.args), monkeypatch)
    elif step.program in SCHEMAS:
        result = run_hydra(ws, step.program, list(step.args), keep_set=bool(step.expected))
        _judge(result, step.expected)
    elif step.program in PREVIEWS:
        module = importlib.import_module(step.program)
        result = _call(lambda: module.main([*step.args, "--size", "16"]), _workspace_copy(ws, f"preview-{next(COPIES)}"),
                       [step.program.split(".")[-1]])
        _judge(result, step.expected)
    elif step.program == "bench.judge_fresh":
        module = importlib.import_module(step.program)
        where = _workspace_copy(ws, f"judge-{id(step)}")
        result = _call(lambda: module.main([*step.args, "--faces", "20", "--out", str(where / "results"),
                                            "--cache-dir", str(ws.cache)]), where, ["judge_fresh"])
        _judge(result, step.expected)
    else:
        raise Unplanned(f"{doc.text}: {step}")


def _judge(result: Result, expected: tuple[str, ...]) -> None:
    assert "Traceback" not in result.output, result.output[-3000:]
    errors = any(line.startswith("error:") for line in expected)
    assert result.status == (2 if errors else 0), result.output[-3000:]
    printed = [line.rstrip() for line in result.output.splitlines()]
    for line in expected:
        assert line in printed, f"documented: {line}\nprinted:\n{result.output[-3000:]}"


def test_the_docs_commands_are_found() -> None:
    # The extraction itself: the README's issue case, a `$ ` example with its output, a make line, an inline one.
    texts = {c.text: c for c in COMMANDS}
    readme = (ROOT / "README.md").read_text().splitlines()
    line = next(i for i, text in enumerate(readme, 1) if text.strip().startswith("python train.py experiment=quick"))
    assert f"README.md:{line}" in texts["python train.py experiment=quick"].places  # its place, found by its text
    assert texts["python train.py model.latent=0"].output == ("error: model.latent=0: must be an integer >= 1",)
    assert not texts["make demo"].inline and texts["make train-demo"].inline
    assert "python train.py model=mlp model.hidden=1024 model.latent=16" in texts  # a comment after one space
    assert len(COMMANDS) > 60


def test_every_documented_command_has_a_plan() -> None:
    """A command (or make recipe line) no rule knows is a failure here: it would otherwise go unchecked."""
    unplanned = []
    for doc in COMMANDS:
        try:
            steps = plan(doc.text, doc.output, doc.inline)
        except Unplanned as err:
            unplanned.append(f"{doc.places[0]}: {err}")
            continue
        assert steps, doc.text
    assert not unplanned, "\n".join(unplanned)


@pytest.mark.parametrize("doc", COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command(doc: DocCommand, ws: Workspace, monkeypatch) -> None:
    for step in plan(doc.text, doc.output, doc.inline):
        _check(step, ws, doc, monkeypatch)
