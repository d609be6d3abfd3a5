"""Guardrails: check model outputs against the guardrail policies of the desired state.

The product's promise to players is immersive and engaging, never harmful in real life. A
policy (`reconciler.spec.model.GuardrailPolicy`) lists checks; `engine.compile_policies`
turns policies into a checker whose `check_batch(texts)` returns one `Verdict` per text.

Entry points for the rest of the product, each small and typed:

- `verdicts.Verdict` — what the policies say about one output, which the evaluation gate
  (`reconciler.evaluation.safety`) turns into its ``safetyPassRate`` and its reasons;
- `hook.OutputGuard` / `hook.PolicyOutputGuard` — the gateway's inline pass/block/replace;
- `monitor.monitor_outputs` — violation rates per model version, for automatic rollback;
- `store.ViolationStore` — violations persisted in SQLite, with a redacted sample.

Importing this package is light: torch and sentence-transformers load only when a semantic
or engagement check first needs embeddings, so `reconciler validate` and `plan` stay fast.
"""
