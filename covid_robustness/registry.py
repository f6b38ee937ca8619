"""A named table of things a config may choose (models, attacks, training methods, evaluations).

Each thing registers itself where it is defined, with a decorator that carries its metadata:

    MODELS = Registry("model")

    @MODELS.register("wrn16_8", min_size=16)
    def wrn16_8(num_classes, **kwargs): ...

so adding one means writing it, not editing a list somewhere else. A config names it by its key;
`get` answers an unknown key with a ConfigError that lists the choices. This module imports nothing
from the package but its errors, so any module can register without an import cycle.
"""

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Entry:
    """One registered object and its metadata; metadata also reads as attributes (entry.min_size)."""

    name: str
    obj: Any
    meta: dict = field(default_factory=dict)

    def __getattr__(self, key: str):
        # Called only for names that are not fields; __dict__ avoids recursion while unpickling.
        try:
            return self.__dict__["meta"][key]
        except KeyError:
            raise AttributeError(f"{self.name!r} has no metadata {key!r}") from None


class Registry:
    """Name -> Entry, in registration order.

    `kind` names what is registered in messages ("model"); `key`, when given, is the config key that
    chooses an entry ("defense.training.method") and is named instead.
    """

    def __init__(self, kind: str, key: str | None = None):
        self.kind, self.key = kind, key
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, **meta) -> Callable:
        """Decorator that registers its argument (a builder function or a class) under name, unchanged.

        Registering the same object again is a no-op (a module imported twice); another object under
        a taken name is refused, since the later one would silently replace the first.
        """

        def wrap(obj):
            self.add(name, obj, **meta)
            return obj

        return wrap

    def add(self, name: str, obj: Any, **meta) -> Entry:
        """register() without the decorator, for objects made by a helper."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} is registered under a non-empty string, not {name!r}.")
        old = self._entries.get(name)
        if old is not None and old.obj is not obj:
            raise ConfigError(
                f"{self.kind} {name!r} is already registered (by {_where(old.obj)}); "
                f"{_where(obj)} needs a name of its own."
            )
        entry = Entry(name, obj, dict(meta))
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        """Unregisters name (tests that register a stand-in clean up with it); absent names are ignored."""
        self._entries.pop(name, None)

    def get(self, name: str) -> Entry:
        if not isinstance(name, str) or name not in self._entries:
            what = f"{self.key}={name!r}" if self.key else f"{self.kind} {name!r}"
            raise ConfigError(f"{what} is not known; choose one of {self.names()}.")
        return self._entries[name]

    def names(self) -> list[str]:
        """Registered names in registration order (sorted() them for an alphabetical list)."""
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _where(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def load_plugins(names) -> None:
    """Import the modules a config names first (`plugins: [my_models]`).

    A user's own models and attacks register themselves when their module is imported, so they extend a
    sweep without an edit to this package: their file, its yaml in a config folder on `hydra.searchpath`,
    and its module in `plugins`.
    """
    for name in names or []:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"plugins: {name!r} cannot be imported ({err}); put its folder on PYTHONPATH.") from err
