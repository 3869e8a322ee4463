"""The configs' typed schema (schema.py, fields.py) and the one validator of every command (validate.py)."""

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
