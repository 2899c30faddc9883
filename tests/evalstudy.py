"""A synthetic evaluation study for tests: no model, one solid colour per method's explanation, so a
test can tell from a served picture which method it shows (as a person tells explanations apart)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from netreveal.store.evaluation import EvalImage, write_evaluation_study
from netreveal.userstudy import make_design

CLASSES = ["cat", "dog", "fox", "owl", "bee", "elk"]
METHODS = ["m_good", "m_poor", "m_twin1", "m_twin2"]
SEED = 11


def solid_png(colour: tuple[int, int, int], size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, format="PNG")
    return out.getvalue()


def method_colour(index: int) -> tuple[int, int, int]:
    """A distinct colour per method index (image colours are grey, never one of these)."""
    return (40 + 50 * index, 200 - 40 * index, 90 + 30 * (index % 3))


def image_colour(index: int) -> tuple[int, int, int]:
    grey = 10 + 7 * index
    return (grey, grey, grey)


def method_of(png: bytes, methods: Sequence[str] = METHODS) -> str:
    """The method whose colour the explanation picture ``png`` has."""
    with Image.open(io.BytesIO(png)) as image:
        colour = image.convert("RGB").getpixel((0, 0))
    for i, m in enumerate(methods):
        if tuple(colour) == method_colour(i):
            return m
    raise AssertionError(f"colour {colour} is no method's")


def make_eval_study(store, name: str = "ev", *, methods: Sequence[str] = METHODS, n_images: int = 8,
                    n_forward: int = 4, seed: int = SEED, attention_every: int = 4) -> dict:
    """Store an evaluation study of ``n_images`` synthetic images; image i is predicted as
    ``CLASSES[i % 6]``. Returns {"id", "design", "seed", "methods", "keys", "predicted"}."""
    keys = [f"{CLASSES[i % len(CLASSES)]}-{i:03d}" for i in range(n_images)]
    predicted = {k: CLASSES[i % len(CLASSES)] for i, k in enumerate(keys)}
    ranked = {k: [predicted[k], CLASSES[(i + 1) % len(CLASSES)]] for i, k in enumerate(keys)}
    design = make_design(keys, list(methods), ranked, CLASSES, seed=seed, n_forward=n_forward,
                         attention_every=attention_every)
    images = [EvalImage(key=k, png=solid_png(image_colour(i)), predicted_class=predicted[k], probability=0.8,
                        true_class=predicted[k],
                        explanations={m: solid_png(method_colour(j)) for j, m in enumerate(methods)})
              for i, k in enumerate(keys)]
    study_id = write_evaluation_study(store, name, model='{"model": "synthetic"}', classes=CLASSES, methods=methods,
                                      design=design, seed=seed, images=images)
    return {"id": study_id, "design": design, "seed": seed, "methods": list(methods), "keys": keys,
            "predicted": predicted}


def answer_as_simulated(store, name: str, simulated, backgrounds: dict[str, str] | None = None) -> None:
    """Enrol one account per simulated participant (in order, so slot i is ``p{i:03d}``) and give
    the answers of ``simulated`` (a :func:`netreveal.userstudy.simulate_study` result on the same
    design and seed) through the participant flow, question by question."""
    from sqlalchemy import select

    from netreveal.store import evaluation_flow as flow
    from netreveal.store.accounts import create_account
    from netreveal.store.models import Study

    by_question: dict[tuple[str, str], list] = {}
    for r in simulated.responses:
        by_question.setdefault((r.participant, r.question), []).append(r)
    for person in simulated.participants:
        with store.session() as s:
            study = s.scalars(select(Study).where(Study.name == name)).one()
            account = create_account(s, f"sim-{person.id}", "long enough password")
            s.flush()
            participant = flow.enrol(s, study, account, person.background or "novice", True)
            assert participant.code == person.id
            questions = {q.id: q for q in flow.assigned(participant)}
            while (state := flow.state(s, study, participant))["status"] == "question":
                q = questions[state["question"]["id"]]
                flow.submit(s, study, participant, q.id, simulated_answer(q, by_question[(person.id, q.id)]))


def simulated_answer(question, responses) -> dict:
    """The answer body giving ``responses`` (of one participant to ``question``)."""
    if question.kind == "rating":
        ratings: dict[str, dict[str, int]] = {}
        for r in responses:
            ratings.setdefault(question.letter_of(r.method), {})[r.scale] = r.value
        return {"ratings": ratings}
    (r,) = responses
    if question.kind == "comment":
        return {"text": r.text}
    return {"choice": r.choice}
