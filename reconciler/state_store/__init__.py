"""The state store: one database for everything live, SQLite on one host or PostgreSQL shared.

The route table, the request log, the journal, the locks' holders and the guardrail
violations are tables of one schema (`schema.py`), brought up to date by versioned,
forward-only migrations (`migrations/`, alembic) on either backend. `RECONCILER_DATABASE_URL`
chooses the backend: `sqlite:///…` (by default `state.db` in the state folder) for one host,
`postgresql://…` for several — gateway replicas, a controller and `apply` on other machines.

- `url.DatabaseUrl`: the setting parsed, with a redacted form that is the only one printed;
- `database.StateDatabase`: connections, transactions that retry a lost connection, and the
  migrations run once per process on first use;
- `advisory_locks.AdvisoryLocks`: per-use-case locks held by a PostgreSQL session;
- `route_notices.RouteNotices`: LISTEN/NOTIFY, so a route change reaches every replica at once.
"""
