"""Exporting a reveal study: every record as CSV and JSON, with its pictures."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from netreveal.csvtable import write_table
from netreveal.fileio import STUDY_EXPORT, staged_folder
from netreveal.store.db import Store
from netreveal.store.json_values import json_safe
from netreveal.store.studies import (
    EXPORT_COLUMNS,
    export_media_ids,
    export_tables,
    get_study,
    media_pngs,
)

EXPORT_FORMAT = "netreveal-study-export"
EXPORT_VERSION = 1


def export_study(store: Store, name: str, out_dir: str | os.PathLike, *, media: bool = True,
                 force: bool = False) -> Path:
    """Write every record of study ``name`` to ``out_dir``: one CSV per table and ``study.json``
    with all of them, plus (``media``) every picture as ``media/<media_id>.png``.

    Tables: study, images, items, reveal_frames, games, guesses, concepts, concept_members,
    concept_events and the accounts that took part (id, username, role, background, created_at:
    never password hashes or sessions). Written to a staging folder renamed into place; an
    existing ``out_dir`` is replaced only when it is empty or (with ``force``) an earlier export.
    """
    out = Path(out_dir)
    with staged_folder(out, STUDY_EXPORT, force=force, label="export") as tmp:
        with store.session() as session:
            tables = export_tables(session, get_study(session, name))
            for table, rows in tables.items():
                write_table(tmp / f"{table}.csv", EXPORT_COLUMNS[table],
                            ({k: json_safe(v) if isinstance(v, (dict, list)) else v for k, v in row.items()}
                             for row in rows))
            if media:
                (tmp / "media").mkdir()
                ids = export_media_ids(tables)
                for media_id, png in media_pngs(session, ids):
                    (tmp / "media" / f"{media_id}.png").write_bytes(png)
        document = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "media": "media/<media_id>.png" if media else None,
            **{table: [_json_row(r) for r in rows] for table, rows in tables.items()},
        }
        document["study"] = document["study"][0]
        (tmp / "study.json").write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
    return out


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else json_safe(v) for k, v in row.items()}


__all__ = ["EXPORT_COLUMNS", "export_study"]
