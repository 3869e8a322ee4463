"""A trial's parameters: drawn from the unit cube, checked against the space, suggested, written and applied.

The space's distributions come from lego_vae.config.space (tune.yaml's `space:`); a point is a dict
{name: value} in the space's order. Integers and floats are ranges (log or linear), everything else a choice.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from lego_vae.config.schema import TrainConfig
from lego_vae.config.space import config_key


def from_unit(u: float, d: BaseDistribution) -> Any:
    """A point u of [0, 1) as a value of d. Each integer (and each choice) gets an equal share of the (log-)interval,
    as Optuna's own transform gives it; a float range maps linearly (or log-linearly)."""
    if isinstance(d, CategoricalDistribution):
        return d.choices[min(int(u * len(d.choices)), len(d.choices) - 1)]
    if isinstance(d, IntDistribution):
        lo, hi = (math.log(d.low - 0.5), math.log(d.high + 0.5)) if d.log else (d.low - 0.5, d.high + 0.5)
        x = lo + u * (hi - lo)
        return int(min(max(round(math.exp(x) if d.log else x), d.low), d.high))
    lo, hi = (math.log(d.low), math.log(d.high)) if d.log else (d.low, d.high)
    x = lo + u * (hi - lo)
    return float(min(max(math.exp(x) if d.log else x, d.low), d.high))


def contains(d: BaseDistribution, value: Any) -> bool:
    """Whether value is one d can give."""
    if isinstance(d, CategoricalDistribution):
        return any(value == c and type(value) is type(c) for c in d.choices)
    if isinstance(d, IntDistribution):
        return isinstance(value, (int, np.integer)) and d.low <= value <= d.high and (value - d.low) % d.step == 0
    return isinstance(value, (int, float, np.number)) and d.low <= value <= d.high


def inside(params: dict, space: dict[str, BaseDistribution]) -> bool:
    """Whether every parameter of the space is in params, and a value of its distribution."""
    return all(name in params and contains(d, params[name]) for name, d in space.items())


def suggest(trial: optuna.Trial, name: str, d: BaseDistribution) -> Any:
    """trial's value of one parameter, through Optuna's public suggest_* of its kind."""
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(name, d.choices)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    assert isinstance(d, FloatDistribution)
    return trial.suggest_float(name, d.low, d.high, log=d.log)


def plain_value(value: Any) -> Any:
    """A value as JSON and YAML store it (numpy scalars as Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


def fmt(value: Any) -> str:
    """A value as lines and tables show it: floats to 3 significant digits, the rest as they are."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def override(name: str, value: Any) -> str:
    """The Hydra override that sets a parameter's key on train.py's command line: model.hidden=1178,
    optim.lr=0.000512 (repr: a float comes back exactly), model.likelihood=calibrated, model.x=null; a string that
    Hydra would read otherwise ('a,b', 'true', '1e-3') in Hydra's quotes."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, str) and not re.fullmatch(r"[A-Za-z_][\w\-/.]*", value) or value in ("true", "false", "null"):
        text = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"  # Hydra's quoted string
    else:
        text = repr(value) if isinstance(value, float) else str(value)
    return f"{config_key(name)}={text}"


def trial_config(plain: Any, params: dict) -> TrainConfig:
    """The train config of one trial: the tune config's train sections, copied, with each parameter's key set
    to its value (hidden -> model.hidden, optim.lr -> optim.lr)."""
    cfg = TrainConfig(**{f.name: copy.deepcopy(getattr(plain, f.name)) for f in dataclasses.fields(TrainConfig)})
    for name, value in params.items():
        *path, leaf = config_key(name).split(".")
        node: Any = cfg
        for part in path:
            node = getattr(node, part)
        setattr(node, leaf, plain_value(value))
    cfg.trainer.devices = 1  # one trial, one device: DDP inside a trial breaks the pruning callback
    return cfg
