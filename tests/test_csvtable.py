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
    # a leading apostrophe gets one more, so the one added can be told from one typed
    for text in ("'=1+1", "'quoted'", "'", "''x", "'+"):
        assert spreadsheet_cell(text) == "'" + text and unescape_cell("'" + text) == text
    for text in ("wing", "", "a=b", "a'b", " =x"):
        assert spreadsheet_cell(text) == text and unescape_cell(text) == text


HOSTILE = ["=1+1", "'=1+1", "''x", "'''", "'", "''", "+", "-5", "@a", "\t=x", "\r-x", "a\tb", "line\nbreak",
           "'\n", 'say "hi"', "a,b", "naïve 猫 🐈", "x" * 200, "", " ", "-", "=", "'-", "'a", "a'"]


def test_unescape_inverts_spreadsheet_cell_on_any_text():
    for text in HOSTILE:
        assert unescape_cell(spreadsheet_cell(text)) == text, text
    assert len({spreadsheet_cell(t) for t in HOSTILE}) == len(HOSTILE)  # no two texts written the same


def test_hostile_text_comes_back_through_a_file(tmp_path):
    path = write_table(tmp_path / "t.csv", ["text"], [[t] for t in HOSTILE])
    with open(path, newline="", encoding="utf-8") as fh:
        cells = [row[0] for row in list(csv.reader(fh))[1:]]
    assert [unescape_cell(c) for c in cells] == HOSTILE
    assert not any(c[:1] in ("=", "+", "-", "@", "\t", "\r") for c in cells)  # nothing a spreadsheet would run


def test_write_table_accepts_dicts_and_sequences(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, ["a", "b"], [{"b": "=x", "a": 1}, [None, "ok"]])
    with open(path, newline="", encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == [["a", "b"], ["1", "'=x"], ["", "ok"]]
