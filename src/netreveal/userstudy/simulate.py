"""Simulated participants with a planted effect, to check that a study design and its analysis
find a real difference between methods and no difference where there is none.

Rating model: a participant's rating of method m on a scale is
``clip(round(mu[m] + b + shift + e), 1, 5)`` with the planted mean ``mu[m]``, a per-participant
offset ``b ~ N(0, participant_sd)``, an expert shift when given, and noise ``e ~ N(0, noise_sd)``.
Forward simulation: the participant picks the model's prediction with probability
``forward_without`` (no explanation) or ``forward_with[m]`` (explanation by m), otherwise another
option at random. Attention checks are answered correctly, except by inattentive participants, who
answer everything at random.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence

import numpy as np

from netreveal.errors import NetrevealError
from netreveal.userstudy.design import assign
from netreveal.userstudy.records import (
    LIKERT,
    SCALES,
    Participant,
    Question,
    StudyData,
    record_answer,
    record_rating,
)

START = _dt.datetime(2025, 1, 6, 9, 0, tzinfo=_dt.timezone.utc)
COMMENTS = ("", "", "The coloured maps were easy to read.", "Some explanations looked alike.",
            "I was not sure what the layers meant.")


def simulate_study(
    design: Sequence[Question],
    n_participants: int,
    *,
    seed: int,
    informativeness: Mapping[str, float],
    understandability: Mapping[str, float] | None = None,
    forward_without: float = 0.5,
    forward_with: Mapping[str, float] | float | None = None,
    participant_sd: float = 0.5,
    noise_sd: float = 0.8,
    inattentive: float = 0.0,
    expert_share: float | None = None,
    expert_shift: Mapping[str, float] | None = None,
) -> StudyData:
    """Responses of ``n_participants`` simulated people to ``design`` (see the module docstring).

    ``informativeness`` / ``understandability`` give each method's true mean rating (the latter
    defaults to the former). ``forward_with`` is one accuracy for every method, a per-method
    mapping, or None (= ``forward_without``, no effect). With ``expert_share`` set, that share of
    participants (rounded) declare themselves experts, the others novices; ``expert_shift`` adds
    to the experts' ratings of a method. Participant ``i`` gets id ``p{i:03d}`` and slot ``i``.
    """
    methods = sorted({m for q in design for m in q.methods.values()})
    truth = {"informativeness": dict(informativeness),
             "understandability": dict(understandability if understandability is not None else informativeness)}
    for scale, mu in truth.items():
        if set(methods) - set(mu):
            raise NetrevealError(f"no true {scale} mean for {sorted(set(methods) - set(mu))}")
    if forward_with is None or isinstance(forward_with, (int, float)):
        p_with = {m: float(forward_without if forward_with is None else forward_with) for m in methods}
    else:
        p_with = {m: float(forward_with[m]) for m in methods}
    if n_participants < 1:
        raise NetrevealError("need at least one simulated participant")

    rng = np.random.default_rng(seed)
    n_experts = round(n_participants * expert_share) if expert_share is not None else 0
    experts = set(rng.permutation(n_participants)[:n_experts].tolist())
    study = StudyData(design=list(design), seed=seed, title="simulated study")
    for i in range(n_participants):
        background = None if expert_share is None else ("expert" if i in experts else "novice")
        person = Participant(f"p{i:03d}", background=background, slot=i)
        study.participants.append(person)
        offset = rng.normal(0.0, participant_sd)
        careless = rng.random() < inattentive
        shift = dict(expert_shift or {}) if background == "expert" else {}
        clock = START + _dt.timedelta(hours=i)
        for q in assign(design, person.id, seed, slot=i):
            shown = clock
            clock += _dt.timedelta(seconds=float(rng.gamma(4.0, 3.0)))
            stamps = {"shown_at": shown, "answered_at": clock}
            if q.kind == "rating":
                for letter, method in q.methods.items():
                    for scale in SCALES:
                        if careless:
                            value = int(rng.integers(LIKERT[0], LIKERT[1] + 1))
                        else:
                            mu = truth[scale][method] + offset + shift.get(method, 0.0)
                            value = int(np.clip(np.round(mu + rng.normal(0.0, noise_sd)), *LIKERT))
                        study.responses.append(record_rating(q, person.id, letter, scale, value, **stamps))
            elif q.kind in ("forward", "attention"):
                if careless:
                    choice = str(rng.choice(q.options))
                else:
                    if q.kind == "attention":
                        p = 1.0
                    else:
                        p = p_with[q.methods["A"]] if q.condition == "with" else forward_without
                    others = [o for o in q.options if o != q.answer]
                    choice = q.answer if rng.random() < p or not others else str(rng.choice(others))
                study.responses.append(record_answer(q, person.id, choice, **stamps))
            else:
                study.responses.append(record_answer(q, person.id, text=str(rng.choice(COMMENTS)), **stamps))
    return study
