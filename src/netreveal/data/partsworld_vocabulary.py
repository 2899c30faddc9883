"""The parts world's vocabulary: the part types with the other words people use for them, and the
classes, each defined by a combination of two or three parts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netreveal.errors import NetrevealError


@dataclass(frozen=True)
class PartType:
    """A kind of part: its canonical name and the other words people use for it."""

    name: str
    synonyms: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name first, then the synonyms."""
        return (self.name, *self.synonyms)


PART_TYPES: dict[str, PartType] = {
    p.name: p
    for p in (
        PartType("wheel", ("tyre", "tire", "rim", "ring", "hoop")),
        PartType("wing", ("triangle", "fin", "sail", "wedge")),
        PartType("star", ("starfish", "sparkle", "pentagram", "twinkle")),
        PartType("stripes", ("bars", "lines", "bands", "stripe")),
        PartType("cross", ("plus", "plus sign", "crosshair", "intersection")),
        PartType("checkerboard", ("checker", "chessboard", "grid", "tiles")),
        PartType("crescent", ("moon", "crescent moon", "sickle", "banana")),
        PartType("zigzag", ("zig zag", "lightning", "squiggle", "wave")),
        PartType("dots", ("spots", "polka dots", "speckles", "bubbles")),
        PartType("diamond", ("rhombus", "lozenge", "gem")),
        PartType("frame", ("square", "box", "window", "outline")),
        PartType("arrow", ("pointer", "arrowhead", "dart")),
    )
}

CLASSES: dict[str, tuple[str, ...]] = {
    "cart": ("wheel", "stripes"),
    "plane": ("wheel", "wing"),
    "glider": ("wing", "zigzag"),
    "beacon": ("star", "cross"),
    "night": ("crescent", "star"),
    "board": ("checkerboard", "cross"),
    "reef": ("dots", "crescent", "zigzag"),
    "badge": ("diamond", "stripes", "dots"),
}


def class_names(classes: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Class names in label order."""
    return list(CLASSES if classes is None else classes)


def part_names() -> list[str]:
    """Canonical part names in a fixed order."""
    return list(PART_TYPES)


def synonym_lookup() -> dict[str, str]:
    """Every name of every part (lower case) -> the part's canonical name."""
    return {word.lower(): p.name for p in PART_TYPES.values() for word in p.names}


def check_classes(classes: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """``classes`` as a dict of part tuples, if they are usable class definitions.

    Needs at least two classes, each made of distinct known parts, and no class whose parts are
    all among another class's parts (the combination must decide the class).
    """
    out = {str(k): tuple(v) for k, v in classes.items()}
    if len(out) < 2:
        raise NetrevealError("parts world needs at least two classes")
    for name, parts in out.items():
        unknown = [p for p in parts if p not in PART_TYPES]
        if unknown:
            raise NetrevealError(
                f"class {name!r} uses unknown part(s) {unknown}; known: {', '.join(PART_TYPES)}"
            )
        if not 1 <= len(set(parts)) == len(parts):
            raise NetrevealError(f"class {name!r} must have distinct parts")
    for a, pa in out.items():
        for b, pb in out.items():
            if a != b and set(pa) <= set(pb):
                raise NetrevealError(
                    f"class {a!r} parts {pa} are contained in class {b!r} parts {pb}"
                )
    return out
