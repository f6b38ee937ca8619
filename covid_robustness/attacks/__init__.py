"""Attacks as ART EvasionAttacks built from config, whichever library implements them.

Every module of this package is imported here, so an attack file registers its builders (registry.py:
ATTACKS, register_attack) by being in the package, as a model file does in models/.
"""

import importlib
import pkgutil

from .registry import ATTACKS, register_attack

__all__ = ["ATTACKS", "register_attack"]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
