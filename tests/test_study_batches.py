"""``study create`` reads, explains and stores its images batch by batch (one transaction each):
over more images than one batch it stores what creating the study at once stores, and a creation
killed with SIGKILL after its first batches continues with ``--resume`` to the same study."""

import os
import signal
import subprocess
import sys
import time

import pytest
from cli_checks import fails_with_one_line, same_threads_env
from sqlalchemy import func, select

from netreveal.cli import main
from netreveal.data.partsworld import PartsWorld
from netreveal.model.adapter import load_model
from netreveal.pipeline import read_folder
from netreveal.store import open_store
from netreveal.store.models import Item, Study, StudyImage
from netreveal.studies.inv_study import create_study

N = 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pw")
    PartsWorld(size=64, seed=0, split="test").write_folder(root, n_per_class=1, split="test")
    return root


def _records(url: str, name: str) -> tuple[list, list, dict]:
    store = open_store(url)
    try:
        with store.session() as s:
            study = s.scalars(select(Study).where(Study.name == name)).one()
            assert study.building_at is None
            keys = {i.id: i.key for i in s.scalars(select(StudyImage).where(StudyImage.study_id == study.id))}
            items = sorted((keys[i.image_id], i.layer, i.depth, i.cluster, round(i.weight, 4), tuple(i.channels))
                           for i in s.scalars(select(Item).where(Item.study_id == study.id)))
            params = {k: v for k, v in study.params.items() if k != "provenance"}
            return sorted(keys.values()), items, params
    finally:
        store.close()


def test_more_images_than_one_batch_store_what_one_pass_stores(tmp_path, folder):
    db = str(tmp_path / "s.db")
    assert main(["study", "create", "--name", "batched", "--images", str(folder), "--layers", "last:2",
                 "--batch-size", "3", "--quiet", "--database-url", db]) == 0
    adapter = load_model("demo")
    store = open_store(db)
    try:
        create_study(store, "at-once", adapter, read_folder(adapter, folder), layers="last:2", batch_size=3)
    finally:
        store.close()
    keys, items, params = _records(db, "batched")
    assert len(keys) == N and items and _records(db, "at-once") == (keys, items, params)
    assert params["counts"] == {"images": N, "items": len(items)} and "build" not in params


def test_a_killed_creation_resumes_to_the_same_study(tmp_path, folder, capsys):
    db = str(tmp_path / "s.db")
    argv = ["study", "create", "--name", "pw", "--images", str(folder), "--layers", "last:2", "--batch-size", "1",
            "--quiet", "--database-url", db]
    proc = subprocess.Popen([sys.executable, "-m", "netreveal.cli", *argv],
                            env=same_threads_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = open_store(db) if os.path.exists(db) else None
    try:
        deadline = time.monotonic() + 300
        stored = 0
        while stored < 2:
            assert proc.poll() is None, "the creation ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
            if store is None and os.path.exists(db):
                store = open_store(db)
            if store is not None:
                with store.session() as s:
                    stored = s.scalar(select(func.count()).select_from(StudyImage))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if store is not None:
            store.close()
    store = open_store(db)
    with store.session() as s:
        assert 2 <= s.scalar(select(func.count()).select_from(StudyImage)) < N  # the stored batches survived
    store.close()
    fails_with_one_line(capsys, argv, "already exists")
    fails_with_one_line(capsys, [*argv[:-2], "--seed", "3", "--resume", "--database-url", db],
                        "cannot resume study 'pw': it was started with other settings (seed differs)")
    assert main([*argv, "--resume"]) == 0
    assert main([*argv[:2], "--name", "again", *argv[4:]]) == 0
    assert _records(db, "pw") == _records(db, "again")
    fails_with_one_line(capsys, [*argv, "--resume"], "study 'pw' is complete; nothing to resume")
