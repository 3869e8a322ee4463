"""The architectures: each module here defines one VAE subclass; importing the package registers them all."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):  # in the order of the files' names
    importlib.import_module(f"{__name__}.{_module.name}")
