"""Study design: a question template, its per-participant assignment, and attention exclusions.

:func:`make_design` splits the images into rating images (every method's explanation shown side by
side, each rated on every scale) and forward-simulation images ("what will the model predict for
this image?"). :func:`assign` turns the template into one participant's ordered questions:

1. the rating questions, in a random order, each with the methods in a random order under
   anonymous letters A, B, C... (rotated so that each method takes each letter equally often);
2. then the forward-simulation questions (other images than the rated ones, so participants have
   seen explanations before they simulate the model), in a random order. Half are shown "with" one
   explanation and half "without"; the halves swap between consecutive participant slots, so every
   image is seen with and without explanations equally often, and the methods shown "with" are
   spread evenly within each participant;
3. attention checks spread evenly through the sequence, and the comment question last.

Everything random is seeded from ``(seed, participant id)``, so a participant's questions can be
rebuilt at any time from the design, the seed and the id.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from netreveal.errors import NetrevealError
from netreveal.userstudy.records import LETTERS, LIKERT, SCALES, Question, Response

RATING_PROMPT = "How informative and how understandable is each explanation of the model's decision?"
FORWARD_PROMPT = "What will the model predict for this image?"
ATTENTION_PROMPT = "Attention check: please select {answer}."
COMMENT_PROMPT = "Anything else you would like to tell us about the explanations?"


def _rng(seed: int, *parts: Any) -> random.Random:
    """A generator seeded from the seed and the parts (stable across processes, unlike hash())."""
    digest = hashlib.sha256(repr((int(seed), *map(str, parts))).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _predicted(value: Any, class_names: Sequence[str], image: str) -> list[str]:
    ranked = [value] if isinstance(value, (str, int)) else list(value)
    out = []
    for v in ranked:
        if isinstance(v, int):
            if not 0 <= v < len(class_names):
                raise NetrevealError(f"prediction {v} for image {image!r} is not a class index")
            v = class_names[v]
        if v not in class_names:
            raise NetrevealError(f"prediction {v!r} for image {image!r} is not among the class names")
        out.append(v)
    if not out:
        raise NetrevealError(f"no prediction for image {image!r}")
    return out


def make_design(
    images: Sequence[str],
    methods: Sequence[str],
    predictions: Mapping[str, Any] | Sequence[Any],
    class_names: Sequence[str],
    *,
    seed: int,
    n_forward: int | None = None,
    attention_every: int = 8,
    n_options: int = 4,
    comment: bool = True,
) -> list[Question]:
    """The question template of a study comparing ``methods`` on ``images`` (keys).

    ``predictions`` gives the model's prediction per image (a mapping or a sequence aligned with
    ``images``): a class name or index, or a ranked list whose first entry is the prediction and
    whose next entries are preferred as the distractors of the forward-simulation choice (the
    rest are drawn at random from ``class_names``). ``n_forward`` images (default: half) become
    forward-simulation questions, the others rating questions; one attention check is added per
    ``attention_every`` questions (0 for none).
    """
    images = [str(i) for i in images]
    methods = [str(m) for m in methods]
    class_names = [str(c) for c in class_names]
    if not images or len(set(images)) != len(images):
        raise NetrevealError("images must be a non-empty list of distinct keys")
    if not methods or len(set(methods)) != len(methods) or len(methods) > len(LETTERS):
        raise NetrevealError(f"methods must be 1 to {len(LETTERS)} distinct names")
    if len(set(class_names)) != len(class_names) or len(class_names) < 2:
        raise NetrevealError("class_names must hold at least two distinct names")
    if not isinstance(predictions, Mapping):
        if len(predictions) != len(images):
            raise NetrevealError(f"{len(predictions)} predictions for {len(images)} images")
        predictions = dict(zip(images, predictions))
    if n_forward is None:
        n_forward = len(images) // 2
    if not 0 <= n_forward < len(images):
        raise NetrevealError("n_forward must leave at least one image to rate (0 <= n_forward < images)")
    if attention_every < 0 or n_options < 2:
        raise NetrevealError("attention_every must be >= 0 and n_options >= 2")

    rng = _rng(seed, "design")
    forward_images = set(rng.sample(images, n_forward))
    shown = {LETTERS[i]: m for i, m in enumerate(methods)}
    questions: list[Question] = []
    for image in images:
        if image in forward_images:
            continue
        questions.append(Question(id=f"rating-{len(questions) + 1:03d}", kind="rating", image=image,
                                  methods=shown, prompt=RATING_PROMPT))
    for j, image in enumerate(i for i in images if i in forward_images):
        if image not in predictions:
            raise NetrevealError(f"no prediction for forward-simulation image {image!r}")
        ranked = _predicted(predictions[image], class_names, image)
        options = list(dict.fromkeys(ranked))[:n_options]
        rest = [c for c in class_names if c not in options]
        options += rng.sample(rest, min(n_options - len(options), len(rest)))
        questions.append(Question(id=f"forward-{j + 1:03d}", kind="forward", image=image, methods=shown,
                                  answer=ranked[0], prompt=FORWARD_PROMPT, options=tuple(sorted(options))))
    n_attention = len(questions) // attention_every if attention_every else 0
    likert = tuple(str(v) for v in range(LIKERT[0], LIKERT[1] + 1))
    for k in range(n_attention):
        answer = rng.choice(likert)
        questions.append(Question(id=f"attention-{k + 1:02d}", kind="attention", answer=answer,
                                  prompt=ATTENTION_PROMPT.format(answer=answer), options=likert))
    if comment:
        questions.append(Question(id="comment", kind="comment", prompt=COMMENT_PROMPT))
    return questions


def _group(participant_id: str, seed: int, slot: int | None) -> int:
    if slot is not None:
        return int(slot) % 2
    return _rng(seed, "group", participant_id).randrange(2)


def _rotate_methods(ratings: list[Question], rng: random.Random) -> list[Question]:
    """Shuffle the methods of each rating question so that, within the participant, every method
    takes every position (letter) equally often: each run of M questions (M methods) gets the M
    rotations of a fresh random order, in a random order."""
    size = len(ratings[0].methods) if ratings else 0
    if size == 0:
        return list(ratings)
    out = []
    for start in range(0, len(ratings), size):
        base = rng.sample(range(size), size)
        for q, shift in zip(ratings[start:start + size], rng.sample(range(size), size)):
            names = list(q.methods.values())
            if len(names) == size:
                order = [names[i] for i in base[shift:] + base[:shift]]
            else:  # a hand-made design showing other methods here: a plain shuffle
                order = rng.sample(names, len(names))
            out.append(replace(q, methods={LETTERS[i]: m for i, m in enumerate(order)}))
    return out


def assign(design: Sequence[Question], participant_id: str, seed: int, *, slot: int | None = None) -> list[Question]:
    """One participant's questions, in the order they are asked (see the module docstring).

    ``slot`` is the participant's enrolment index: consecutive slots get the two halves of the
    with/without split, which balances the conditions exactly; without it the half is drawn from
    the id (balanced on average). Reproducible: the same design, id, seed and slot give the same list.
    """
    if not participant_id:
        raise NetrevealError("participant id must be a non-empty string")
    rng = _rng(seed, "assign", participant_id)
    ratings = [q for q in design if q.kind == "rating"]
    forwards = [q for q in design if q.kind == "forward"]
    attention = [q for q in design if q.kind == "attention"]
    comments = [q for q in design if q.kind == "comment"]

    block = _rotate_methods(rng.sample(ratings, len(ratings)), rng)

    group = _group(participant_id, seed, slot)
    with_idx = [j for j in range(len(forwards)) if (j + group) % 2 == 0]
    candidates = list(forwards[0].methods.values()) if forwards else []
    if with_idx and not candidates:
        raise NetrevealError("forward-simulation questions list no methods to show")
    cycle: list[str] = []
    while len(cycle) < len(with_idx):
        cycle += rng.sample(candidates, len(candidates))
    chosen = dict(zip(rng.sample(with_idx, len(with_idx)), cycle))
    forward_block = []
    for j, q in enumerate(forwards):
        options = list(q.options)
        rng.shuffle(options)
        if j in chosen:
            forward_block.append(replace(q, methods={"A": chosen[j]}, condition="with", options=tuple(options)))
        else:
            forward_block.append(replace(q, methods={}, condition="without", options=tuple(options)))
    rng.shuffle(forward_block)
    block += forward_block

    ordered: list[Question] = []
    n_main, n_att = len(block), len(attention)
    cuts = [round((k + 1) * n_main / (n_att + 1)) for k in range(n_att)]
    for i, q in enumerate(block):
        ordered.append(q)
        ordered.extend(attention[k] for k, cut in enumerate(cuts) if cut == i + 1)
    ordered.extend(attention[k] for k, cut in enumerate(cuts) if cut < 1)  # only when there is no other question
    return ordered + comments


def participant_view(question: Question) -> dict[str, Any]:
    """What the participant's browser may receive: no method names, no correct answer, no image key
    (keys such as file names can give the class away).

    The browser asks for pictures by question id: the input image, and one explanation per letter
    in ``panels``; the server resolves them through the question it keeps. ``scales`` lists the
    rating scales of a rating question, each answered with an integer in ``scale_range``.
    """
    if question.kind == "forward" and question.condition is None:
        raise NetrevealError(f"question {question.id!r} is a design template: use the participant's copy from assign()")
    view: dict[str, Any] = {"id": question.id, "kind": question.kind, "has_image": bool(question.image),
                            "prompt": question.prompt, "options": list(question.options),
                            "panels": list(question.methods)}
    if question.kind == "rating":
        view["scales"] = list(SCALES)
        view["scale_range"] = list(LIKERT)
    return view


def exclusions(responses: Iterable[Response], questions: Iterable[Question] | None = None, *,
               max_failures: int = 0) -> list[str]:
    """Participants who failed more than ``max_failures`` attention checks (sorted ids).

    With ``questions`` (the design) the choices are checked against the attention questions'
    answers; without, the responses' ``correct`` flags are used. Unanswered checks do not count.
    """
    answers = {q.id: q.answer for q in questions if q.kind == "attention"} if questions is not None else None
    failures: dict[str, int] = {}
    for r in responses:
        if r.kind != "attention":
            continue
        ok = r.choice == answers.get(r.question) if answers is not None else bool(r.correct)
        failures[r.participant] = failures.get(r.participant, 0) + (not ok)
    return sorted(p for p, n in failures.items() if n > max_failures)
