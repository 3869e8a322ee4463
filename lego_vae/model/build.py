"""The VAE a config describes, built in one place from the registries: model.arch names a VAE subclass
(a file of lego_vae/model/archs), model.likelihood a Likelihood (a file of lego_vae/model/likelihoods)."""

from __future__ import annotations

import inspect
from typing import Any

import lego_vae.model.archs  # noqa: F401  (registers every architecture)
import lego_vae.model.likelihoods  # noqa: F401  (registers every likelihood)
from lego_vae.model.likelihood import Likelihood
from lego_vae.model.vae import VAE


def _named(registry: dict, kind: str, name: str) -> type:
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}")
    return registry[name]


def _own(cls: type, options: dict) -> dict:
    """The options a class's constructor names: each class reads only its own keys of the model section."""
    named = inspect.signature(cls).parameters
    return {key: value for key, value in options.items() if key in named}


def refusal(model: Any, image_size: int) -> str | None:
    """Why model.arch cannot be built at data.image_size with the model section's options, or None."""
    options = dict(vars(model))
    return _named(VAE.registry, "arch", options.pop("arch")).refusal(image_size, **options)


def make_vae(image_size: int, arch: str, likelihood: str, **options) -> VAE:
    """The VAE of architecture `arch` with decoder `likelihood`, each given the options its constructor names.

    options: the model section's other keys; those a class does not name are left out. Raises ValueError for an
    unknown arch or likelihood, TypeError for an option the class needs and was not given.
    """
    decoder = _named(Likelihood.registry, "likelihood", likelihood)
    net = _named(VAE.registry, "arch", arch)
    return net(image_size, likelihood=decoder(**_own(decoder, options)), **_own(net, options))


def build_vae(config: Any) -> VAE:
    """The VAE that a run's typed config (lego_vae.config.schema.TrainConfig, which the model does not import)
    describes: its model section and data.image_size."""
    return make_vae(config.data.image_size, **vars(config.model))
