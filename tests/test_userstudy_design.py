"""User-study design: templates, per-participant assignment, blinding, attention checks, records."""

import json
from collections import Counter

import pytest

from netreveal.errors import NetrevealError
from netreveal.userstudy import (
    Participant,
    Question,
    Response,
    StudyData,
    assign,
    exclusions,
    make_design,
    participant_view,
    record_answer,
    record_rating,
)
from netreveal.userstudy.records import write_responses_csv

METHODS = ["SecretMethodAlpha", "SecretMethodBeta", "SecretMethodGamma"]
CLASSES = ["tench", "springer", "cassette", "chainsaw", "church", "horn", "truck", "pump"]
IMAGES = [f"img{i:02d}" for i in range(20)]
PREDICTIONS = {k: CLASSES[i % len(CLASSES)] for i, k in enumerate(IMAGES)}
SEED = 7


@pytest.fixture(scope="module")
def design():
    return make_design(IMAGES, METHODS, PREDICTIONS, CLASSES, seed=SEED, n_forward=8, attention_every=5)


def test_template(design):
    kinds = Counter(q.kind for q in design)
    assert kinds == {"rating": 12, "forward": 8, "attention": 4, "comment": 1}  # 20 main questions // 5
    rated = {q.image for q in design if q.kind == "rating"}
    simulated = {q.image for q in design if q.kind == "forward"}
    assert rated | simulated == set(IMAGES) and not rated & simulated
    for q in design:
        assert not any(m.lower() in q.id.lower() for m in METHODS)
        if q.kind == "rating":
            assert list(q.methods.values()) == METHODS and list(q.methods) == ["A", "B", "C"]
        if q.kind == "forward":
            assert q.answer == PREDICTIONS[q.image] and q.answer in q.options and len(q.options) == 4
            assert q.condition is None  # decided per participant
        if q.kind == "attention":
            assert q.answer in q.options and q.answer in q.prompt
    # the same seed gives the same template
    assert make_design(IMAGES, METHODS, PREDICTIONS, CLASSES, seed=SEED, n_forward=8, attention_every=5) == design


def test_ranked_predictions_give_the_distractors():
    ranked = {k: ["church", "horn", 0] for k in IMAGES[:4]}  # class names or indices; first = prediction
    design = make_design(IMAGES[:4], METHODS, ranked, CLASSES, seed=1, n_forward=2, n_options=3, attention_every=0)
    forwards = [q for q in design if q.kind == "forward"]
    assert len(forwards) == 2 and not any(q.kind == "attention" for q in design)
    for q in forwards:
        assert q.answer == "church" and set(q.options) == {"church", "horn", "tench"}


@pytest.mark.parametrize("bad", [
    {"images": []}, {"methods": ["a", "a"]}, {"n_forward": 20}, {"predictions": {"img00": "zebra"}},
    {"predictions": ["tench"] * 3}, {"class_names": ["only"]},
])
def test_bad_design_input(bad):
    args = {"images": IMAGES, "methods": METHODS, "predictions": PREDICTIONS, "class_names": CLASSES,
            "n_forward": 8} | bad
    with pytest.raises(NetrevealError):
        make_design(**args, seed=0)


def test_assignment_is_reproducible_and_varies(design):
    one = assign(design, "alice", SEED)
    assert assign(design, "alice", SEED) == one
    assert sorted(q.id for q in one) == sorted(q.id for q in design)
    orders = {tuple(q.id for q in assign(design, f"p{i}", SEED)) for i in range(12)}
    assert len(orders) == 12
    assert [q.id for q in assign(design, "alice", SEED + 1)] != [q.id for q in one]
    letters = {tuple(q.methods.values()) for q in one if q.kind == "rating"}
    assert len(letters) > 1  # the letter -> method mapping changes between questions


def test_block_order_and_attention_spacing(design):
    qs = assign(design, "bob", SEED, slot=3)
    kinds = [q.kind for q in qs]
    main = [k for k in kinds if k in ("rating", "forward")]
    assert main == ["rating"] * 12 + ["forward"] * 8  # simulate the model only after rating other images
    rated = {q.image for q in qs if q.kind == "rating"}
    assert not rated & {q.image for q in qs if q.kind == "forward"}
    assert kinds[-1] == "comment" and kinds[0] != "attention"
    runs, run = [], 0
    for k in kinds[:-1]:
        if k == "attention":
            runs.append(run)
            run = 0
        else:
            run += 1
    runs.append(run)
    assert len(runs) == 5 and sum(runs) == 20 and max(runs) - min(runs) <= 1  # 4 checks, evenly spread


def test_conditions_counterbalanced_with_slots(design):
    n = 40
    with_counts, method_counts = Counter(), Counter()
    for slot in range(n):
        qs = assign(design, f"p{slot:03d}", SEED, slot=slot)
        forwards = [q for q in qs if q.kind == "forward"]
        shown = [q.methods["A"] for q in forwards if q.condition == "with"]
        assert len(shown) == 4 and sum(q.condition == "without" for q in forwards) == 4
        assert all(not q.methods for q in forwards if q.condition == "without")
        per_method = Counter(shown)
        assert max(per_method.get(m, 0) for m in METHODS) - min(per_method.get(m, 0) for m in METHODS) <= 1
        method_counts.update(shown)
        with_counts.update(q.image for q in forwards if q.condition == "with")
        letters = Counter((letter, m) for q in qs if q.kind == "rating" for letter, m in q.methods.items())
        assert set(letters.values()) == {4} and len(letters) == 9  # 12 questions: each method 4 times per letter
    assert set(with_counts.values()) == {n // 2}  # every image with explanations for exactly half
    assert max(method_counts.values()) - min(method_counts.values()) <= n // 4


def test_conditions_balanced_on_average_without_slots(design):
    with_counts = Counter()
    for i in range(200):
        with_counts.update(q.image for q in assign(design, f"anon-{i}", SEED) if q.condition == "with")
    assert all(70 <= c <= 130 for c in with_counts.values())  # Binomial(200, 1/2): sd about 7


def test_participant_view_hides_methods_and_answers(design):
    views = [participant_view(q) for slot in range(6) for q in assign(design, f"p{slot}", SEED, slot=slot)]
    text = json.dumps(views)
    for m in METHODS:
        assert m not in text and m.lower() not in text.lower()
    for image in IMAGES:
        assert image not in text  # image keys may name the class; pictures are fetched by question id
    for v in views:
        assert "answer" not in v and "methods" not in v and "condition" not in v
        if v["kind"] == "rating":
            assert v["panels"] == ["A", "B", "C"] and v["scale_range"] == [1, 5]
        if v["kind"] == "forward":
            assert v["panels"] in ([], ["A"]) and len(v["options"]) == 4
    with pytest.raises(NetrevealError):
        participant_view(next(q for q in design if q.kind == "forward"))  # template, not a participant copy


def _answer_all(questions, pid, attention_ok=True):
    out = []
    for q in questions:
        if q.kind == "rating":
            out += [record_rating(q, pid, letter, "informativeness", 3) for letter in q.methods]
        elif q.kind == "attention":
            wrong = next(o for o in q.options if o != q.answer)
            out.append(record_answer(q, pid, q.answer if attention_ok else wrong))
        elif q.kind == "forward":
            out.append(record_answer(q, pid, q.options[0]))
        else:
            out.append(record_answer(q, pid, text="fine"))
    return out


def test_exclusions(design):
    good = _answer_all(assign(design, "good", SEED), "good")
    bad = _answer_all(assign(design, "bad", SEED), "bad", attention_ok=False)
    assert exclusions(good + bad) == ["bad"]
    assert exclusions(good + bad, design) == ["bad"]
    # one slip among four checks is tolerated with max_failures=1
    one_slip = [r for r in good]
    first = next(i for i, r in enumerate(one_slip) if r.kind == "attention")
    one_slip[first] = Response(**{**one_slip[first].to_dict(), "choice": "0", "correct": False})
    assert exclusions(one_slip) == ["good"] and exclusions(one_slip, max_failures=1) == []
    # with the design the choice is checked against the answer, whatever the stored flag says
    forged = [Response(**{**r.to_dict(), "correct": True}) if r.kind == "attention" else r for r in bad]
    assert exclusions(forged) == [] and exclusions(forged, design) == ["bad"]


def test_records_resolve_letters_and_correctness(design):
    qs = assign(design, "carol", SEED, slot=0)
    rating = next(q for q in qs if q.kind == "rating")
    r = record_rating(rating, "carol", "B", "understandability", 5, shown_at="2025-01-01T10:00:00+00:00",
                      answered_at="2025-01-01T10:00:12.5+00:00")
    assert r.method == rating.methods["B"] and r.value == 5 and r.seconds == 12.5 and r.image == rating.image
    fwd_with = next(q for q in qs if q.kind == "forward" and q.condition == "with")
    ok = record_answer(fwd_with, "carol", fwd_with.answer)
    assert ok.correct is True and ok.method == fwd_with.methods["A"] and ok.condition == "with"
    fwd_without = next(q for q in qs if q.kind == "forward" and q.condition == "without")
    wrong = record_answer(fwd_without, "carol", next(o for o in fwd_without.options if o != fwd_without.answer))
    assert wrong.correct is False and wrong.method is None and wrong.condition == "without"
    for call in (lambda: record_rating(rating, "carol", "Z", "informativeness", 3),
                 lambda: record_rating(rating, "carol", "A", "informativeness", 6),
                 lambda: record_rating(rating, "carol", "A", "beauty", 3),
                 lambda: record_answer(fwd_with, "carol", "not a class"),
                 lambda: record_answer(next(q for q in design if q.kind == "forward"), "carol", "tench")):
        with pytest.raises(NetrevealError):
            call()


def test_json_round_trip(design, tmp_path):
    qs = assign(design, "dave", SEED, slot=1)
    responses = _answer_all(qs, "dave")
    study = StudyData(design=design, seed=SEED, participants=[Participant("dave", "expert", slot=1)],
                      responses=responses, title="round <trip>")
    path = study.save(tmp_path / "study.json")
    loaded = StudyData.load(path)
    assert loaded == study and loaded.design == design and loaded.responses == responses
    assert all(Question.from_dict(q.to_dict()) == q for q in qs)
    with pytest.raises(NetrevealError):
        Participant.from_dict({"id": "x", "background": "guru"})
    with pytest.raises(NetrevealError):
        Question.from_dict({"id": "q", "kind": "rating", "colour": "red"})


def test_csv_one_row_per_response_and_formula_safe(tmp_path):
    q = Question(id="comment", kind="comment", prompt="?")
    rows = [record_answer(q, "eve", text="=HYPERLINK(\"http://x\")"),
            record_answer(q, "frank", text="plain, with comma")]
    path = write_responses_csv(rows, tmp_path / "r.csv", participants=[Participant("eve", "novice")],
                               excluded=["frank"])
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 2
    assert table[0]["text"].startswith("'=HYPERLINK") and table[0]["background"] == "novice"
    assert table[1]["text"] == "plain, with comma" and table[1]["excluded"] == "True"
