"""The commands README.md and docs/*.md show, and how the tests run each (tests/commands/test_documented_commands.py).

What counts as a command (docs/testing.md, "The documented commands"):
- a line of an indented code block (4 or more spaces after a blank line, also inside a list item) that starts,
  after an optional `$ ` prompt, with one of COMMAND_WORDS; or a `make ...` inside such a line (after `&&`, in
  `$(...)`). The lines after a `$ ` line in its block, up to the next command, are its documented output
  (`...` lines are elisions);
- an inline code span in the prose or a table that starts with one of COMMAND_WORDS.

A command with arguments is run; a bare name (`python -m lego_vae.evaluate`, `lego-vae-train`) is a mention, and
the name is checked to exist. `make X` is expanded with `make -n X` and each line of its recipe gets a plan.
Placeholders (PLACEHOLDERS) become a real tiny run, study or image made once for the module; optional parts
(`[--size 128]`, `[knob]`) and a lone `...` are dropped.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import HANG_GUARD_S

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# What a command starts with: our two scripts, a module of ours (the package, the benches, the tests' tools),
# make, or an installed alias.
COMMAND_WORDS = r"python (?:train|tune)\.py|python -m (?:lego_vae|bench|tests)\.[\w.]+|make|lego-vae-[\w-]+"
_STARTS = re.compile(rf"^(?:{COMMAND_WORDS})(?=\s|$)")
_INLINE = re.compile(r"`([^`]+)`")

# A documented placeholder -> what stands in for it in the module's workspace (tests/commands/test_documented_commands.py
# makes each): a run folder (2 epochs, cosine lr, a fitted mixture), a finished tiny study, a run's best.ckpt,
# a folder of images.
RUN = "outputs/train/2026-11-25_14-00-00"
STUDY = "outputs/tune/lego-vae"
PLACEHOLDERS = {
    "RUN": RUN,
    "RUN_A": RUN,
    "RUN_B": STUDY,
    "/path/to/images": "path/to/images",
    "H": "48",   # model.hidden=H model.latent=L (tuning.md's refit command)
    "L": "6",
    "...": "outputs/elsewhere",  # only as a value: out_dir=..., RUN=... is RUN
}


@dataclass(frozen=True)
class DocCommand:
    """A command as a doc shows it: where, its text (no prompt, no trailing comment), its documented output."""

    text: str
    places: tuple[str, ...]
    output: tuple[str, ...] = ()
    inline: bool = False

    @property
    def id(self) -> str:
        return self.text


def _code_lines(lines: list[str]) -> list[tuple[int, str, bool]]:
    """(number, line, starts a new block) of each line of an indented code block."""
    out, previous_blank, in_block = [], True, False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            previous_blank = True
            continue
        indented = len(line) - len(line.lstrip(" ")) >= 4
        starts = indented and previous_blank and not in_block
        in_block = indented and (in_block or previous_blank)
        if in_block:
            out.append((number, line, starts or previous_blank))
        previous_blank = False
    return out


def _strip_comment(text: str) -> str:
    """`cmd   # comment` -> `cmd` (a comment is a # after a space)."""
    return re.split(r"\s+#(?:\s|$)", text, maxsplit=1)[0].strip()


def _commands_in_code(line: str) -> list[str]:
    """The commands of one code line: the whole line, or the make calls inside a shell line."""
    text = _strip_comment(line.strip())
    text = text[2:] if text.startswith("$ ") else text
    if _STARTS.match(text):
        return [text]
    pieces = re.split(r"&&|;|\$\(|\)|\"", text)
    return [p.strip() for p in pieces if _STARTS.match(p.strip())]


def extract(docs: list[Path] = DOCS) -> list[DocCommand]:
    """Every command the docs show, once each (in the order first seen), with every place it is shown."""
    found: dict[str, DocCommand] = {}

    def add(text: str, place: str, output: tuple[str, ...] = (), inline: bool = False) -> None:
        text = " ".join(text.split())
        old = found.get(text)
        if old is None:
            found[text] = DocCommand(text, (place,), output, inline)
        else:
            found[text] = DocCommand(text, (*old.places, place), old.output or output, old.inline and inline)

    for doc in docs:
        name = doc.relative_to(ROOT).as_posix()
        lines = doc.read_text().splitlines()
        code = _code_lines(lines)
        code_numbers = {n for n, _, _ in code}
        pending: tuple[str, int, list[str]] | None = None  # a `$ ` command and the output lines under it
        for number, line, new_block in code:
            if new_block and pending:
                add(pending[0], f"{name}:{pending[1]}", tuple(pending[2]))
                pending = None
            commands = _commands_in_code(line)
            prompt = line.strip().startswith("$ ")
            if commands or prompt:
                if pending:
                    add(pending[0], f"{name}:{pending[1]}", tuple(pending[2]))
                    pending = None
                if prompt:
                    pending = (commands[0], number, [])
                    continue
                for c in commands:
                    add(c, f"{name}:{number}")
            elif pending and not line.strip().startswith("..."):
                pending[2].append(line.strip())
        if pending:
            add(pending[0], f"{name}:{pending[1]}", tuple(pending[2]))
        for number, line in enumerate(lines, 1):
            if number in code_numbers:
                continue
            for span in _INLINE.findall(line):
                if _STARTS.match(span.strip()):
                    add(span.strip(), f"{name}:{number}", inline=True)
    return list(found.values())


def words(text: str) -> list[str]:
    """The command's words with placeholders filled in, optional parts and a lone `...` dropped."""
    text = re.sub(r"\s*\[[^\]=,]*\]", "", text)  # [--size 128], [knob]; not a value like values=[a,b]
    out = []
    for word in shlex.split(text):
        if word == "...":
            continue
        key, eq, value = word.partition("=")
        if eq and value == "..." and key in PLACEHOLDERS:  # make explore RUN=...
            word = f"{key}={PLACEHOLDERS[key]}"
        elif eq and value in PLACEHOLDERS:
            word = f"{key}={PLACEHOLDERS[value]}"
        elif eq and value.startswith("/path/to/"):
            word = f"{key}={value[1:]}"
        elif word in PLACEHOLDERS and not eq:
            word = PLACEHOLDERS[word]
        out.append(word)
    return out


# ---- plans ---------------------------------------------------------------------------------------------------

# The entry points of the commands, as `python X` and as `python -m X`.
HYDRA_APPS = {
    "train.py": "train", "tune.py": "tune",
    "lego_vae.train": "train", "lego_vae.tune": "tune", "lego_vae.evaluate": "evaluate",
    "lego_vae.generate": "generate", "lego_vae.explore": "explore",
}


@dataclass(frozen=True)
class Step:
    """One thing a documented command is checked by.

    how: `run` (in-process, with the tiny keys), `parse` (compose the config and validate it, or parse the
    bench's arguments: what the command accepts or refuses before any work), `exists` (a name: the script,
    module, alias or make target is there), `skip` (a make recipe line that is not ours to run: the install,
    pytest itself, root-only set-up scripts; `why` says which).
    """

    how: str
    program: str
    args: tuple[str, ...] = ()
    why: str = ""
    expected: tuple[str, ...] = field(default=(), compare=False)


class Unplanned(Exception):
    """A documented command (or a make recipe line) no rule here knows how to check: add one."""


def _needs_more_than_this_machine(program: str, args: list[str]) -> str:
    """Why a command is only parsed, or '' when it is run: a server, a GPU or cluster, or more processes."""
    joined = " ".join(args)
    if program == "explore":
        return "serves a web app until stopped"
    if "postgresql://" in joined:
        return "needs a PostgreSQL server"
    if re.search(r"trainer\.(devices=(?!1\b|auto)|num_nodes=(?!1\b)|strategy=ddp)", joined):
        return "several GPUs, nodes or DDP processes (the DDP test in tests/training runs two CPU ranks)"
    if re.search(r"study\.workers=(?!1\b|auto)\d+", joined):
        return "N worker processes (tests/tuning/test_workers.py runs two)"
    return ""


PREVIEWS = ("lego_vae.data.synthetic", "lego_vae.data.ldraw.render")  # the renderers' preview sheets


def plan(text: str, output: tuple[str, ...] = (), inline: bool = False) -> list[Step]:
    """How one command is checked; `make X` through its recipe (`make -n X`). Raises Unplanned.

    A bare command in a code block is run (`python tune.py`: the whole plan, at the tiny size); a bare one inline
    in the prose is the command's name (`python -m lego_vae.evaluate` re-evaluates...), checked to exist.
    """
    argv = words(text)
    if argv[0] == "make":
        return _plan_make(argv[1:])
    if argv[0].startswith("lego-vae-"):
        if len(argv) > 1 or not inline:
            return plan(" ".join(["python", "-m", "lego_vae." + argv[0][len("lego-vae-"):], *argv[1:]]), output)
        return [Step("exists", argv[0], why="an installed alias (pyproject.toml [project.scripts])")]
    if argv[:2] == ["python", "-m"]:
        module, args = argv[2], argv[3:]
    elif argv[0] == "python":
        module, args = argv[1], argv[2:]
    else:
        raise Unplanned(text)
    if not args and inline:
        return [Step("exists", module, why="a bare name in the prose")]
    if module in HYDRA_APPS:
        program = HYDRA_APPS[module]
        why = _needs_more_than_this_machine(program, args)
        return [Step("parse" if why else "run", program, tuple(args), why, output)]
    if module in PREVIEWS:
        return [Step("run", module, tuple(args), expected=output)]
    if module == "bench.judge_fresh":
        return [Step("run", module, tuple(args), expected=output)]
    if module.startswith("bench."):
        return [Step("parse", module, tuple(args), "a benchmark: tests/bench runs each at --quick size")]
    if module.startswith("tests."):
        return [Step("exists", module, tuple(args), "a tool of the tests (needs headless Chromium)")]
    raise Unplanned(text)


# Make recipe lines that are not ours to run from inside the tests, and why.
_SKIPPED_RECIPES = [
    (r"^(test -x \S+/python \|\||\S+/pip install|rm -f \.venv/\.installed|touch \.venv/\.installed)", "the install"),
    (r"/python -m pytest\b", "the test suite itself"),
    (r"^bash scripts/(test-postgres|test-chromium|check-install)\.sh", "root-only set-up or a fresh install (CI)"),
    (r"/optuna-dashboard ", "serves a web app until stopped"),
    (r"/ruff check", "the linter"),
    (r"^rm -rf outputs", "deletes outputs/ and the cache"),
    (r"^test -n ", "the recipe's own check of RUN="),
]


def make_recipe(target: list[str]) -> list[str]:
    """The lines `make -n` prints for a target (and its VAR=value arguments), run in the checkout."""
    # Not the flags of a make this test may run under (`make test`): MAKELEVEL would add "Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    proc = subprocess.run(["make", "--no-print-directory", "-n", *[t for t in target if t != "-s"]], cwd=ROOT,
                          capture_output=True, text=True, timeout=HANG_GUARD_S, env=env)  # make -n runs nothing
    if proc.returncode != 0:
        raise Unplanned(f"make {' '.join(target)}: {proc.stderr.strip()}")
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def _plan_make(target: list[str]) -> list[Step]:
    steps = [Step("exists", "make " + " ".join(target), why="the target exists (make -n)")]
    for line in make_recipe(target):
        skip = next((why for pattern, why in _SKIPPED_RECIPES if re.search(pattern, line)), None)
        if skip:
            steps.append(Step("skip", line, why=skip))
            continue
        loop = re.match(r"^for b in ([\w ]+); do \S+/python -m bench\.\$b", line)
        if loop:  # make bench: every benchmark, each run at --quick size by tests/bench
            steps += [Step("exists", f"bench.{b}", why="make bench's loop") for b in loop.group(1).split()]
            continue
        python = re.match(r"^\S*\.venv/bin/(python .*)$", line)
        if not python:
            raise Unplanned(f"make {' '.join(target)}: recipe line {line!r}")
        steps += plan(python.group(1))
    return steps
