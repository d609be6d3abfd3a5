"""The live-traffic gateway: an OpenAI-compatible HTTP API in front of the model versions.

It serves each use case from the route table the reconciler writes (weighted, sticky, with
shadow copies), records every exchange in the request log (training data, evaluation prompts)
and exposes the per-version metrics that canary analysis judges. Importing this package is
light: FastAPI, uvicorn, mlflow and torch are imported only by the modules that serve.

Entry points for the rest of the reconciler:

- `log_queries.window_metrics(database, use_case, since=...)`: per-version requests, error
  rate, p50/p95 latency and guardrail violation rate, read from the request log in the state
  store (no HTTP needed; every replica's rows on a shared store); `log_queries.read_exchanges`
  for training data, `usage_by_version(...)` for usage.
- `server.build_gateway(config, guard=...)` and `server.GatewayServer(gateway).start()/.stop()`
  to run a gateway in-process; `reconciler gateway` runs one from the command line.
- `guard.OutputGuard`: the hook the guardrails engine implements.
"""

from __future__ import annotations
