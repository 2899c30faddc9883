"""The method registry: ``@register_method`` on a :class:`~netreveal.methods.base.Method` subclass
makes it known by its ``name``. Every module of the ``netreveal.methods`` package is imported on
first use, so a new method is one new file in that package."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from typing import TypeVar

from netreveal.errors import NetrevealError
from netreveal.methods.base import Method

M = TypeVar("M", bound=type[Method])
_REGISTRY: dict[str, Method] = {}
_discovered = False


def register_method(cls: M) -> M:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError("register_method decorates Method subclasses")
    if not cls.name or not cls.title:
        raise TypeError(f"{cls.__name__} needs a name and a title")
    known = _REGISTRY.get(cls.name)
    if known is not None and type(known).__qualname__ != cls.__qualname__:
        raise TypeError(f"method name {cls.name!r} is taken by {type(known).__name__}")
    _REGISTRY[cls.name] = cls()
    return cls


def _discover() -> None:
    """Import every module of this package once (each registers the methods it defines)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module("netreveal.methods")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        importlib.import_module(f"netreveal.methods.{info.name}")


class _Methods(Mapping):
    """Read-only view of the registry by name (discovers the built-in methods on first use)."""

    def __getitem__(self, name: str) -> Method:
        _discover()
        return _REGISTRY[name]

    def __iter__(self) -> Iterator[str]:
        _discover()
        return iter(list(_REGISTRY))

    def __len__(self) -> int:
        _discover()
        return len(_REGISTRY)


METHODS: Mapping[str, Method] = _Methods()


def method_names() -> list[str]:
    return list(METHODS)


def get_methods(names: str | list[str]) -> list[Method]:
    """Methods by name (comma-separated string or list); unknown names are an error."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise NetrevealError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if not names:
        raise NetrevealError("no method given")
    return [METHODS[n] for n in names]
