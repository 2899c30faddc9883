"""The demo's lighter method settings, and the line that tells the reader about them.

``netreveal demo`` runs every default method on a few images in about a minute on a laptop CPU, so
the costly optimisations run fewer iterations and path steps than the library's (paper-faithful)
defaults. The flags still take any value; the report says which settings were lighter than the
library's. This module imports no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# option name -> the demo's value (library defaults: see the options of each method)
DEMO_SETTINGS: dict[str, Any] = {
    "igos_iterations": 3,  # I-GOS / iGOS++ (library: 15)
    "igos_steps": 5,  # I-GOS / iGOS++ path steps per iteration (library: 20)
    "grid": 5,  # SAG patch grid: 25 patches to search instead of 49 (library: 7)
    "sag_saliency_steps": 5,  # path steps of the I-GOS map that orders SAG's patches (library: 20)
    "sag_beam_width": 2,  # SAG reference beam (library: 3)
}


def reduced_settings(values: Mapping[str, Any], methods: Iterable[str]) -> list[tuple[str, Any, Any]]:
    """``(flag, value of this run, library default)`` for each demo setting that one of ``methods``
    reads and whose value in ``values`` differs from the library's (for a SAG setting whose
    option is unset, the chosen SAG variant's own value)."""
    from netreveal.methods.flags import flags

    known = {flag.name: flag for flag in flags()}
    names = set(methods)
    out = []
    for name in DEMO_SETTINGS:
        flag = known[name]
        if not names & set(flag.owners):
            continue
        library = _library_value(name, flag.field.default, values)
        value = values.get(name)
        value = library if value is None else value
        if value != library:
            out.append((flag.flag, value, library))
    return out


def _library_value(name: str, default: Any, values: Mapping[str, Any]) -> Any:
    """The value the library uses for a setting left at its option default (a SAG option's None
    means the SAG variant's own setting)."""
    if default is not None or not name.startswith("sag_"):
        return default
    from netreveal.sag.variants import variant_settings

    settings = variant_settings(values.get("sag_variant") or "reference", int(values.get("grid") or 7))
    key = name.removeprefix("sag_")
    if key.startswith("saliency_"):
        return settings["saliency"][{"saliency_steps": "ig_steps", "saliency_iterations": "iterations"}[key]]
    return settings[key]


def settings_note(values: Mapping[str, Any], methods: Iterable[str]) -> str | None:
    """The report's line on the demo's lighter settings (None when every setting is the library's)."""
    reduced = reduced_settings(values, methods)
    if not reduced:
        return None
    listed = ", ".join(f"{flag} {value} (library default {library})" for flag, value, library in reduced)
    return (f"Demo settings, lighter than the library defaults so that the demo runs in about a minute: {listed}. "
            "Pass these flags to netreveal demo (or run netreveal explain --model demo) for the library's settings.")


__all__ = ["DEMO_SETTINGS", "reduced_settings", "settings_note"]
