"""Modules a config names to import first (`plugins: [my_models]`).

A user's own models and attacks register themselves when their module is imported (models/registry.py,
attacks/__init__.py), so they extend a sweep without an edit to this package: their file, its yaml in a
config folder on `hydra.searchpath`, and its module in `plugins`.
"""

import importlib

from .errors import ConfigError


def load_plugins(names) -> None:
    for name in names or []:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"plugins: {name!r} cannot be imported ({err}); put its folder on PYTHONPATH.") from err
