"""The commands' schemas in Hydra's ConfigStore, so that composition itself checks every key and type.

Each command's YAML (lego_vae/conf/<command>.yaml) starts its defaults list with `<command>_schema`, its
dataclass stored here (https://hydra.cc/docs/tutorials/structured_config/schema/): an unknown key or a value
of the wrong type fails while composing, before any work. Ranges and cross-field checks are
validate.validated's. Importing lego_vae.config stores them; compose a command's config only after that.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from lego_vae.config.commands import EvaluateConfig, ExploreConfig, GenerateConfig, TuneConfig
from lego_vae.config.schema import TrainConfig

SCHEMAS: dict[str, type] = {"train": TrainConfig, "tune": TuneConfig, "evaluate": EvaluateConfig,
                            "generate": GenerateConfig, "explore": ExploreConfig}

for _command, _schema in SCHEMAS.items():  # storing again replaces: importing twice is harmless
    ConfigStore.instance().store(name=f"{_command}_schema", node=_schema)
