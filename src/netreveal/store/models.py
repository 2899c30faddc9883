"""The database schema: studies, their explanation items, people, guesses, games and named concepts.

One SQLAlchemy 2 declarative model per table. Pictures (inputs, cluster maps and the precomputed
reveal frames) are stored as PNG bytes in ``media`` so a study is one database, whatever the
backend, and the web app never serves a path from the file system. Schema changes go through the
Alembic migrations in ``netreveal/store/migrations`` (``netreveal.store.db.open_store`` upgrades).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("player", "annotator", "admin")
OUTCOMES = ("win", "loss", "resign")
STUDY_KINDS = ("reveal", "evaluation")
REVEAL_PERCENTS = (2.0, 4.5, 8.0, 13.0, 20.0, 30.0)  # the six reveal steps (DESIGN §2)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[Any]: JSON}


class Account(Base):
    """A person: plays the reveal game, names concepts (annotator) or runs studies (admin)."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="player")
    background: Mapped[str | None] = mapped_column(String(16))  # "novice" / "expert" when declared
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebSession(Base):
    """A logged-in browser: the cookie carries ``token``; only its SHA-256 is stored."""

    __tablename__ = "web_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # absolute lifetime
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # for the idle timeout


class Invitation(Base):
    """A one-time link, made by an admin, that creates an account with ``role`` (annotators and
    admins come only from these or from the ``netreveal account`` command). Only the SHA-256 of the
    link's token is stored."""

    __tablename__ = "invitations"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # None until accepted
    used_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))


class LoginThrottle(Base):
    """Failed log-ins of one account (none stored when there are none): how many in a row, when the
    last one was, and until when further attempts are refused (see ``netreveal.store.throttles``)."""

    __tablename__ = "login_throttles"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AddressLimit(Base):
    """Events of one kind (sign-ups, failed log-ins) from one client address in its current window:
    how many, and when the window began (see ``netreveal.store.throttles``)."""

    __tablename__ = "rate_limits"
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    events: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Study(Base):
    """A set of images explained by one model, whose items people label or name."""

    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="reveal")
    model: Mapped[str] = mapped_column(Text)  # the model's description (adapter.describe())
    classes: Mapped[list[Any]] = mapped_column(JSON)  # class names, index = class id
    layers: Mapped[list[Any]] = mapped_column(JSON)  # layer names, shallow -> deep
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # INV config, seed, provenance
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # while the study is being written (in batches): when the last batch was stored; None once complete
    building_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    images: Mapped[list[StudyImage]] = relationship(back_populates="study", cascade="all, delete-orphan")

    @property
    def ready(self) -> bool:
        """True once every row of the study is stored (only then is it served, exported or analysed)."""
        return self.building_at is None


class Media(Base):
    """A PNG picture owned by a study (input image, cluster map, reveal frame)."""

    __tablename__ = "media"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    png: Mapped[bytes] = mapped_column(LargeBinary)


class StudyImage(Base):
    """One input image of a study, with the model's prediction and (when known) its true class."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("study_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))  # file name / stable id within the study
    true_class: Mapped[str | None] = mapped_column(String(80))
    predicted_class: Mapped[str] = mapped_column(String(80))
    probability: Mapped[float] = mapped_column(Float)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    study: Mapped[Study] = relationship(back_populates="images")
    items: Mapped[list[Item]] = relationship(back_populates="image", cascade="all, delete-orphan")


class Item(Base):
    """An explanation item: one INV cluster map of one image at one layer, with its weight."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("image_id", "layer", "cluster"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    layer: Mapped[str] = mapped_column(String(200))
    depth: Mapped[int] = mapped_column(Integer)  # index of the layer in study.layers (0 = shallowest)
    cluster: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float)  # INV cluster weight, percent
    channels: Mapped[list[Any]] = mapped_column(JSON, default=list)  # member feature maps
    map_media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))  # the cluster map (grey PNG)
    label_count: Mapped[int] = mapped_column(Integer, default=0)  # guesses with text, kept for assignment
    image: Mapped[StudyImage] = relationship(back_populates="items")
    frames: Mapped[list[RevealFrame]] = relationship(order_by="RevealFrame.step", cascade="all, delete-orphan")


class RevealFrame(Base):
    """The image revealed at one reveal step of an item (precomputed when the study is created)."""

    __tablename__ = "reveal_frames"
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1..6
    percent: Mapped[float] = mapped_column(Float)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))


class Game(Base):
    """One round of the reveal game: a player and an item. A player never gets an item twice."""

    __tablename__ = "games"
    __table_args__ = (UniqueConstraint("player_id", "item_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer, default=1)  # current reveal step
    outcome: Mapped[str | None] = mapped_column(String(8))  # None while playing
    points: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Guess(Base):
    """A guess: the class guessed and the free text typed, at one reveal step.

    ``request_id`` (unique, client-chosen) makes a retried submission idempotent: stored once.
    ``source`` is "game", "import" (CSV) or "crowd" (simulated); imported labels have no game.
    """

    __tablename__ = "guesses"
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    game_id: Mapped[int | None] = mapped_column(ForeignKey("games.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    player_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    player_name: Mapped[str] = mapped_column(String(40), default="")  # kept for imports / deleted accounts
    step: Mapped[int] = mapped_column(Integer)
    guessed_class: Mapped[str | None] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(8), default="en")
    correct: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(8), default="game")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Concept(Base):
    """A named visual concept: an annotator's group of items (naming studio)."""

    __tablename__ = "concepts"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    members: Mapped[list[ConceptMember]] = relationship(cascade="all, delete-orphan")


class ConceptMember(Base):
    """An item in a concept. Per annotator an item is in at most one concept."""

    __tablename__ = "concept_members"
    __table_args__ = (UniqueConstraint("annotator_id", "item_id"),)
    concept_id: Mapped[int] = mapped_column(ForeignKey("concepts.id", ondelete="CASCADE"), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))


class ConceptEvent(Base):
    """History of a concept: create, add, drop, rename, merge, split, remove (details as JSON)."""

    __tablename__ = "concept_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    concept_id: Mapped[int] = mapped_column(ForeignKey("concepts.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Embedding(Base):
    """Cached sentence embedding of a cleaned label text under one model."""

    __tablename__ = "embeddings"
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    text: Mapped[str] = mapped_column(String(200), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian


Index("ix_items_assign", Item.study_id, Item.label_count)
# a player's guesses by time: the guess rate limit counts those of the last minute (also serves player_id)
Index("ix_guesses_player_time", Guess.player_id, Guess.created_at)
Index("ix_items_gallery", Item.study_id, Item.weight)  # the studio's gallery is sorted by weight


# ---- evaluation studies (human evaluation of explanation methods, netreveal.userstudy) ---------
# A study of kind "evaluation" keeps its design seed and method list in Study.params; its input
# images are ``images`` rows. Pictures of explanations are addressed by question and anonymous
# letter, never by method name. ``method`` and ``scale`` of a response are "" (not NULL) when they
# do not apply, so the unique key really allows one response per participant and question.


class EvalQuestion(Base):
    """One question of an evaluation study's design template (:class:`netreveal.userstudy.Question`)."""

    __tablename__ = "eval_questions"
    __table_args__ = (UniqueConstraint("study_id", "question"), UniqueConstraint("study_id", "position"))
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    question: Mapped[str] = mapped_column(String(40))  # the design's question id, e.g. "rating-001"
    position: Mapped[int] = mapped_column(Integer)  # order in the design template
    kind: Mapped[str] = mapped_column(String(16))  # rating, forward, attention, comment
    image: Mapped[str] = mapped_column(String(200), default="")  # image key ("" without image)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    methods: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # letter -> method (template)
    answer: Mapped[str | None] = mapped_column(String(80))  # correct choice (forward, attention)
    prompt: Mapped[str] = mapped_column(Text, default="")
    options: Mapped[list[Any]] = mapped_column(JSON, default=list)


class EvalPicture(Base):
    """The explanation shown under ``letter`` (the template's letter) of a question: an overlay PNG."""

    __tablename__ = "eval_pictures"
    question_id: Mapped[int] = mapped_column(ForeignKey("eval_questions.id", ondelete="CASCADE"), primary_key=True)
    letter: Mapped[str] = mapped_column(String(2), primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))


class EvalParticipant(Base):
    """An account taking part in an evaluation study. ``slot`` (0, 1, 2... in enrolment order)
    counterbalances conditions; ``code`` is the pseudonymous id used in analyses; ``assignment``
    is the participant's ordered questions as assigned at enrolment (a snapshot)."""

    __tablename__ = "eval_participants"
    __table_args__ = (
        UniqueConstraint("study_id", "account_id"),
        UniqueConstraint("study_id", "slot"),
        UniqueConstraint("study_id", "code"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    background: Mapped[str | None] = mapped_column(String(16))  # novice / expert
    slot: Mapped[int] = mapped_column(Integer)
    assignment: Mapped[list[Any]] = mapped_column(JSON, default=list)
    current_question: Mapped[str | None] = mapped_column(String(40))  # the question last shown
    shown_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # when it was first shown
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EvalResponse(Base):
    """One answer (:class:`netreveal.userstudy.Response`): a rating of one method on one scale, a
    forward-simulation or attention choice, or a comment. Created on the server only."""

    __tablename__ = "eval_responses"
    __table_args__ = (UniqueConstraint("participant_id", "question_id", "method", "scale"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("eval_participants.id", ondelete="CASCADE"), index=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("eval_questions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    condition: Mapped[str | None] = mapped_column(String(8))  # forward: with / without
    method: Mapped[str] = mapped_column(String(40), default="")  # "" when no method applies
    scale: Mapped[str] = mapped_column(String(24), default="")  # "" unless a rating
    value: Mapped[int | None] = mapped_column(Integer)
    choice: Mapped[str | None] = mapped_column(String(80))
    correct: Mapped[bool | None] = mapped_column(Boolean)
    text: Mapped[str] = mapped_column(Text, default="")
    shown_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
