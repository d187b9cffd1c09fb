"""The first schema: settings, users, projects, items, assignments, guidelines_seen, labels.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True)


def _fk(name: str, target: str) -> sa.Column:
    return sa.Column(name, sa.Integer, sa.ForeignKey(target, ondelete="CASCADE"), nullable=False, index=True)


def upgrade() -> None:
    op.create_table("settings", sa.Column("key", sa.String(64), primary_key=True),
                    sa.Column("value", sa.Text, nullable=False))
    op.create_table("users", _id(), sa.Column("username", sa.String(64), nullable=False, unique=True),
                    sa.Column("password_hash", sa.String(256), nullable=False),
                    sa.Column("role", sa.String(16), nullable=False))
    op.create_table("projects", _id(), sa.Column("name", sa.String(128), nullable=False, unique=True),
                    sa.Column("kind", sa.String(16), nullable=False),
                    sa.Column("guidelines", sa.Text, nullable=False),
                    sa.Column("overlap", sa.Integer, nullable=False))
    op.create_table("items", _id(), _fk("project_id", "projects.id"),
                    sa.Column("position", sa.Integer, nullable=False),
                    sa.Column("prompt", sa.JSON, nullable=False),
                    sa.Column("responses", sa.JSON, nullable=False),
                    sa.Column("gold", sa.JSON, nullable=True))
    op.create_table("assignments", _id(), _fk("item_id", "items.id"), _fk("user_id", "users.id"),
                    sa.UniqueConstraint("item_id", "user_id"))
    op.create_table("guidelines_seen", _id(), _fk("project_id", "projects.id"), _fk("user_id", "users.id"),
                    sa.UniqueConstraint("project_id", "user_id"))
    op.create_table("labels", _id(), _fk("item_id", "items.id"), _fk("user_id", "users.id"),
                    sa.Column("idempotency_key", sa.String(64), nullable=False),
                    sa.Column("payload", sa.JSON, nullable=False),
                    sa.Column("rationale", sa.Text, nullable=False),
                    sa.Column("flags", sa.JSON, nullable=False),
                    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
                    sa.UniqueConstraint("item_id", "user_id"),
                    sa.UniqueConstraint("user_id", "idempotency_key"))


def downgrade() -> None:
    for table in ("labels", "guidelines_seen", "assignments", "items", "projects", "users", "settings"):
        op.drop_table(table)
