"""CSV exports that a spreadsheet opens safely, and the inverse for re-imported text.

Every exported table goes through :func:`spreadsheet_cell`: ``None`` becomes an empty cell,
datetimes ISO text, lists and dicts JSON, and free text that a spreadsheet would run as a formula
(a leading ``=``, ``+``, ``-``, ``@``, tab or carriage return) gets a leading apostrophe. Text that
already starts with an apostrophe gets one too, as a spreadsheet's own text prefix works: so
:func:`unescape_cell` can remove exactly the apostrophe that was added, and every text comes back
unchanged (``'=1+1`` is exported as ``''=1+1`` and read back as ``'=1+1``).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass
class Table:
    """A titled table (e.g. one a method adds to an evaluation); ``name`` ends its CSV file name."""

    title: str
    header: list[str]
    rows: list[list]
    name: str


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ESCAPED_STARTS = (*FORMULA_STARTS, "'")  # first characters that get an apostrophe in front


def spreadsheet_cell(value: Any) -> Any:
    """One CSV cell: empty for None, ISO for datetimes, JSON for containers, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, str) and value[:1] in ESCAPED_STARTS:
        return "'" + value
    return value


def unescape_cell(text: str) -> str:
    """Undo :func:`spreadsheet_cell`'s apostrophe on text read back from an exported CSV:
    ``unescape_cell(spreadsheet_cell(t)) == t`` for every string ``t``."""
    if text[:1] == "'" and text[1:2] in ESCAPED_STARTS:
        return text[1:]
    return text


def write_table(path: str | os.PathLike, columns: Sequence[str],
                rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> Path:
    """Write ``rows`` (dicts keyed by ``columns``, or sequences in column order) under a header,
    atomically: a reader sees the old file or the whole new one (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for row in rows:
                cells = [row[c] for c in columns] if isinstance(row, Mapping) else row
                writer.writerow([spreadsheet_cell(v) for v in cells])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
