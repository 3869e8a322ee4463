"""The VAE a config describes, built in one place from the registries: model.arch names a VAE subclass
(lego_vae/model/archs), model.likelihood a Likelihood (lego_vae/model/likelihoods)."""

from __future__ import annotations

import inspect

import lego_vae.model.archs  # noqa: F401  (registers every architecture)
import lego_vae.model.likelihoods  # noqa: F401  (registers every likelihood)
from lego_vae.model.likelihood import Likelihood
from lego_vae.model.vae import VAE


def architectures() -> tuple[str, ...]:
    """The model.arch values, in the order of their files' names."""
    return tuple(VAE.registry)


def likelihoods() -> tuple[str, ...]:
    """The model.likelihood values, in the order they were defined."""
    return tuple(Likelihood.registry)


def _named(registry: dict, kind: str, name: str) -> type:
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}")
    return registry[name]


def _taken(cls: type, options: dict) -> dict:
    """The options a class's constructor names: each class reads only its own keys of the model section."""
    params = inspect.signature(cls).parameters
    return {key: value for key, value in options.items() if key in params}


def refusal(model: dict, image_size: int) -> str | None:
    """Why model.arch cannot be built at data.image_size with the model section's options, or None."""
    return _named(VAE.registry, "arch", model["arch"]).refusal(image_size, **model)


def make_vae(image_size: int, arch: str, likelihood: str, **options) -> VAE:
    """The VAE of architecture `arch` with decoder `likelihood`, each given the options its constructor names.

    options: the model section's other keys (hidden, latent, channels, log_sigma_min, ...); keys a class does
    not name are not its own (another architecture's, or training's) and are left out. Raises ValueError for an
    unknown arch or likelihood, TypeError for an option the class needs and was not given.
    """
    decoder = _named(Likelihood.registry, "likelihood", likelihood)
    net = _named(VAE.registry, "arch", arch)
    return net(image_size, likelihood=decoder(**_taken(decoder, options)), **_taken(net, options))


def build_vae(config: dict) -> VAE:
    """The VAE that a run's (validated) config describes: its model section and data.image_size."""
    return make_vae(config["data"]["image_size"], **config["model"])
