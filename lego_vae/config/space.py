"""The study's search space (tune.yaml's `space:`): train config keys, each a range or a list of choices.

    space:                                    # any key of the train config, nested as in it (or dotted)
      hidden: {low: 128, high: 2048, log: true}   # the seed's `hidden` (`latent`) means model.hidden
      optim:
        lr: {low: 1.0e-4, high: 3.0e-3, log: true}
      model:
        feature_size: {choices: [4, 8, 16]}

A range {low, high, log} is of integers for an int field, of floats for a number field; {choices} fits any
key. Optuna records the dotted keys (the seed's aliases as they are, so its studies resume). The trial budget
(trainer.max_epochs, trainer.max_steps) is the study's to set, never the space's.
"""

from __future__ import annotations

from collections.abc import Mapping

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from lego_vae.config.fields import KIND, is_int, is_number, schema_field
from lego_vae.config.schema import TrainConfig
from lego_vae.errors import UserError

ALIASES = {"hidden": "model.hidden", "latent": "model.latent"}  # the seed's parameter names
BUDGET = ("trainer.max_epochs", "trainer.max_steps")  # set by study.epochs/steps and refit.*
# Keys that make the validation faces (or where they come from): trials that differ in one would be scored on
# different faces, and their val/loss and judged error would not compare.
VALIDATION = ("data.source", "data.root", "data.url", "data.blob", "data.image_size", "data.num_images", "data.seed",
              "data.val_fraction", "data.test_fraction", "data.cache_dir", "data.max_pixels")
RANGE_KEYS, CHOICE_KEYS = {"low", "high", "log"}, {"choices"}


def config_key(name: str) -> str:
    """The train config key of a parameter name: model.hidden for the seed's `hidden`, else the name itself."""
    return ALIASES.get(name, name)


def short(name: str) -> str:
    """A parameter's name in progress lines and tables: the last part of its key (lr for optim.lr)."""
    return name.rsplit(".", 1)[-1]


def leaves(raw: Mapping, prefix: str = "") -> dict[str, dict]:
    """The space's leaves by dotted name, nested sections flattened ({"optim": {"lr": {...}}} -> "optim.lr").

    Raises UserError for a node that is neither a leaf nor a section, or a leaf given twice."""
    out: dict[str, dict] = {}
    for key, node in raw.items():
        name = f"{prefix}{key}"
        if not isinstance(node, Mapping):
            raise UserError(f"space.{name}={node}: must be a range {{low, high, log}}, {{choices: [...]}}, or a "
                            "section of such leaves")
        found = {name: dict(node)} if node.keys() & (RANGE_KEYS | CHOICE_KEYS) else leaves(node, f"{name}.")
        for sub, leaf in found.items():
            if sub in out:
                raise UserError(f"space.{sub}: given twice (dotted and nested)")
            out[sub] = leaf
    return out


def distribution(name: str, leaf: Mapping) -> BaseDistribution:
    """One leaf as Optuna's distribution. Raises UserError (one line naming space.<name>) for a key the train
    config lacks, a budget key, a leaf of both kinds or neither, bounds of the wrong type, low >= high, a log
    range that reaches 0, or an empty list of choices."""
    key = config_key(name)
    f = schema_field(TrainConfig, key)
    if f is None:
        raise UserError(f"space.{name}: {key} is not a key of the train config (its keys are in "
                        "lego_vae/conf/)")
    if not f.metadata:
        raise UserError(f"space.{name}: {key} is a section of the train config, not a key: give its keys "
                        "ranges")
    if key in BUDGET:
        raise UserError(f"space.{name}: the trial budget is the study's (study.epochs or study.steps), not a "
                        "parameter")
    if key in VALIDATION:
        raise UserError(f"space.{name}: {key} makes the validation faces, so trials differing in it would not be "
                        "scored on the same faces; run one study per value (study.name=...)")
    kind = f.metadata[KIND]
    if set(leaf) - RANGE_KEYS - CHOICE_KEYS or (leaf.keys() & RANGE_KEYS and "choices" in leaf):
        raise UserError(f"space.{name}: a leaf is {{low, high, log}} or {{choices: [...]}}, not {sorted(leaf)}")
    if "choices" in leaf:
        choices = leaf["choices"]
        if not isinstance(choices, (list, tuple)) or not choices or len(set(map(repr, choices))) != len(choices):
            raise UserError(f"space.{name}.choices={choices}: must be a non-empty list of distinct values")
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            raise UserError(f"space.{name}.choices={choices}: must hold numbers, strings, true/false or null")
        return CategoricalDistribution(list(choices))
    if "low" not in leaf or "high" not in leaf:
        raise UserError(f"space.{name}: a range needs low and high")
    low, high, log = leaf["low"], leaf["high"], leaf.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"space.{name}.log={log}: must be true or false")
    if kind not in ("int", "number"):
        raise UserError(f"space.{name}: {key} is not a number; give its values as {{choices: [...]}}")
    if kind == "int" and not (is_int(low) and is_int(high)):
        raise UserError(f"space.{name}: {key} is an integer, so low={low} and high={high} must be integers")
    if not (is_number(low) and is_number(high)):
        raise UserError(f"space.{name}: low={low} and high={high} must be numbers")
    if low >= high:
        raise UserError(f"space.{name}: low={low} must be < high={high}")
    if log and low <= 0:
        raise UserError(f"space.{name}: low={low} must be > 0 on a log scale (log: true)")
    if kind == "int":
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)


def distributions(raw: Mapping) -> dict[str, BaseDistribution]:
    """The space (as in the config, or as a study stored it: normal_form) as Optuna's distributions, by name;
    Optuna's distributions already (a bench's own space) as they are.

    Raises UserError for an empty space, a key given twice (hidden and model.hidden) or a bad leaf (distribution)."""
    if raw and all(isinstance(d, BaseDistribution) for d in raw.values()):
        return dict(raw)
    found = leaves(raw)
    if not found:
        raise UserError("space: empty; give at least one parameter (e.g. space=seed, the seed's hidden and latent)")
    keys: dict[str, str] = {}
    for name in found:
        if (other := keys.setdefault(config_key(name), name)) != name:
            raise UserError(f"space.{name}: {config_key(name)} is given twice (as {other} and {name}); keep one")
    return {name: distribution(name, leaf) for name, leaf in found.items()}


def normal_form(space: Mapping) -> dict[str, dict]:
    """The space (as distributions() takes it) as a study stores it (plain JSON, flat by name): {low, high, log} or
    {choices}. The seed's integer ranges keep the form studies stored before any other kind existed."""
    return {name: {"choices": list(d.choices)} if isinstance(d, CategoricalDistribution)
            else {"low": d.low, "high": d.high, "log": d.log} for name, d in distributions(space).items()}
