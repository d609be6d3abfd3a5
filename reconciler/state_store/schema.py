"""The tables of the state store, as SQLAlchemy Core sees them (both backends alike).

This is the schema at the newest migration; `migrations/versions/` builds it step by step,
and a test checks that the two agree. Times are what the stores always wrote: ISO 8601 text
for the journal, the route table and violations, epoch seconds (a float) for the request log
and judgements, which are compared and aggregated as numbers.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)

metadata = MetaData()

# Request ids compare in byte order on PostgreSQL as on SQLite (whatever the database's
# locale), so "the choices of response X" is an index range: X: .. X; (';' follows ':').
RequestId = Text().with_variant(Text(collation="C"), "postgresql")

# -- the route table (traffic/store.py) -------------------------------------------------------

routes = Table(
    "routes",
    metadata,
    Column("use_case", Text, primary_key=True),
    Column("version", Text, primary_key=True),
    Column("weight", Integer, CheckConstraint("weight BETWEEN 0 AND 100"), nullable=False),
    Column("shadow", Boolean, primary_key=True, server_default=text("false")),
)

route_tables = Table(
    "route_tables",
    metadata,
    Column("use_case", Text, primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("applied", Text),
    Column("written_by", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

# -- the request log (gateway/request_log.py, gateway/log_queries.py) -------------------------

requests = Table(
    "requests",
    metadata,
    Column("id", RequestId, primary_key=True),
    Column("ts", Float, nullable=False),
    Column("use_case", Text, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("shadow", Boolean, nullable=False, server_default=text("false")),
    Column("mirror_of", RequestId),
    Column("endpoint", Text, nullable=False),
    Column("session_id", Text),
    Column("route_generation", Integer, nullable=False),
    Column("request_json", Text, nullable=False),
    Column("output", Text),
    Column("status", Text, nullable=False),
    Column("error", Text),
    Column("error_code", Text),
    Column("latency_ms", Float, nullable=False),
    Column("prompt_tokens", Integer, nullable=False, server_default=text("0")),
    Column("completion_tokens", Integer, nullable=False, server_default=text("0")),
    Column("guardrail", Text, nullable=False),
    Column("violations", Text, nullable=False, server_default=text("'[]'")),
    Index("requests_by_use_case_time", "use_case", "ts"),
    Index("requests_by_time", "ts"),
)

feedback = Table(
    "feedback",
    metadata,
    Column(
        "response_id",
        RequestId,
        ForeignKey("requests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("rating", Float),
    Column("corrected_output", Text),
    Column("updated_at", Float, nullable=False),
)

# -- the journal (apply/journal.py) -----------------------------------------------------------

operations = Table(
    "operations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("use_case", Text, nullable=False),
    Column("digest", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("change_index", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("message", Text, nullable=False, server_default=text("''")),
    Column("result", Text),
    Column("started_at", Text, nullable=False),
    Column("finished_at", Text),
    Column("pid", Integer),
    Column("host", Text),
    Index("operations_by_use_case", "use_case", "id"),
    sqlite_autoincrement=True,
)

rollouts = Table(
    "rollouts",
    metadata,
    Column("use_case", Text, primary_key=True),
    Column("digest", Text, nullable=False),
    Column("candidate", Text, nullable=False),
    Column("champion", Text, nullable=False),
    Column("phase", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

judgements = Table(
    "judgements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("use_case", Text, nullable=False),
    Column("digest", Text, nullable=False),
    Column("candidate", Text, nullable=False),
    Column("champion", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("final", Boolean, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("at", Float, nullable=False),
    Column("body", Text, nullable=False),
    Index("judgements_by_use_case", "use_case", "id"),
    sqlite_autoincrement=True,
)

controls = Table(
    "controls",
    metadata,
    Column("use_case", Text, primary_key=True),
    Column("command", Text, nullable=False),
    Column("requested_at", Text, nullable=False),
)

# What became of each operator control once it left `controls`: obeyed, or dropped and why.
control_outcomes = Table(
    "control_outcomes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("use_case", Text, nullable=False),
    Column("command", Text, nullable=False),
    Column("requested_at", Text, nullable=False),
    Column("settled_at", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Index("control_outcomes_by_use_case", "use_case", "id"),
    sqlite_autoincrement=True,
)

history = Table(
    "history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("use_case", Text, nullable=False),
    Column("at", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("previous", Text),
    Column("cause", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=text("''")),
    sqlite_autoincrement=True,
)

# Who holds a use case's advisory lock (PostgreSQL only; on SQLite the lock file says it).
lock_holders = Table(
    "lock_holders",
    metadata,
    Column("use_case", Text, primary_key=True),
    Column("backend_pid", Integer, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("host", Text, nullable=False),
    Column("since", Text, nullable=False),
)

# -- guardrail violations (guardrails/store.py) -----------------------------------------------

violations = Table(
    "violations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recorded_at", Text, nullable=False),
    Column("use_case", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("policy", Text, nullable=False),
    Column("check_name", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("intervention", Text, nullable=False),
    Column("sample", Text, nullable=False),
    # The logged request a finding came from: the monitor re-reads overlapping windows of
    # the request log, and a finding is stored once per request however often it is read.
    Column("source", Text),
    Index("violations_by_use_case", "use_case", "recorded_at"),
    Index(
        "violations_once_per_source",
        "source",
        "policy",
        "check_name",
        unique=True,
        sqlite_where=text("source IS NOT NULL"),
        postgresql_where=text("source IS NOT NULL"),
    ),
    sqlite_autoincrement=True,
)
