"""The configs' typed schema (schema.py, fields.py), registered with Hydra's ConfigStore on import (store.py), and
the one validator of every command (validate.py)."""

from lego_vae.config import store  # noqa: F401  (registers the schemas before any composition)
from lego_vae.config.validate import (
    default_data,
    get_key,
    to_plain,
    validate,
    validate_tune,
    validated,
    with_defaults,
)

__all__ = ["default_data", "get_key", "to_plain", "validate", "validate_tune", "validated", "with_defaults"]
