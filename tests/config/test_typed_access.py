"""The package (and bench/) reads its config as typed objects (`cfg.model.hidden`), never by string subscripts
(issue #27). The schema objects have no mapping methods, so a subscript the scan misses fails where it runs."""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

from lego_vae.config.commands import EvaluateConfig, ExploreConfig, GenerateConfig, TuneConfig

ROOT = Path(__file__).resolve().parents[2]
# The package is scanned for both rules; bench/, whose results are plain dicts keyed by section names too
# ({"data": ..., "judge": ...}), for subscripts of what it calls a config.
SCANNED = {ROOT / "lego_vae": True, ROOT / "bench": False}
# What the code calls a config or one of its sections.
CONFIG_NAMES = {"plain", "cfg", "config", "optim", "sample", "server", "sampler_cfg", "judge_cfg"}
# Section names that are also keys of plain data: a confusion table's entry (evaluation.judge.confusion), the
# study's stored space ({"hidden": {"low", "high", "log"}}, tuning.resume) and best.yaml's refit entry.
NOT_ONLY_SECTIONS = {"classes", "hidden", "latent", "log", "refit"}
OPTUNA_MAPPINGS = {"params", "user_attrs", "system_attrs"}  # a trial's or study's own dicts, keyed by parameter names


def section_names() -> set[str]:
    """Every key of a command schema whose value is itself a section (data, model, study, judge, ...)."""
    names: set[str] = set()

    def walk(schema: type) -> None:
        for name, hint in typing.get_type_hints(schema).items():
            if dataclasses.is_dataclass(hint):
                names.add(name)
                walk(hint)

    for schema in (TuneConfig, EvaluateConfig, GenerateConfig, ExploreConfig):
        walk(schema)
    return names - NOT_ONLY_SECTIONS


def base_name(node: ast.expr) -> str | None:
    """The name a subscript's chain starts from, or the last attribute: plain of plain["a"]["b"], config of
    self.config["a"]."""
    while isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def config_subscripts(source: str, sections: set[str], section_keys: bool = True) -> list[str]:
    """The string subscripts (and .get("...") calls) of source that read a config: `x["model"]`, `cfg["seed"]`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str):
            key, base = node.slice.value, base_name(node.value)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            key, base = node.args[0].value, base_name(node.func.value)
        else:
            continue
        if ((section_keys and key in sections) or base in CONFIG_NAMES) and base not in OPTUNA_MAPPINGS:
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scan_finds_the_subscripts_it_forbids() -> None:
    sections = section_names()
    assert {"data", "model", "trainer", "study", "judge", "server"} <= sections
    code = 'a = plain["trainer"]["max_steps"]\nb = x["model"]\nc = self.config["seed"]\nd = cfg.get("seed", 0)\n' \
           'e = cfg.trainer.max_steps\nf = metrics["val/loss"]\ng = best.params["hidden"]\n'
    assert sorted(line.split(":")[0] for line in config_subscripts(code, sections)) == ["1", "1", "2", "3", "4"]


def test_the_package_reads_no_config_by_string_subscripts() -> None:
    sections = section_names()
    found = {str(path.relative_to(ROOT)): hits for folder, keys in SCANNED.items() for path in sorted(folder.rglob("*.py"))
             if (hits := config_subscripts(path.read_text(), sections, keys))}
    assert found == {}, "\n".join(f"{file}:{hit}" for file, hits in found.items() for hit in hits)
