"""A run's manifest (``manifest.json`` in its folder): the run's parameters, its shards and those
done with their files. It is rewritten atomically after each shard, so after a kill it names
exactly the shards whose files are complete."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netreveal.errors import NetrevealError

MANIFEST = "manifest.json"
FORMAT = "netreveal-run"


@dataclass
class Manifest:
    """``done`` maps a shard's index to what its work returned (its files, image count, seconds)."""

    parameters: dict[str, Any]
    shards: int
    done: dict[int, dict[str, Any]] = field(default_factory=dict)
    complete: bool = False
    writer: str = ""  # the process writing the run (host-pid-start)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/manifest.json`` atomically (a reader sees the old or the new one)."""
        path = Path(folder, MANIFEST)
        tmp = path.with_name(f".{MANIFEST}.tmp")
        doc = {"format": FORMAT, **asdict(self), "done": {str(k): v for k, v in sorted(self.done.items())}}
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Manifest:
        path = Path(folder, MANIFEST)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT:
                raise ValueError("not a run manifest")
            return cls(doc["parameters"], int(doc["shards"]), {int(k): v for k, v in doc["done"].items()},
                       bool(doc.get("complete")), str(doc.get("writer", "")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NetrevealError(f"cannot resume {Path(folder)}: its {MANIFEST} is missing or unreadable "
                                 f"({type(exc).__name__}); pass --force to start over") from None


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {f"{prefix}.count": len(value)}
        for i, v in enumerate(value):
            out.update(_flat(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def check_same_parameters(saved: dict[str, Any], now: dict[str, Any], folder: str | os.PathLike) -> None:
    """NetrevealError naming the first parameter that differs between a run and its resumption."""
    old, new = _flat(saved), _flat(now)
    for key in [*old, *(k for k in new if k not in old)]:
        if old.get(key, "(none)") != new.get(key, "(none)"):
            raise NetrevealError(f"cannot resume {Path(folder)}: it was started with other parameters "
                                 f"({key} was {old.get(key, '(none)')!r}, now {new.get(key, '(none)')!r}); "
                                 "pass --force to start over")


__all__ = ["MANIFEST", "Manifest", "check_same_parameters"]
