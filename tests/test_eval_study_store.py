# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)
"""Evaluation studies in the store: creation from a model checked against the methods and the
design, atomic writes, migration 0004 with data, enrolment, one response per participant and
question, resuming at the first unanswered question, pictures by the participant's letters, export."""

import io
import json
from datetime import datetime, timezone

import numpy as np
import pytest
import torch
from dbs import row_counts, store, store_url  # noqa: F401  (fixtures)
from evalstudy import METHODS, make_eval_study, method_of
from PIL import Image
from sqlalchemy import MetaData, create_engine, func, insert, inspect, pool, select, text
from sqlalchemy.exc import IntegrityError

from netreveal.errors import NetrevealError
from netreveal.store import evaluation_flow as flow
from netreveal.store import open_store
from netreveal.store.accounts import create_account
from netreveal.store.evaluation import EvalImage, load_design, study_data, write_evaluation_study
from netreveal.store.models import (
    EvalParticipant,
    EvalPicture,
    EvalQuestion,
    EvalResponse,
    Media,
    Study,
    StudyImage,
)
from netreveal.store.schema import (
    current_revision,
    downgrade_schema,
    head_revision,
    schema_diffs,
    upgrade_schema,
)
from netreveal.studies.evaluation import (
    create_evaluation_study,
    display_maps,
    export_evaluation,
    overlay_png,
    picture_png,
)
from netreveal.userstudy import assign, make_design
from netreveal.userstudy.records import SCALES

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def _people(store, n: int, background: str = "novice"):
    """``n`` accounts enrolled in study "ev" (slots 0..n-1): [(account id, participant id)]."""
    out = []
    with store.session() as s:
        study = s.scalars(select(Study).where(Study.name == "ev")).one()
        for i in range(n):
            account = create_account(s, f"person{i}", "long enough password")
            s.flush()
            participant = flow.enrol(s, study, account, background, True)
            out.append((account.id, participant.id))
    return out


def _valid_answer(question) -> dict:
    if question.kind == "rating":
        return {"ratings": {letter: {scale: 1 + (ord(letter) - 65 + i) % 5 for i, scale in enumerate(SCALES)}
                            for letter in question.methods}}
    if question.kind == "comment":
        return {"text": "fine"}
    return {"choice": question.options[0]}


def _answer_current(store, participant_id: int) -> tuple:
    """Answer the participant's current question; (question, new state)."""
    with store.session() as s:
        study = s.scalars(select(Study).where(Study.name == "ev")).one()
        participant = s.get(EvalParticipant, participant_id)
        current = flow.state(s, study, participant)["question"]["id"]
        question = next(q for q in flow.assigned(participant) if q.id == current)
        return question, flow.submit(s, study, participant, current, _valid_answer(question))


# ---- creation ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_inputs(tmp_path_factory):
    from netreveal.data.partsworld import PartsWorld
    from netreveal.model.adapter import load_model
    from netreveal.pipeline import read_folder

    folder = tmp_path_factory.mktemp("pw")
    PartsWorld(size=64, seed=0, split="test").write_folder(folder, 1)
    adapter = load_model("demo")
    return adapter, read_folder(adapter, folder, 4)


def test_creation_shows_each_methods_heatmap_under_its_letter_and_stores_the_design(tmp_path, demo_inputs):
    from netreveal.attribution.gradcam import gradcam
    from netreveal.methods import get_methods
    from netreveal.pipeline import predict

    adapter, inputs = demo_inputs
    opened = open_store(tmp_path / "create.db")
    try:
        study_id = create_evaluation_study(opened, "ev", adapter, inputs, "gradcam,inv", n_forward=2, seed=7,
                                           attention_every=2, n_options=3, layers="last:3")
        probs = predict(adapter, inputs.images, 8)
        targets = probs.argmax(dim=1)
        expected_maps = {
            "gradcam": gradcam(adapter.model, inputs.images, "last:1", targets).maps,
            "inv": get_methods("inv")[0].heatmaps(get_methods("inv")[0].configure(
                layers="last:3", batch_size=8, seed=7, progress=False).run(adapter, inputs.images, targets)),
        }
        ranked = probs.argsort(dim=1, descending=True)[:, :3]
        predictions = {k: [adapter.class_name(int(c)) for c in ranked[i]] for i, k in enumerate(inputs.keys)}
        expected_design = make_design(inputs.keys, ["gradcam", "inv"], predictions, adapter.class_names, seed=7,
                                      n_forward=2, attention_every=2, n_options=3)
        with opened.session() as s:
            study = s.get(Study, study_id)
            assert (study.kind, study.params["seed"], study.params["methods"]) == ("evaluation", 7, ["gradcam", "inv"])
            assert load_design(s, study) == expected_design
            images = {row.key: row for row in s.scalars(select(StudyImage).where(StudyImage.study_id == study_id))}
            assert sorted(images) == sorted(inputs.keys)
            for i, key in enumerate(inputs.keys):
                p = int(targets[i])
                assert images[key].predicted_class == adapter.class_name(p)
                assert images[key].probability == pytest.approx(float(probs[i, p]), abs=1e-6)
                assert images[key].true_class == inputs.label_names[i]
                assert s.get(Media, images[key].media_id).png == picture_png(inputs.images[i])
            shown = 0
            for row in s.scalars(select(EvalQuestion).where(EvalQuestion.study_id == study_id)):
                pictures = {p.letter: p.media_id for p in s.scalars(select(EvalPicture)
                                                                     .where(EvalPicture.question_id == row.id))}
                if row.kind not in ("rating", "forward"):
                    assert pictures == {} and row.image_id is None
                    continue
                assert images[row.image].id == row.image_id
                assert set(pictures) == set(row.methods)
                i = inputs.keys.index(row.image)
                for letter, method in row.methods.items():
                    heat = display_maps(expected_maps[method][i:i + 1], (64, 64))[0]
                    got = _pixels(s.get(Media, pictures[letter]).png)
                    assert got.shape == (224, 224, 3)
                    np.testing.assert_array_equal(got, _pixels(overlay_png(inputs.images[i], heat)))
                    shown += 1
            assert shown == 2 * len(inputs.keys)  # every image is rated or simulated, with both methods
    finally:
        opened.close()


def test_display_maps_are_the_positive_part_scaled_to_one():
    maps = torch.tensor([[[-2.0, 1.0], [3.0, 0.0]], [[-1.0, -3.0], [-2.0, -1.0]]])
    shown = display_maps(maps, (2, 2))
    torch.testing.assert_close(shown[0], torch.tensor([[0.0, 1 / 3], [1.0, 0.0]]))
    torch.testing.assert_close(shown[1], torch.tensor([[1.0, 0.0], [0.5, 1.0]]))  # nothing positive: as it is
    assert display_maps(torch.rand(1, 4, 4), (8, 8)).shape == (1, 8, 8)


def test_bad_studies_are_refused_before_anything_is_stored(store, demo_inputs):
    adapter, inputs = demo_inputs
    empty = row_counts(store)
    with pytest.raises(NetrevealError, match="no heatmap"):
        create_evaluation_study(store, "ev", adapter, inputs, "gradcam,sag")
    with pytest.raises(NetrevealError, match="unknown method"):
        create_evaluation_study(store, "ev", adapter, inputs, "gradcam,nope")
    with pytest.raises(NetrevealError, match="--forward"):
        create_evaluation_study(store, "ev", adapter, inputs, "gradcam", n_forward=4)
    made = make_eval_study(store)
    before = row_counts(store)
    assert before["eval_questions"] == len(made["design"]) and empty == {k: 0 for k in empty}
    with pytest.raises(NetrevealError, match="already exists"):
        make_eval_study(store)
    broken = [EvalImage(key=k, png=b"png", predicted_class="cat", probability=0.5,
                        explanations={METHODS[0]: b"a"}) for k in made["keys"]]
    with pytest.raises(NetrevealError, match="no explanation by"):
        write_evaluation_study(store, "ev2", model="m", classes=["cat", "dog", "fox", "owl", "bee", "elk"],
                               methods=METHODS, design=made["design"], seed=1, images=broken)
    assert row_counts(store) == before


# ---- migration ---------------------------------------------------------------------------------

def _fill_0003(url: str) -> dict[str, int]:
    engine = create_engine(url, poolclass=pool.NullPool)
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    assert not any(name.startswith("eval_") for name in t)
    with engine.begin() as conn:
        conn.execute(insert(t["accounts"]), [{"id": 1, "username": "ann", "password_hash": "h", "role": "player",
                                              "background": "expert", "created_at": NOW}])
        conn.execute(insert(t["studies"]), [{"id": 1, "name": "old", "kind": "reveal", "model": "{}",
                                             "classes": ["cat", "dog"], "layers": ["a"], "params": {"seed": 3},
                                             "created_at": NOW}])
        conn.execute(insert(t["media"]), [{"id": i, "study_id": 1, "png": bytes([i]) * 4} for i in (1, 2)])
        conn.execute(insert(t["images"]), [{"id": 1, "study_id": 1, "key": "cat-1", "true_class": "cat",
                                            "predicted_class": "cat", "probability": 0.75, "media_id": 1}])
        conn.execute(insert(t["items"]), [{"id": 1, "study_id": 1, "image_id": 1, "layer": "a", "depth": 0,
                                           "cluster": 0, "weight": 50.0, "channels": [1], "map_media_id": 2,
                                           "label_count": 0}])
        if engine.dialect.name == "postgresql":
            for name in ("accounts", "studies", "media", "images", "items"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), 10, false)"))
        counts = {name: conn.execute(select(func.count()).select_from(table)).scalar()
                  for name, table in t.items() if name != "netreveal_version"}
    engine.dispose()
    return counts


def test_migration_0004_upgrades_a_0003_database_with_its_data(store_url):
    old = open_store(store_url, upgrade=False)
    upgrade_schema(old, "0003")
    old.close()
    counts = _fill_0003(store_url)
    opened = open_store(store_url)
    try:
        with opened.engine.connect() as conn:
            assert current_revision(conn) == head_revision()  # 0004 and whatever came after
            assert schema_diffs(conn) == []
            for name, n in counts.items():
                assert conn.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar() == n, name
        made = make_eval_study(opened)  # the new tables work beside the old study
        (_, participant_id), = _people(opened, 1)
        _, state = _answer_current(opened, participant_id)
        assert state["answered"] == 1
        with opened.session() as s:
            assert s.scalar(select(func.count()).select_from(EvalQuestion)) == len(made["design"])
            assert s.scalars(select(Study.kind).order_by(Study.id)).all() == ["reveal", "evaluation"]
        downgrade_schema(opened, "0003")
        with opened.engine.connect() as conn:
            assert current_revision(conn) == "0003"
            assert not any(name.startswith("eval_") for name in inspect(conn).get_table_names())
            assert conn.execute(text("SELECT COUNT(*) FROM items")).scalar() == 1
        upgrade_schema(opened)
        with opened.engine.connect() as conn:
            assert current_revision(conn) == head_revision() and schema_diffs(conn) == []
    finally:
        opened.close()


# ---- taking part ---------------------------------------------------------------------------------

def test_enrolment_gives_consecutive_slots_and_the_assigned_questions(store):
    made = make_eval_study(store)
    people = _people(store, 3)
    with store.session() as s:
        rows = [s.get(EvalParticipant, pid) for _, pid in people]
        assert [(p.slot, p.code) for p in rows] == [(0, "p000"), (1, "p001"), (2, "p002")]
        for p in rows:
            assert p.assignment == [q.to_dict() for q in assign(made["design"], p.code, made["seed"], slot=p.slot)]
        forward_conditions = [[q["condition"] for q in p.assignment if q["kind"] == "forward"] for p in rows]
        assert forward_conditions[0] != forward_conditions[1]  # consecutive slots: the two halves
        study = s.get(Study, made["id"])
        account = s.get(EvalParticipant, people[0][1]).account_id
        from netreveal.store.models import Account

        again = flow.enrol(s, study, s.get(Account, account), "expert", True)
        assert again.id == people[0][1] and again.background == "novice"
    before = row_counts(store)
    with store.session() as s:
        study = s.get(Study, made["id"])
        newcomer = create_account(s, "newcomer", "long enough password")
        for background, consent, message in (("guru", True, "background"), ("novice", False, "consent"),
                                             ("novice", "yes", "consent")):
            with pytest.raises(flow.EvalError, match=message):
                flow.enrol(s, study, newcomer, background, consent)
        s.rollback()
    assert row_counts(store) == before


def test_one_response_per_participant_and_question(store):
    make_eval_study(store)
    (_, pid), = _people(store, 1)
    question, state = _answer_current(store, pid)
    assert question.kind == "rating" and state["answered"] == 1
    stored = row_counts(store)["eval_responses"]
    assert stored == len(question.methods) * len(SCALES)
    with store.session() as s:
        study = s.scalars(select(Study)).one()
        participant = s.get(EvalParticipant, pid)
        with pytest.raises(flow.EvalError, match="already answered") as err:
            flow.submit(s, study, participant, question.id, _valid_answer(question))
        assert err.value.status == 409
        later = flow.assigned(participant)[5]
        with pytest.raises(flow.EvalError, match="in order") as err:
            flow.submit(s, study, participant, later.id, _valid_answer(later))
        assert err.value.status == 409
        with pytest.raises(flow.EvalError) as err:
            flow.submit(s, study, participant, "rating-999", {})
        assert err.value.status == 404
        current = flow.assigned(participant)[1]
        partial = _valid_answer(current)
        if current.kind == "rating":
            partial["ratings"].pop("A")
        else:
            partial = {"choice": "not an option"}
        with pytest.raises(flow.EvalError) as err:
            flow.submit(s, study, participant, current.id, partial)
        assert err.value.status == 400
        s.rollback()
    assert row_counts(store)["eval_responses"] == stored
    # the database itself refuses a second answer, also where method and scale do not apply
    with store.session() as s:
        comment = s.scalars(select(EvalQuestion).where(EvalQuestion.kind == "comment")).one()
        s.add(EvalResponse(participant_id=pid, question_id=comment.id, kind="comment", text="one"))
    with pytest.raises(IntegrityError), store.session() as s:
        s.add(EvalResponse(participant_id=pid, question_id=comment.id, kind="comment", text="two"))
    with store.session() as s:
        assert s.scalars(select(EvalResponse.text).where(EvalResponse.question_id == comment.id)).all() == ["one"]


def test_a_participant_who_leaves_resumes_at_the_first_unanswered_question(store):
    made = make_eval_study(store)
    (_, pid), = _people(store, 1)
    answered = [_answer_current(store, pid)[0] for _ in range(3)]
    with store.session() as s:  # a new session, as after leaving and coming back
        study = s.get(Study, made["id"])
        participant = s.get(EvalParticipant, pid)
        order = flow.assigned(participant)
        assert [q.id for q in answered] == [q.id for q in order[:3]]
        state = flow.state(s, study, participant)
        assert state["status"] == "question" and state["answered"] == 3
        assert state["question"]["id"] == order[3].id and state["question"]["number"] == 4
        keys = {"id", "kind", "has_image", "prompt", "options", "panels", "number", "total"}
        assert set(state["question"]) == keys | ({"scales", "scale_range"} if order[3].kind == "rating" else set())
        first_shown = participant.shown_at
    with store.session() as s:
        assert flow.state(s, s.get(Study, made["id"]), s.get(EvalParticipant, pid))["question"]["id"] == order[3].id
        assert s.get(EvalParticipant, pid).shown_at == first_shown  # shown again: the first time is kept
    while True:
        question, state = _answer_current(store, pid)
        if state["status"] == "finished":
            break
    assert question.kind == "comment" and state["answered"] == state["total"] == len(order)
    data = study_data(store, "ev")
    assert [p.id for p in data.participants] == ["p000"]
    by_question = {}
    for r in data.responses:
        by_question.setdefault(r.question, []).append(r)
        assert r.shown_at is not None and r.answered_at >= r.shown_at
    assert [q for q in by_question] == [q.id for q in order]  # stored in the order asked
    for q in order:
        if q.kind == "rating":  # letters resolved to the methods shown under them
            expected = {(m, scale): 1 + (ord(letter) - 65 + i) % 5
                        for letter, m in q.methods.items() for i, scale in enumerate(SCALES)}
            assert {(r.method, r.scale): r.value for r in by_question[q.id]} == expected
        if q.kind in ("forward", "attention"):
            (r,) = by_question[q.id]
            assert r.correct == (q.options[0] == q.answer) and r.condition == q.condition
    with store.session() as s:
        assert s.get(EvalParticipant, pid).finished_at is not None


def test_pictures_follow_the_participants_letters_and_only_of_the_current_question(store):
    made = make_eval_study(store)
    (_, pid), = _people(store, 1)
    with store.session() as s:
        study = s.get(Study, made["id"])
        participant = s.get(EvalParticipant, pid)
        order = flow.assigned(participant)
        flow.state(s, study, participant)
        first = order[0]
        for letter, method in first.methods.items():
            assert method_of(flow.picture_png(s, study, participant, first.id, letter)) == method
        assert flow.image_png(s, study, participant, first.id)
        for bad in (("Z", first.id), ("A", order[-1].id), ("A", "nope")):
            with pytest.raises(flow.EvalError) as err:
                flow.picture_png(s, study, participant, bad[1], bad[0])
            assert err.value.status == 404
        ahead = next(q for q in order[1:] if q.image)
        with pytest.raises(flow.EvalError):
            flow.image_png(s, study, participant, ahead.id)
    while True:
        question, _ = _answer_current(store, pid)
        if question.kind == "forward" and question.condition == "without":
            with store.session() as s, pytest.raises(flow.EvalError):  # shown without explanation: none to get
                flow.picture_png(s, s.get(Study, made["id"]), s.get(EvalParticipant, pid), question.id, "A")
            break
    with store.session() as s, pytest.raises(flow.EvalError) as err:  # answered: not shown any more
        flow.picture_png(s, s.get(Study, made["id"]), s.get(EvalParticipant, pid), first.id, next(iter(first.methods)))
    assert err.value.status == 404


def test_export_holds_questions_participants_and_responses(store, tmp_path):
    made = make_eval_study(store)
    people = _people(store, 2)
    for _, pid in people:
        for _ in range(2):
            _answer_current(store, pid)
    out = export_evaluation(store, "ev", tmp_path / "export")
    doc = json.loads((out / "study.json").read_text())
    n = row_counts(store)["eval_responses"]
    assert len(doc["eval_responses"]) == n and len(doc["eval_questions"]) == len(made["design"])
    assert [p["code"] for p in doc["eval_participants"]] == ["p000", "p001"]
    assert {a["username"] for a in doc["accounts"]} == {"person0", "person1"}
    assert all("password_hash" not in a for a in doc["accounts"])
    rows = (out / "responses.csv").read_text().strip().splitlines()
    assert len(rows) == n + 1 and rows[0].startswith("participant,background,excluded,question")
    pictures = {p["media_id"] for p in doc["eval_pictures"]} | {i["media_id"] for i in doc["images"]}
    assert {int(p.stem) for p in (out / "media").glob("*.png")} == pictures
    with pytest.raises(NetrevealError, match="not an evaluation study|unknown study"):
        export_evaluation(store, "nope", tmp_path / "other")


def test_simultaneous_answers_to_one_question_store_one(store):
    import threading

    made = make_eval_study(store)
    people = _people(store, 2)
    with store.session() as s:
        study = s.get(Study, made["id"])
        for _, pid in people:
            flow.state(s, study, s.get(EvalParticipant, pid))
    barrier = threading.Barrier(6)
    outcomes = []

    def submit(pid: int) -> None:
        try:
            with store.session() as s:
                participant = s.get(EvalParticipant, pid)
                question = flow.assigned(participant)[0]
                barrier.wait(timeout=20)
                flow.submit(s, s.get(Study, made["id"]), participant, question.id, _valid_answer(question))
            outcomes.append((pid, 200))
        except flow.EvalError as exc:
            outcomes.append((pid, exc.status))

    threads = [threading.Thread(target=submit, args=(pid,)) for _, pid in people for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == sorted([(pid, 200) for _, pid in people] + [(pid, 409) for _, pid in people] * 2)
    with store.session() as s:
        per_participant = dict(s.execute(select(EvalResponse.participant_id, func.count())
                                         .group_by(EvalResponse.participant_id)).all())
    assert per_participant == {pid: len(METHODS) * len(SCALES) for _, pid in people}
