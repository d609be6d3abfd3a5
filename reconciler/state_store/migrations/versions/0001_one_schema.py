"""One schema for the route table, request log, journal, lock holders and violations.

Revision 0001, the first: what the four SQLite files of 0.1 held (each at its newest shape:
request-log rows with an error code, operations with pid and host, violations with their
source), plus the holders of PostgreSQL advisory locks. Written out here rather than taken
from `schema.py`, which describes the newest revision and will move on.
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
        "routes",
        sa.Column("use_case", sa.Text, primary_key=True),
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column(
            "weight", sa.Integer, sa.CheckConstraint("weight BETWEEN 0 AND 100"), nullable=False
        ),
        sa.Column("shadow", sa.Boolean, primary_key=True, server_default=sa.text("false")),
    )
    op.create_table(
        "route_tables",
        sa.Column("use_case", sa.Text, primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("applied", sa.Text),
        sa.Column("written_by", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    _request_log()
    _journal()
    op.create_table(
        "lock_holders",
        sa.Column("use_case", sa.Text, primary_key=True),
        sa.Column("backend_pid", sa.Integer, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("since", sa.Text, nullable=False),
    )
    op.create_table(
        "violations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.Text, nullable=False),
        sa.Column("use_case", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("check_name", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("intervention", sa.Text, nullable=False),
        sa.Column("sample", sa.Text, nullable=False),
        sa.Column("source", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_index("violations_by_use_case", "violations", ["use_case", "recorded_at"])
    op.create_index(
        "violations_once_per_source",
        "violations",
        ["source", "policy", "check_name"],
        unique=True,
        sqlite_where=sa.text("source IS NOT NULL"),
        postgresql_where=sa.text("source IS NOT NULL"),
    )


def _request_log() -> None:
    # Ids compare in byte order on PostgreSQL too, as on SQLite, whatever the locale.
    request_id = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    op.create_table(
        "requests",
        sa.Column("id", request_id, primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("use_case", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("shadow", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("mirror_of", request_id),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("session_id", sa.Text),
        sa.Column("route_generation", sa.Integer, nullable=False),
        sa.Column("request_json", sa.Text, nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("error_code", sa.Text),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("guardrail", sa.Text, nullable=False),
        sa.Column("violations", sa.Text, nullable=False, server_default=sa.text("'[]'")),
    )
    op.create_index("requests_by_use_case_time", "requests", ["use_case", "ts"])
    op.create_index("requests_by_time", "requests", ["ts"])
    op.create_table(
        "feedback",
        sa.Column(
            "response_id",
            request_id,
            sa.ForeignKey("requests.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("rating", sa.Float),
        sa.Column("corrected_output", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def _journal() -> None:
    op.create_table(
        "operations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("use_case", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("change_index", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("result", sa.Text),
        sa.Column("started_at", sa.Text, nullable=False),
        sa.Column("finished_at", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("host", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_index("operations_by_use_case", "operations", ["use_case", "id"])
    op.create_table(
        "rollouts",
        sa.Column("use_case", sa.Text, primary_key=True),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("candidate", sa.Text, nullable=False),
        sa.Column("champion", sa.Text, nullable=False),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_table(
        "judgements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("use_case", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("candidate", sa.Text, nullable=False),
        sa.Column("champion", sa.Text, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("final", sa.Boolean, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("judgements_by_use_case", "judgements", ["use_case", "id"])
    op.create_table(
        "controls",
        sa.Column("use_case", sa.Text, primary_key=True),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("requested_at", sa.Text, nullable=False),
    )
    op.create_table(
        "history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("use_case", sa.Text, nullable=False),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("previous", sa.Text),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=sa.text("''")),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    raise NotImplementedError("the state store's migrations only go forward")
