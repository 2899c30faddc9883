"""Spreadsheet-safe CSV cells and their inverse."""

import csv
from datetime import datetime, timezone

from netreveal.csvtable import spreadsheet_cell, unescape_cell, write_table


def test_cells():
    assert spreadsheet_cell(None) == ""
    assert spreadsheet_cell(-0.5) == -0.5 and spreadsheet_cell(3) == 3 and spreadsheet_cell(True) is True
    assert spreadsheet_cell(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "2026-01-02T03:04:05+00:00"
    assert spreadsheet_cell({"a": [1, "é"]}) == '{"a": [1, "é"]}'
    for text in ("=1+1", "+1", "-1", "@x", "\tx", "\rx"):
        assert spreadsheet_cell(text) == "'" + text and unescape_cell("'" + text) == text
    for text in ("wing", "'quoted'", "'", "", "a=b"):
        assert spreadsheet_cell(text) == text and unescape_cell(text) == text


def test_write_table_accepts_dicts_and_sequences(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, ["a", "b"], [{"b": "=x", "a": 1}, [None, "ok"]])
    with open(path, newline="", encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == [["a", "b"], ["1", "'=x"], ["", "ok"]]
