"""The one validator every command uses: a composed config checked against its schema, as a typed object.

    cfg = validated(composed, TrainConfig)  # a TrainConfig; UserError (one line) for a wrong type, an unknown
    cfg.trainer.max_steps                   # or missing key, a value out of range, or fields that disagree

OmegaConf merges the composed config into the schema's dataclasses (every key and type), then each field's
range (lego_vae.config.fields) and each section's `check(root)` run on the typed result, whose paths are
absolute (lego_vae.config.paths). to_plain gives the plain dict that checkpoints, JSON and Optuna store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import CompactHydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    ConfigTypeError,
    OmegaConfBaseException,
    ValidationError,
)
from optuna.distributions import CategoricalDistribution

from lego_vae.conf import CONF_DIR
from lego_vae.config.commands import CHECKPOINT_HINT, TuneConfig
from lego_vae.config.fields import fits, refuse, schema_field
from lego_vae.config.paths import absolute_paths
from lego_vae.config.schema import DataConfig, TrainConfig
from lego_vae.config.space import config_key, distributions
from lego_vae.errors import UserError


def to_plain(cfg: Any) -> dict:
    """A typed config or section, a DictConfig or a mapping as plain, resolved Python containers (what checkpoints,
    hparams, JSON and Optuna's user attributes store)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return dataclasses.asdict(cfg)
    try:
        node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as err:  # an unresolvable interpolation
        raise UserError(f"config: {str(err).splitlines()[0]}") from None


def get_key(config: Any, key: str) -> Any:
    """The value at dotted key ("a.b") of a typed config or a mapping; None where the path does not exist."""
    node: Any = config
    for part in key.split("."):
        if dataclasses.is_dataclass(node):
            node = getattr(node, part) if part in {f.name for f in dataclasses.fields(node)} else None
        else:
            node = node[part] if isinstance(node, Mapping) and part in node else None
    return node


def _walk(section: Any, root: Any, given: Mapping, prefix: str) -> None:
    """Every field's range, then the section's own check, depth first; errors quote the value as given."""
    for f in dataclasses.fields(section):
        key, value = f"{prefix}{f.name}", getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            _walk(value, root, given, f"{key}.")
        elif not fits(value, f.metadata):
            raise refuse(key, get_key(given, key), f.metadata)
    if hasattr(section, "check"):
        section.check(root)


def _refused(key: str, value: Any, err: Exception, schema: type) -> str:
    """The line for a value OmegaConf refused at key: its field's rule, else OmegaConf's first line."""
    f = schema_field(schema, key)
    if f is None:
        return f"{key}={value}: {str(err).splitlines()[0]}"
    return str(refuse(key, value, f.metadata))


def validated(cfg: Any, schema: type) -> Any:
    """cfg (a DictConfig, a mapping or a typed config) checked against schema; an instance of schema, resolved,
    its paths absolute. Raises UserError with one line naming the key (a value quoted as given)."""
    plain = to_plain(cfg)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), plain)
    except ConfigKeyError as err:
        raise UserError(f"{err.full_key}: not a key of this config (its keys are in lego_vae/conf/)") from None
    except ValidationError as err:
        raise UserError(_refused(err.full_key, get_key(plain, err.full_key), err, schema)) from None
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise UserError(CHECKPOINT_HINT if "checkpoint" in missing else
                        f"{missing[0]}: missing from the config")
    config = absolute_paths(OmegaConf.to_object(merged))
    _walk(config, config, plain, "")
    return config


def composition_error(err: BaseException, schema: type, argv: list[str] | None = None) -> str | None:
    """One line for an error Hydra raised while composing a command's config into its schema, in validated()'s
    words (a missing group option with its options, a config group given no option's name in argv, an override
    Hydra cannot parse with its reason); else the first line of Hydra's message; None for other exceptions."""
    if not isinstance(err, CompactHydraException):  # Hydra's ValueError or TypeError on a group's value, or not ours
        return _group_value(argv) if isinstance(err, (ValueError, TypeError)) else None
    cause = err.__cause__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and cause.full_key:
        return f"{cause.full_key}: not a key of this config (its keys are in lego_vae/conf/)"
    if isinstance(cause, ValidationError) and cause.full_key:
        field = schema_field(schema, cause.full_key)
        if field is not None and not field.metadata:  # a section's own field
            return f"{cause.full_key} is a section: set its keys ({cause.full_key}.<key>=...), not a value"
        given = str(err).split("override ", 1)[-1].split("=", 1)
        return _refused(cause.full_key, given[1] if len(given) == 2 else cause.value, cause, schema)
    if isinstance(cause, ConfigTypeError) and "does not support deletion" in str(cause):
        return f"{cause.full_key}: a key of the schema cannot be deleted (~); set its value instead"
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    first = lines[0] if lines else type(err).__name__
    if isinstance(err, MissingConfigException) and err.options:
        return f"{first.split(': ', 1)[-1]} (the options: {', '.join(err.options)})"
    if isinstance(err, OverrideParseException):
        # Hydra's parser says where it stopped ("missing EQUAL at '<EOF>'") on its second line, or on its first
        # without naming the override: both, with the override's own text once.
        why = next((line for line in lines if not line.startswith(("Error parsing override", "See "))), first)
        return f"cannot read the override {err.override!r}: {why}"
    return first


def parsed_overrides(argv: list[str]) -> list[Override]:
    """The overrides of a command line (its arguments with `=` that are not flags), read by Hydra's own override
    parser; [] when Hydra cannot read them (its own error says which)."""
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        return OverridesParser.create().parse_overrides(overrides=overrides)
    except Exception:
        return []


def _group_value(argv: list[str] | None) -> str | None:
    """`model=null: ...` for the override of argv that gives a config group (a folder of lego_vae/conf/) a value that
    is not an option's name, with the options there are; None if no override of argv does."""
    for o in parsed_overrides(argv or []):
        if o.is_sweep_override():  # `-m model=conv,mlp`: Hydra's sweep, each value a name
            continue
        folder = CONF_DIR / o.key_or_group
        value = o.value()
        names = value if isinstance(value, list) else [value]
        if folder.is_dir() and not all(isinstance(name, str) for name in names):
            options = sorted(p.stem for p in folder.glob("*.yaml"))
            return (f"{o.input_line}: {o.key_or_group} is a config group: give one of its options by name "
                    f"(the options: {', '.join(options)})")
    return None


def with_defaults(stored: Mapping) -> TrainConfig:
    """A checkpoint's train config, typed: a key added since it was written at today's default (what a run
    without it trained with), a key since removed dropped, its paths absolute as validate() makes them."""
    chosen = {"model": get_key(stored, "model.arch"), "data": get_key(stored, "data.source")}
    groups = [f"{group}={name}" for group, name in chosen.items()
              if isinstance(name, str) and (CONF_DIR / group / f"{name}.yaml").is_file()]
    inside = GlobalHydra.instance().is_initialized()  # a command's own Hydra: the same config folder
    with contextlib.nullcontext() if inside else initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        defaults = compose("train", overrides=groups)  # conf/train.yaml, in TrainConfig
    with open_dict(defaults):
        return absolute_paths(OmegaConf.to_object(OmegaConf.merge(defaults, known(stored, TrainConfig))))


def default_data(source: str, **changes: Any) -> DataConfig:
    """The `data` section of conf/data/<source>.yaml, typed, with changes (keys of DataConfig): what a script or
    a test builds a data module from (LegoFacesDataModule.from_config). Raises TypeError for an unknown key."""
    return dataclasses.replace(with_defaults({"data": {"source": source}}).data, **changes)


def known(section: Mapping, schema: type) -> dict:
    """section without the keys schema does not know (a key a later version removed), nested as in the schema."""
    hints = typing.get_type_hints(schema)
    return {name: (known(value, hints[name])
                   if dataclasses.is_dataclass(hints[name]) and isinstance(value, Mapping) else value)
            for name, value in section.items() if name in hints}


def validate(cfg: Any) -> TrainConfig:
    """Check a composed train config before any work starts; return it typed."""
    return validated(cfg, TrainConfig)


def validate_tune(cfg: Any) -> TuneConfig:
    """Check a composed tune config (the train part too, and every value its space can give); return it typed."""
    config = validated(cfg, TuneConfig)
    check_space_values(config)
    return config


def check_space_values(config: TuneConfig) -> None:
    """Each bound and each choice of config.space, set in the train config, passes the train schema's checks, so
    no trial fails on a value the space allows. Raises UserError naming the parameter, the value and the reason."""
    plain = to_plain(config)
    train = {f.name: plain[f.name] for f in dataclasses.fields(TrainConfig)}
    for name, d in distributions(config.space).items():
        values = d.choices if isinstance(d, CategoricalDistribution) else (d.low, d.high)
        for value in values:
            trial = OmegaConf.create(train)
            OmegaConf.update(trial, config_key(name), value, merge=False)
            try:
                checked = get_key(validated(trial, TrainConfig), config_key(name))
            except UserError as err:
                raise UserError(f"space.{name}: a trial with {config_key(name)}={value} would be refused ({err})") from None
            if checked != value or isinstance(checked, str) != isinstance(value, str):  # OmegaConf made "4" 4
                raise UserError(f"space.{name}: the choice {value!r} is a {type(value).__name__}, and "
                                f"{config_key(name)} takes a {type(checked).__name__} ({checked!r})")
