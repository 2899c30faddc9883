# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)
"""An exported guesses.csv imported back (``study import-labels``) gives the same guesses: exporting
again writes the same cells, byte for byte — with hostile text and player names, on SQLite and
PostgreSQL, into a fresh database or into the study it came from."""

import csv
import uuid

import pytest
from dbs import make_tiny_study, other_store, row_counts, store, store_url  # noqa: F401  (fixtures)
from sqlalchemy import select

from netreveal.cli import main
from netreveal.csvtable import write_table
from netreveal.errors import NetrevealError
from netreveal.store import game as rules
from netreveal.store.models import Account, Guess, Item, Study
from netreveal.studies.export import export_study
from netreveal.studies.label_import import import_labels

# what people type, as the import stores it (no leading or trailing space: cells are stripped)
TEXTS = ["=1+1", "'=1+1", "''x", "'''", "'", "+", "-5", "@a", "-", "'-", "a\tb", "tab\t=x", "line\nbreak",
         "crlf\r\nend", "=\nx", 'say "hi", ok', "a,b,c", "naïve café 猫 🐈 ﷽", "x" * 200, "plain", "'quoted'",
         "@SUM(A1:A9)", "=HYPERLINK(\"http://x\")", "+1 legs", "a'b"]
PLAYERS = ["ann", "=cmd", "'bob", "Zoë", "", "-x", 'a,b "q"', "n" * 40, "@p", "''", "+1"]
LABEL_COLUMNS = ["item_id", "request_id", "player_name", "step", "guessed_class", "text", "language", "correct",
                 "created_at"]


def _item_ids(store) -> list[int]:
    with store.session() as s:
        return list(s.scalars(select(Item.id).join(Study).where(Study.name == "tiny").order_by(Item.id)))


def _export(store, folder) -> bytes:
    return (export_study(store, "tiny", folder, media=False) / "guesses.csv").read_bytes()


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(data.decode("utf-8").splitlines(keepends=True)))


def _texts(store) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(Guess.text).order_by(Guess.id)))


def _labels_file(path, ids: list[int]):
    """A hand-made label file (written spreadsheet-safe, as an export is) with every hostile text."""
    rows = [{"item_id": ids[i % len(ids)], "text": text, "step": 1 + i % 6,
             "guessed_class": ("cat", "dog", "fox", "")[i % 4], "player": PLAYERS[i % len(PLAYERS)],
             "language": ("en", "", "pt-BR")[i % 3]} for i, text in enumerate(TEXTS)]
    return write_table(path, ["item_id", "text", "step", "guessed_class", "player", "language"], rows)


def test_imported_labels_round_trip_byte_for_byte(store, other_store, tmp_path):
    make_tiny_study(store, 3)
    make_tiny_study(other_store, 3)
    ids = _item_ids(store)
    assert _item_ids(other_store) == ids
    assert import_labels(store, "tiny", _labels_file(tmp_path / "hand.csv", ids)) == len(TEXTS)
    assert _texts(store) == TEXTS
    with store.session() as s:
        assert [g.player_name for g in s.scalars(select(Guess).order_by(Guess.id))] == [
            PLAYERS[i % len(PLAYERS)] for i in range(len(TEXTS))]
    first = _export(store, tmp_path / "a")
    # into a fresh database: every cell of the export again, byte for byte
    assert import_labels(other_store, "tiny", tmp_path / "a" / "guesses.csv") == len(TEXTS)
    assert _texts(other_store) == TEXTS
    assert _export(other_store, tmp_path / "b") == first
    # into its own study: each guess is there already, nothing is stored twice
    before = row_counts(store)
    assert import_labels(store, "tiny", tmp_path / "a" / "guesses.csv") == 0
    assert row_counts(store) == before
    assert _export(store, tmp_path / "a2") == first


def _play(store, ids: list[int]) -> None:
    """Three players play with hostile labels (the game's cleaning applies: NFC, spaces collapsed)."""
    texts = iter(["=1+1", "'=1+1", "''x", "+", "-5", "@a", 'say "hi", ok', "a,b", "naïve 猫 🐈", "y" * 100,
                  "'", "-", "=SUM(1)", "'+", "@", "plain", "'quoted'", "a'b"] * 2)
    with store.session() as s:
        study = s.scalars(select(Study).where(Study.name == "tiny")).one()
        players = [Account(username=n, password_hash="x") for n in ("ann", "bob.b", "zoe-1")]
        s.add_all(players)
        s.flush()
        for player in players:
            for _round in range(3):
                game = rules.start_round(s, study, player)
                answer = rules.answer_of(s.get(Item, game.item_id).image)
                wrong = next(c for c in study.classes if c != answer)
                for step in range(1, 4):  # two wrong classes, then the right one
                    guessed = answer if step == 3 else wrong
                    rules.submit_guess(s, study, player, game.id, request_id=str(uuid.uuid4()),
                                       guessed_class=guessed, text=next(texts), step=step)


def test_game_guesses_round_trip(store, other_store, tmp_path):
    make_tiny_study(store, 3)
    make_tiny_study(other_store, 3)
    ids = _item_ids(store)
    _play(store, ids)
    first = _export(store, tmp_path / "a")
    exported = _rows(first)
    assert len(exported) == 27 and {r["player_name"] for r in exported} == {"ann", "bob.b", "zoe-1"}
    assert {r["source"] for r in exported} == {"game"}
    assert import_labels(other_store, "tiny", tmp_path / "a" / "guesses.csv") == 27
    assert _texts(other_store) == _texts(store)
    second = _rows(_export(other_store, tmp_path / "b"))
    # every column that describes a guess, cell for cell; rounds and accounts are not in the new database
    assert [[r[c] for c in LABEL_COLUMNS] for r in second] == [[r[c] for c in LABEL_COLUMNS] for r in exported]
    assert {(r["game_id"], r["player_id"], r["source"]) for r in second} == {("", "", "import")}
    with other_store.session() as s:
        counts = dict(s.execute(select(Item.id, Item.label_count)).all())
    assert sum(counts.values()) == 27
    # the study's own export into itself: nothing new, the same file
    assert import_labels(store, "tiny", tmp_path / "a" / "guesses.csv") == 0
    assert _export(store, tmp_path / "a2") == first


def test_round_trip_through_the_command_line(store, other_store, tmp_path, capsys):
    make_tiny_study(store, 2)
    make_tiny_study(other_store, 2)
    ids = _item_ids(store)
    urls = [s.engine.url.render_as_string(hide_password=False) for s in (store, other_store)]
    assert main(["study", "import-labels", "--name", "tiny", "--csv", str(_labels_file(tmp_path / "hand.csv", ids)),
                 "--database-url", urls[0]]) == 0
    assert main(["study", "export", "--name", "tiny", "--out", str(tmp_path / "a"), "--database-url", urls[0]]) == 0
    assert main(["study", "import-labels", "--name", "tiny", "--csv", str(tmp_path / "a" / "guesses.csv"),
                 "--database-url", urls[1]]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"imported {len(TEXTS)} labels into study 'tiny'"
    assert main(["study", "export", "--name", "tiny", "--out", str(tmp_path / "b"), "--database-url", urls[1]]) == 0
    assert (tmp_path / "b" / "guesses.csv").read_bytes() == (tmp_path / "a" / "guesses.csv").read_bytes()


def test_an_export_row_without_text_is_kept(store, other_store, tmp_path):
    make_tiny_study(store, 2)
    make_tiny_study(other_store, 2)
    ids = _item_ids(store)
    with store.session() as s:  # a guess of the class only, as older games stored them
        s.add(Guess(item_id=ids[0], step=2, guessed_class="dog", text="", correct=False, request_id="r-1",
                    player_name="bob"))
    first = _export(store, tmp_path / "a")
    assert import_labels(other_store, "tiny", tmp_path / "a" / "guesses.csv") == 1
    second = _rows(_export(other_store, tmp_path / "b"))
    assert [[r[c] for c in LABEL_COLUMNS] for r in second] == [[r[c] for c in LABEL_COLUMNS] for r in _rows(first)]
    assert second[0]["text"] == "" and second[0]["player_name"] == "bob"
    with other_store.session() as s:
        assert s.get(Item, ids[0]).label_count == 0  # a guess without text is no label


BAD = [
    ("taken request id", [["request_id"], ["r-x"]], "already stored for another guess"),
    ("request id twice", [["request_id"], ["r-2"], ["r-2"]], "also on line 2"),
    ("player and player_name", [["player", "player_name"], ["a", "b"]], "both a player and a player_name"),
    ("correct maybe", [["correct"], ["maybe"]], "correct 'maybe'"),
    ("correct without class", [["correct", "guessed_class"], ["True", ""]], "cannot be correct"),
    ("bad time", [["created_at"], ["yesterday"]], "not an ISO date"),
    ("long request id", [["request_id"], ["r" * 65]], "longer than 64"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_export_columns_store_nothing(store, tmp_path, case):
    _, (extra, *values), message = case
    make_tiny_study(store, 1)
    ids = _item_ids(store)
    with store.session() as s:
        s.add(Guess(item_id=ids[1], step=1, guessed_class="cat", text="other", correct=True, request_id="r-x"))
    base = {"item_id": ids[0], "text": "wing", "step": 2, "guessed_class": "cat"}
    header = list(dict.fromkeys([*base, *extra]))
    rows = [{**base, **dict(zip(extra, v))} for v in values]
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(rows)
    before = row_counts(store)
    with pytest.raises(NetrevealError, match=message):
        import_labels(store, "tiny", path)
    assert row_counts(store) == before
