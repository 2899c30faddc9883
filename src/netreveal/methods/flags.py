"""CLI flags generated from the options dataclasses of the registered methods.

Each options field is one flag ``--<name>`` (type, default and help from the field). A field that
several methods declare (the CAM layer, the baseline...) must be declared identically (the
factories in :mod:`netreveal.methods.options` make sure of it) and becomes one shared flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from netreveal.errors import NetrevealError
from netreveal.methods.base import Method
from netreveal.methods.options import MethodOptions, check_value, field_types, flag_name
from netreveal.methods.registry import METHODS


@dataclasses.dataclass(frozen=True)
class Flag:
    """One generated flag: the options field behind it and the methods that read it."""

    field: dataclasses.Field
    type: type
    owners: tuple[str, ...]  # the methods that read it
    shared: bool  # declared by the common options or by several options classes

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def flag(self) -> str:
        return flag_name(self.field.name)

    @property
    def sweep(self) -> str | None:
        return self.field.metadata.get("sweep")


def _scalar(hint: Any) -> type:
    """int / float / str / bool from a field's type (``X | None`` gives X)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _scalar(args[0])
    if hint in (int, float, str, bool):
        return hint
    raise TypeError(f"an option must be int, float, str or bool (or None), not {hint!r}")


def _signature(field: dataclasses.Field, hint: type) -> tuple:
    return (hint, field.default, dict(field.metadata))


def flags(methods: Mapping[str, Method] = METHODS) -> list[Flag]:
    """Every CLI flag of ``methods``: the common settings first, then each method's own, in order."""
    found: dict[str, tuple[dataclasses.Field, type, list[str], set[type]]] = {}
    for cls, owner in [(MethodOptions, "")] + [(m.Options, name) for name, m in methods.items()]:
        hints = field_types(cls)
        for field in dataclasses.fields(cls):
            if not field.metadata.get("cli", False):
                continue
            hint = _scalar(hints[field.name])
            if field.name not in found:
                found[field.name] = (field, hint, [], set())
            known, known_hint, owners, classes = found[field.name]
            if _signature(known, known_hint) != _signature(field, hint):
                raise TypeError(f"option {field.name!r} of {owner} differs from its earlier declaration; "
                                "declare a shared option once (netreveal.methods.options)")
            if owner:
                owners.append(owner)
            classes.add(next(c for c in cls.__mro__ if field.name in getattr(c, "__annotations__", {})))
    return [Flag(field, hint, tuple(owners), MethodOptions in classes or len(classes) > 1)
            for field, hint, owners, classes in found.values()]


def _help(flag: Flag, default: Any) -> str:
    text = flag.field.metadata["help"]
    if flag.sweep:
        text += f"; evaluate takes a comma-separated list (one run per {flag.sweep})"
    if default != flag.field.default:
        library = "" if flag.field.default is None else f"; library default: {flag.field.default}"
        text += f" (default here: {default}{library})"
    elif default is not None:
        text += f" (default: {default})"
    return text.replace("%", "%%")


def add_method_flags(parser: argparse.ArgumentParser, methods: Mapping[str, Method] = METHODS,
                     defaults: Mapping[str, Any] | None = None) -> None:
    """Add one flag per option of ``methods``: shared ones in one group, the others grouped by the
    methods that read them. ``defaults`` (option name -> value) replaces the options' own defaults
    for this parser (a command with lighter settings, such as ``demo``); the help shows both."""
    defaults = dict(defaults or {})
    unknown = set(defaults) - {flag.name for flag in flags(methods)}
    if unknown:
        raise TypeError(f"no method option named {', '.join(sorted(unknown))}")
    shared = parser.add_argument_group("method options (shared)")
    groups: dict[tuple[str, ...], argparse._ArgumentGroup] = {}
    for flag in flags(methods):
        if flag.shared:
            group = shared
        else:
            if flag.owners not in groups:
                titles = " / ".join(methods[name].title for name in flag.owners)
                groups[flag.owners] = parser.add_argument_group(f"{titles} options")
            group = groups[flag.owners]
        default = defaults.get(flag.name, flag.field.default)
        if flag.name in defaults:
            check_value(flag.field, default)
        kwargs: dict[str, Any] = {"dest": flag.name, "default": default, "help": _help(flag, default)}
        if flag.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif flag.sweep:
            kwargs["type"] = str
        else:
            kwargs["type"] = flag.type
            if flag.field.metadata.get("choices"):
                kwargs["choices"] = flag.field.metadata["choices"]
        group.add_argument(flag.flag, **kwargs)


def _values_list(flag: Flag, text: Any) -> list:
    if not isinstance(text, str):
        return [text]
    kind = "whole numbers" if flag.type is int else "numbers" if flag.type is float else "values"
    try:
        values = [flag.type(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise NetrevealError(f"{flag.flag} must be {kind} separated by commas, got {text!r}") from None
    minimum = flag.field.metadata.get("minimum")
    if not values or (minimum is not None and min(values) < minimum):
        raise NetrevealError(f"{flag.flag} must be at least {minimum}, got {text!r}")
    return values


def method_values(args: argparse.Namespace, *, lists: bool,
                  methods: Mapping[str, Method] = METHODS) -> tuple[dict[str, Any], dict[str, list]]:
    """The option values given on the command line, checked, and the sweeps: with ``lists``, every
    value of each sweep flag (one or more); without, a sweep flag must hold one value. The values
    hold each sweep's first value."""
    values: dict[str, Any] = {}
    sweeps: dict[str, list] = {}
    for flag in flags(methods):
        value = getattr(args, flag.name)
        if flag.sweep:
            listed = _values_list(flag, value)
            if len(listed) > 1 and not lists:
                raise NetrevealError(f"{flag.flag} takes one {flag.sweep} here (a list only with evaluate)")
            if lists:
                sweeps[flag.name] = listed
            value = listed[0]
        check_value(flag.field, value)
        values[flag.name] = value
    return values, sweeps
