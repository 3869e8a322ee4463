"""The commands' schemas in Hydra's ConfigStore, so that composition itself checks every key and type.

Each command's YAML (lego_vae/conf/<command>.yaml) starts its defaults list with `<command>_schema`, the
dataclass of config/schema.py or config/commands.py registered here: Hydra merges the YAML files and the
command line into it, so an unknown key or a value of the wrong type fails while composing, before any work
(Hydra's structured configs: https://hydra.cc/docs/tutorials/structured_config/schema/). The schemas hold no
defaults (those live once, commented, in the YAML); ranges and the checks that tie fields together are
validate.validated's, on the typed result. Importing lego_vae.config registers them; compose a command's config
only after that (the commands, tests/conftest.py and bench/common.py do).
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from lego_vae.config.commands import EvaluateConfig, ExploreConfig, GenerateConfig, TuneConfig
from lego_vae.config.schema import TrainConfig

SCHEMAS: dict[str, type] = {"train": TrainConfig, "tune": TuneConfig, "evaluate": EvaluateConfig,
                            "generate": GenerateConfig, "explore": ExploreConfig}


def register() -> None:
    """Store each command's schema as `<command>_schema` (idempotent: storing again replaces it)."""
    store = ConfigStore.instance()
    for command, schema in SCHEMAS.items():
        store.store(name=f"{command}_schema", node=schema)


register()
