"""Evaluation studies (human evaluation of explanation methods, ``netreveal.userstudy``).

New tables, nothing changed in existing ones:

- ``eval_questions``: a study's design template (question id, position, kind, image, letter ->
  method, answer, prompt, options);
- ``eval_pictures``: the explanation overlay shown under each letter of a question (media);
- ``eval_participants``: accounts taking part (pseudonymous code, background, slot unique per
  study, assignment snapshot, the question last shown and when, enrolment and finish times);
- ``eval_responses``: answers, unique per (participant, question, method, scale); method and
  scale are "" when they do not apply, so a forward, attention or comment question gets one row.

Revision ID: 0004
Revises: 0003
Create Date: 2025-04-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_questions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("question", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("image", sa.String(200), nullable=False),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=True),
        sa.Column("methods", sa.JSON(), nullable=False),
        sa.Column("answer", sa.String(80), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.UniqueConstraint("study_id", "question"),
        sa.UniqueConstraint("study_id", "position"),
    )
    op.create_index("ix_eval_questions_study_id", "eval_questions", ["study_id"])
    op.create_table(
        "eval_pictures",
        sa.Column("question_id", sa.Integer(), sa.ForeignKey("eval_questions.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("letter", sa.String(2), primary_key=True),
        sa.Column("media_id", sa.Integer(), sa.ForeignKey("media.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_table(
        "eval_participants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("background", sa.String(16), nullable=True),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("assignment", sa.JSON(), nullable=False),
        sa.Column("current_question", sa.String(40), nullable=True),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("study_id", "account_id"),
        sa.UniqueConstraint("study_id", "slot"),
        sa.UniqueConstraint("study_id", "code"),
    )
    op.create_index("ix_eval_participants_study_id", "eval_participants", ["study_id"])
    op.create_index("ix_eval_participants_account_id", "eval_participants", ["account_id"])
    op.create_table(
        "eval_responses",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("participant_id", sa.Integer(), sa.ForeignKey("eval_participants.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("question_id", sa.Integer(), sa.ForeignKey("eval_questions.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("condition", sa.String(8), nullable=True),
        sa.Column("method", sa.String(40), nullable=False),
        sa.Column("scale", sa.String(24), nullable=False),
        sa.Column("value", sa.Integer(), nullable=True),
        sa.Column("choice", sa.String(80), nullable=True),
        sa.Column("correct", sa.Boolean(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("participant_id", "question_id", "method", "scale"),
    )
    op.create_index("ix_eval_responses_participant_id", "eval_responses", ["participant_id"])
    op.create_index("ix_eval_responses_question_id", "eval_responses", ["question_id"])


def downgrade() -> None:
    op.drop_index("ix_eval_responses_question_id", table_name="eval_responses")
    op.drop_index("ix_eval_responses_participant_id", table_name="eval_responses")
    op.drop_table("eval_responses")
    op.drop_index("ix_eval_participants_account_id", table_name="eval_participants")
    op.drop_index("ix_eval_participants_study_id", table_name="eval_participants")
    op.drop_table("eval_participants")
    op.drop_table("eval_pictures")
    op.drop_index("ix_eval_questions_study_id", table_name="eval_questions")
    op.drop_table("eval_questions")
