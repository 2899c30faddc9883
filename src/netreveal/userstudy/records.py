"""The records of a human evaluation study: participants, questions and responses.

Plain dataclasses that round-trip through JSON (``to_dict`` / ``from_dict``; :class:`StudyData`
bundles a whole study in one file). Method names live in ``Question.methods`` (anonymous letter ->
method) and in ``Response.method``; they are never shown to participants (see
:func:`netreveal.userstudy.design.participant_view`).

Question kinds: ``rating`` (one image with several explanations, each rated 1-5 on every scale),
``forward`` (forward simulation: "what will the model predict for this image?", with one explanation
or without), ``attention`` (an obvious answer, to catch careless participants) and ``comment``
(free text).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from netreveal.csvtable import write_table
from netreveal.errors import NetrevealError

KINDS = ("rating", "forward", "attention", "comment")
SCALES = ("informativeness", "understandability")
CONDITIONS = ("with", "without")
BACKGROUNDS = ("novice", "expert")
LIKERT = (1, 5)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise NetrevealError(message)


def _from_dict(cls, data: Mapping[str, Any]):
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    _check(not unknown, f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
    return cls(**data)


@dataclass(frozen=True)
class Participant:
    """One person taking the study; ``background`` is "novice", "expert" or None (not declared).

    ``slot`` is the enrolment index (0, 1, 2...) used to counterbalance conditions exactly; None
    falls back to a hash of the id (balanced only on average).
    """

    id: str
    background: str | None = None
    slot: int | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.id, str) and self.id != "", "participant id must be a non-empty string")
        _check(self.background in (None, *BACKGROUNDS),
               f"participant {self.id!r}: background must be novice, expert or None")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Participant:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class Question:
    """One screen of the study.

    ``methods`` maps anonymous letters to the (hidden) method names shown, in display order. In a
    design template a forward question lists every candidate method and ``condition`` None; the
    participant's copy (from :func:`~netreveal.userstudy.design.assign`) has ``condition`` "with"
    (one method, letter A) or "without" (no method). ``answer`` is the correct choice where there is
    one: the model's prediction for forward questions, the requested option for attention checks.
    """

    id: str
    kind: str
    image: str = ""
    methods: dict[str, str] = field(default_factory=dict)
    condition: str | None = None
    answer: str | None = None
    prompt: str = ""
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(isinstance(self.id, str) and self.id != "", "question id must be a non-empty string")
        _check(self.kind in KINDS, f"question {self.id!r}: kind must be one of {', '.join(KINDS)}")
        _check(self.condition in (None, *CONDITIONS), f"question {self.id!r}: condition must be with, without or None")
        _check(all(k in LETTERS for k in self.methods), f"question {self.id!r}: method keys must be letters A-Z")
        _check(len(set(self.methods.values())) == len(self.methods), f"question {self.id!r}: a method is shown twice")
        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "methods", dict(self.methods))
        if self.answer is not None and self.options:
            _check(self.answer in self.options, f"question {self.id!r}: the answer is not among the options")

    def letter_of(self, method: str) -> str:
        """The anonymous letter under which ``method`` is shown."""
        for letter, name in self.methods.items():
            if name == method:
                return letter
        raise NetrevealError(f"question {self.id!r} does not show method {method!r}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"] = list(self.options)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Question:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class Response:
    """One answer: a rating of one method on one scale, a forward-simulation or attention choice,
    or a comment. Timestamps are ISO 8601 strings (UTC recommended)."""

    participant: str
    question: str
    kind: str
    image: str = ""
    method: str | None = None
    condition: str | None = None
    scale: str | None = None
    value: int | None = None
    choice: str | None = None
    correct: bool | None = None
    text: str = ""
    shown_at: str | None = None
    answered_at: str | None = None

    def __post_init__(self) -> None:
        where = f"response of {self.participant!r} to {self.question!r}"
        _check(self.kind in KINDS, f"{where}: kind must be one of {', '.join(KINDS)}")
        _check(self.condition in (None, *CONDITIONS), f"{where}: condition must be with, without or None")
        if self.kind == "rating":
            _check(self.method is not None, f"{where}: a rating needs a method")
            _check(self.scale in SCALES, f"{where}: scale must be one of {', '.join(SCALES)}")
            _check(isinstance(self.value, int) and not isinstance(self.value, bool)
                   and LIKERT[0] <= self.value <= LIKERT[1], f"{where}: value must be an integer 1-5")
        if self.kind == "forward":
            _check(self.condition is not None, f"{where}: a forward-simulation answer needs its condition")
            _check((self.method is None) == (self.condition == "without"),
                   f"{where}: a method goes with condition 'with' only")

    @property
    def seconds(self) -> float | None:
        """Time from showing the question to the answer, when both timestamps are known."""
        if not self.shown_at or not self.answered_at:
            return None
        delta = _dt.datetime.fromisoformat(self.answered_at) - _dt.datetime.fromisoformat(self.shown_at)
        return delta.total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Response:
        return _from_dict(cls, data)


def _iso(stamp: _dt.datetime | str | None) -> str | None:
    if stamp is None or isinstance(stamp, str):
        return stamp
    return stamp.isoformat()


def record_rating(question: Question, participant: str, letter: str, scale: str, value: int, *,
                  shown_at: _dt.datetime | str | None = None,
                  answered_at: _dt.datetime | str | None = None) -> Response:
    """The response for "explanation ``letter`` of ``question`` rated ``value`` on ``scale``":
    the letter is resolved to the hidden method here, on the server side."""
    _check(question.kind == "rating", f"question {question.id!r} is not a rating question")
    _check(letter in question.methods, f"question {question.id!r} has no explanation {letter!r}")
    return Response(participant=participant, question=question.id, kind="rating", image=question.image,
                    method=question.methods[letter], scale=scale, value=value,
                    shown_at=_iso(shown_at), answered_at=_iso(answered_at))


def record_answer(question: Question, participant: str, choice: str | None = None, text: str = "", *,
                  shown_at: _dt.datetime | str | None = None,
                  answered_at: _dt.datetime | str | None = None) -> Response:
    """The response to a forward, attention or comment question; ``correct`` is computed here from
    the question's answer (never taken from the client)."""
    _check(question.kind != "rating", f"question {question.id!r} is a rating question: use record_rating")
    if question.kind in ("forward", "attention"):
        _check(choice is not None, f"question {question.id!r} needs a choice")
        _check(not question.options or choice in question.options,
               f"question {question.id!r}: {choice!r} is not an option")
        _check(question.kind != "forward" or question.condition is not None,
               f"question {question.id!r} is a design template: use the participant's copy from assign()")
    shows_method = question.kind == "forward" and question.condition == "with"
    method = next(iter(question.methods.values())) if shows_method else None
    correct = None if question.answer is None or choice is None else choice == question.answer
    return Response(participant=participant, question=question.id, kind=question.kind, image=question.image,
                    method=method, condition=question.condition if question.kind == "forward" else None,
                    choice=choice, correct=correct, text=text,
                    shown_at=_iso(shown_at), answered_at=_iso(answered_at))


@dataclass
class StudyData:
    """A whole study in one JSON file: the design template, the seed that assigns it to
    participants, the participants and their responses."""

    design: list[Question]
    seed: int
    participants: list[Participant] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    title: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "seed": self.seed,
            "design": [q.to_dict() for q in self.design],
            "participants": [p.to_dict() for p in self.participants],
            "responses": [r.to_dict() for r in self.responses],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyData:
        return cls(
            design=[Question.from_dict(q) for q in data["design"]],
            seed=int(data["seed"]),
            participants=[Participant.from_dict(p) for p in data.get("participants", [])],
            responses=[Response.from_dict(r) for r in data.get("responses", [])],
            title=str(data.get("title", "")),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the study as JSON (a temporary file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> StudyData:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise NetrevealError(f"cannot read study file {path}: {exc}") from exc
        return cls.from_dict(data)


CSV_HEADER = ["participant", "background", "excluded", "question", "kind", "image", "condition", "method",
              "scale", "value", "choice", "correct", "text", "shown_at", "answered_at", "seconds"]


def write_responses_csv(responses: Iterable[Response], path: str | os.PathLike, *,
                        participants: Iterable[Participant] = (), excluded: Iterable[str] = ()) -> Path:
    """The raw data, one row per response (``CSV_HEADER`` columns), written atomically.

    Text cells that a spreadsheet would evaluate as a formula are prefixed with an apostrophe.
    """
    background = {p.id: p.background for p in participants}
    out = set(excluded)
    rows = ([r.participant, background.get(r.participant), r.participant in out, r.question, r.kind, r.image,
             r.condition, r.method, r.scale, r.value, r.choice, r.correct, r.text, r.shown_at, r.answered_at,
             r.seconds] for r in responses)
    return write_table(path, CSV_HEADER, rows)
