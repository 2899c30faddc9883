"""Mapping the tensor names of a checkpoint saved by another code base onto a model's own names.

Rules (``--weights-map``, repeatable; applied in the order given, each to the result of the
previous one, to every key of the checkpoint):

- ``strip:PREFIX``: remove ``PREFIX`` from the start of the keys that begin with it
  (``strip:module.``, ``strip:backbone.``);
- ``rename:OLD=NEW``: prefix rename, a key that begins with ``OLD`` gets ``NEW`` in its place
  (``rename:_fc.=classifier.``; end both with a dot so ``_blocks.1.`` does not catch ``_blocks.10.``);
- ``regex:PATTERN=REPLACEMENT``: Python ``re.sub`` on the whole key, every match, with ``\\1``
  groups (``regex:\\._depthwise_conv\\.=.conv_dw.``); the first ``=`` ends the pattern, write
  ``\\x3d`` for a literal ``=`` inside it;
- ``@FILE``: the rules of a text file, one per line (blank lines and ``#`` comments skipped);
- ``by-order``: on its own, pair the checkpoint's tensors with the model's in saved order, each
  pair checked for equal shape. ``num_batches_tracked`` counters take no part in the order (they
  follow their layer when it is matched, else the model keeps its own).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from netreveal.errors import NetrevealError

BY_ORDER = "by-order"
COUNTER = "num_batches_tracked"


@dataclass(frozen=True)
class Rule:
    """One renaming step: ``kind`` is ``strip``, ``rename`` or ``regex``."""

    kind: str
    old: str
    new: str = ""

    def apply(self, key: str) -> str:
        if self.kind == "regex":
            return re.sub(self.old, self.new, key)
        if key.startswith(self.old):
            return self.new + key[len(self.old):]
        return key

    def __str__(self) -> str:
        return f"strip:{self.old}" if self.kind == "strip" else f"{self.kind}:{self.old}={self.new}"


def parse_rules(specs: str | Sequence[str] | None) -> list[Rule] | str | None:
    """``None`` (no mapping), ``"by-order"``, or the list of :class:`Rule` the specs describe."""
    if specs is None:
        return None
    specs = [specs] if isinstance(specs, str) else list(specs)
    expanded = list(_expand_files(specs))
    if not expanded:
        return None
    if BY_ORDER in expanded:
        if len(expanded) > 1:
            raise NetrevealError("--weights-map by-order cannot be combined with other rules")
        return BY_ORDER
    return [_parse_rule(spec) for spec in expanded]


def _expand_files(specs: Iterable[str]) -> Iterable[str]:
    for spec in specs:
        spec = spec.strip()
        if not spec.startswith("@"):
            yield spec
            continue
        path = Path(spec[1:])
        if not path.is_file():
            raise NetrevealError(f"--weights-map rules file not found: {path}")
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


def _parse_rule(spec: str) -> Rule:
    kind, sep, body = spec.partition(":")
    if not sep or kind not in {"strip", "rename", "regex"}:
        raise NetrevealError(
            f"unknown --weights-map rule {spec!r}: "
            "use strip:PREFIX, rename:OLD=NEW, regex:PATTERN=NEW, @FILE or by-order"
        )
    if kind == "strip":
        if not body:
            raise NetrevealError(f"--weights-map rule {spec!r} strips nothing")
        return Rule("strip", body)
    old, eq, new = body.partition("=")
    if not eq or not old:
        raise NetrevealError(f"--weights-map rule {spec!r} needs the form {kind}:OLD=NEW")
    if kind == "regex":
        try:
            re.compile(old)
        except re.error as exc:
            raise NetrevealError(f"--weights-map rule {spec!r}: bad regular expression ({exc})") from None
    return Rule(kind, old, new)


def apply_rules(
    state: dict[str, torch.Tensor], rules: Sequence[Rule]
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``state`` under its new names, and the mapping ``{file key: new key}``."""
    mapping: dict[str, str] = {}
    for key in state:
        new = key
        for rule in rules:
            new = rule.apply(new)
        mapping[key] = new
    seen: dict[str, str] = {}
    for key, new in mapping.items():
        if new in seen:
            raise NetrevealError(
                f"--weights-map rules give two checkpoint tensors the name {new}: {seen[new]} and {key}"
            )
        seen[new] = key
    return {mapping[k]: v for k, v in state.items()}, mapping


def match_by_order(
    state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], arch: str
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Pair checkpoint and model tensors in saved order (shapes must agree): the renamed state
    and the mapping ``{file key: model key}``. A count or shape difference is one-line error."""
    source = [k for k in state if not _is_counter(k)]
    target = [k for k in own if not _is_counter(k)]
    if len(source) != len(target):
        raise NetrevealError(
            f"--weights-map by-order: the checkpoint has {len(source)} tensors but {arch} has {len(target)}"
            f" ({COUNTER} not counted)"
        )
    mapping: dict[str, str] = {}
    for i, (src, dst) in enumerate(zip(source, target)):
        if tuple(state[src].shape) != tuple(own[dst].shape):
            raise NetrevealError(
                f"--weights-map by-order: tensor #{i} differs in shape: checkpoint {src} {tuple(state[src].shape)}"
                f" vs {arch} {dst} {tuple(own[dst].shape)}"
            )
        mapping[src] = dst
    for src in state:  # counters follow the layer they belong to
        if _is_counter(src):
            layer = _layer_of(src, mapping)
            if layer is not None and f"{layer}.{COUNTER}" in own:
                mapping[src] = f"{layer}.{COUNTER}"
    mapping = {src: mapping[src] for src in state if src in mapping}  # checkpoint order
    return {dst: state[src] for src, dst in mapping.items()}, mapping


def _is_counter(key: str) -> bool:
    return key == COUNTER or key.endswith("." + COUNTER)


def _layer_of(counter: str, mapping: dict[str, str]) -> str | None:
    """The model layer that the counter's checkpoint layer was matched to."""
    parent = counter[: -len(COUNTER)]
    for src, dst in mapping.items():
        if src.startswith(parent) and "." not in src[len(parent):]:
            return dst.rsplit(".", 1)[0] if "." in dst else ""
    return None


def describe_mapping(mapping: dict[str, str]) -> list[str]:
    """One ``file key -> model key`` line per tensor, in checkpoint order."""
    return [f"{src} -> {dst}" for src, dst in mapping.items()]
