"""What became of each operator control: obeyed, or dropped (and why).

Revision 0003, after 0002. A control used to leave `controls` without a trace whether the
rollout obeyed it or ended first, so the API could not tell an operator which; each one now
leaves a row in `control_outcomes`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "control_outcomes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("use_case", sa.Text, nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("requested_at", sa.Text, nullable=False),
        sa.Column("settled_at", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("control_outcomes_by_use_case", "control_outcomes", ["use_case", "id"])


def downgrade() -> None:
    raise NotImplementedError("the state store's migrations only go forward")
