"""The architectures behind one registry, and the LightningModule that trains any of them.

Every module of this package is imported here, so a model file registers itself (models/registry.py)
by being in the package.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
