# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)
"""``netreveal study create|export|import-labels|list``: the happy path, and bad input as exit code
2 with one line on stderr and nothing stored."""

import csv
import json
import subprocess
import sys

import pytest
from cli_checks import fails_with_one_line
from dbs import make_tiny_study, row_counts, store, store_url  # noqa: F401  (fixtures)
from sqlalchemy import select

from netreveal.cli import main
from netreveal.store import open_store
from netreveal.store.models import Item


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from netreveal.data.partsworld import PartsWorld

    folder = tmp_path_factory.mktemp("pw")
    PartsWorld(size=64, seed=0, split="test").write_folder(folder, 1)
    return folder


def test_create_list_export_import(store_url, image_folder, tmp_path, capsys):
    db = ["--database-url", store_url]
    assert main(["study", "list", *db]) == 0
    assert capsys.readouterr().out.startswith("no study in ")
    assert main(["study", "create", "--name", "pw", "--images", str(image_folder), "--limit", "2", "--quiet", *db]) == 0
    out = capsys.readouterr().out
    assert "created study 'pw'" in out and "2 images" in out
    assert main(["study", "list", *db]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["id", "name", "kind", "images", "items", "labels", "created"]
    fields = listing[1].split()
    assert fields[1:4] == ["pw", "reveal", "2"] and int(fields[4]) > 0 and fields[5] == "0"
    opened = open_store(store_url)
    with opened.session() as s:
        item_ids = list(s.scalars(select(Item.id).order_by(Item.id)))
    opened.close()
    assert len(item_ids) == int(fields[4])
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as fh:
        csv.writer(fh).writerows([["item_id", "text", "step", "guessed_class", "player"],
                                  [item_ids[0], "red star", 2, "badge", "ann"], [item_ids[-1], "wheel", 5, "", ""]])
    assert main(["study", "import-labels", "--name", "pw", "--csv", str(labels), *db]) == 0
    assert capsys.readouterr().out.strip() == "imported 2 labels into study 'pw'"
    assert main(["study", "export", "--name", "pw", "--out", str(tmp_path / "export"), *db]) == 0
    assert capsys.readouterr().out.strip() == str((tmp_path / "export").resolve())
    doc = json.loads((tmp_path / "export" / "study.json").read_text())
    assert [g["text"] for g in doc["guesses"]] == ["red star", "wheel"]
    assert len(doc["items"]) == len(item_ids)
    # the same name again: refused, nothing changes
    before = row_counts(store_url)
    fails_with_one_line(capsys, ["study", "create", "--name", "pw", "--images", str(image_folder), "--quiet", *db],
                        "already exists")
    assert row_counts(store_url) == before


def test_bad_input_is_one_line_and_stores_nothing(store_url, image_folder, tmp_path, capsys):
    db = ["--database-url", store_url]
    opened = open_store(store_url)
    make_tiny_study(opened, 2)
    opened.close()
    before = row_counts(store_url)
    empty = tmp_path / "empty"
    empty.mkdir()
    create = ["study", "create", "--quiet", *db]
    fails_with_one_line(capsys, [*create, "--name", "x", "--images", str(tmp_path / "missing")], "path not found")
    fails_with_one_line(capsys, [*create, "--name", "x", "--images", str(empty)], "no images found")
    fails_with_one_line(capsys, [*create, "--name", "bad name", "--images", str(image_folder)], "bad study name")
    fails_with_one_line(capsys, [*create, "--name", "x", "--images", str(image_folder), "--model", "no-such-model"],
                        "unknown model")
    fails_with_one_line(capsys, [*create, "--name", "x", "--images", str(image_folder), "--layers", "features.nope"],
           "unknown layer")
    fails_with_one_line(capsys, ["study", "export", "--name", "nope", "--out", str(tmp_path / "o"), *db],
                        "unknown study 'nope'")
    assert not (tmp_path / "o").exists()
    good = tmp_path / "good.csv"
    good.write_text("item_id,text,step,guessed_class\n1,x,1,cat\n")
    fails_with_one_line(capsys, ["study", "import-labels", "--name", "nope", "--csv", str(good), *db],
                        "unknown study 'nope'")
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,text,step,guessed_class\n1,x,1,cat\n999999,y,2,cat\n")
    fails_with_one_line(capsys, ["study", "import-labels", "--name", "tiny", "--csv", str(bad), *db],
                        "line 3: unknown item id")
    bad.write_text("item_id,text,step,guessed_class\n1,x,9,cat\n")
    fails_with_one_line(capsys, ["study", "import-labels", "--name", "tiny", "--csv", str(bad), *db], "step 9")
    fails_with_one_line(capsys, ["study", "import-labels", "--name", "tiny", "--csv", str(tmp_path / "none.csv"), *db],
                        "not found")
    assert row_counts(store_url) == before


def test_bad_database_urls(tmp_path, capsys):
    fails_with_one_line(capsys, ["study", "list", "--database-url", "nosuchdb://x/y"], "cannot open database")
    fails_with_one_line(capsys, ["study", "list", "--database-url", "postgresql://nobody@127.0.0.1:9/none"],
                        "cannot open database")
    fails_with_one_line(capsys, ["study", "list", "--database-url", str(tmp_path / "no" / "dir" / "x.db")],
                        "does not exist")
    not_db = tmp_path / "notes.db"
    not_db.write_text("just text")
    fails_with_one_line(capsys, ["study", "list", "--database-url", str(not_db)], "cannot open database")
    assert not_db.read_text() == "just text"


def test_command_line_process(tmp_path):
    """The installed entry point: exit code 2 and one line, no traceback."""
    result = subprocess.run([sys.executable, "-m", "netreveal.cli", "study", "export", "--name", "x", "--out",
                             str(tmp_path / "o"), "--database-url", str(tmp_path / "s.db")],
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip() == "netreveal: error: unknown study 'x'; the database has no study"
