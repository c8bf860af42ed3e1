"""Create the feedback table.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("sample_id", sa.String(200), nullable=False),
        sa.Column("head", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("label", sa.Integer(), nullable=True),
        sa.Column("previous_label", sa.Float(), nullable=True),
        sa.Column("model_score", sa.Float(), nullable=True),
        sa.Column("model_sha256", sa.String(64), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feedback_sample_id", "feedback", ["sample_id"])


def downgrade() -> None:
    op.drop_index("ix_feedback_sample_id", table_name="feedback")
    op.drop_table("feedback")
