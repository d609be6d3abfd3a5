"""The evaluation gate: a candidate version against the champion, judged by the spec's thresholds.

Both generate for the same prompts (the use case's evaluation JSONL plus a sample of recent
logged prompts), `repeats` times with the same seeds, in batches. Measured: behaviour
similarity (mean cosine of sentence embeddings of candidate vs champion outputs), similarity to
reference outputs and validation loss / perplexity on them, p50/p95 latency and tokens/s,
the safety pass rate under the use case's guardrail policies, and the assertions' pass rate.
Everything goes to one MLflow evaluation run (the prompts as its dataset input, metrics, a
per-output table), and the candidate version is tagged with the verdict, the use-case digest it
was made for, the reasons and the run; its description links the run, so the MLflow UI leads
from the version to the evaluation that let it roll out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import lineage
from reconciler.digest import digest_of
from reconciler.evaluation.champion_cache import (
    CACHE_DIR,
    ChampionOutputs,
    keep_vectors,
    recall_vectors,
)
from reconciler.evaluation.champion_cache import champion_runs as champion_runs_of
from reconciler.evaluation.embedding_pass import EmbeddingPass
from reconciler.evaluation.generation import ExternalGenerator, Generated, Generator, LocalGenerator
from reconciler.evaluation.prompts import EvaluationPrompt, evaluation_prompts
from reconciler.evaluation.result import (
    EvaluationResult,
    Measurements,
    TokenUsage,
    judge,
    reason_of,
)
from reconciler.evaluation.safety import GuardrailsJudge, SafetyJudge, SafetyReport
from reconciler.evaluation.scoring import assertion_holds, mean, pairwise_similarity
from reconciler.guardrails.embeddings import Embedder, default_embedder
from reconciler.model_loading import fitting_length, load_causal_lm
from reconciler.percentiles import percentile
from reconciler.registry.version_files import locate_model_folders
from reconciler.settings import Settings
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import UseCase
from reconciler.tracking.mlflow_tracking import (
    DatasetTable,
    RegisteredVersion,
    Tracking,
    TrackingRun,
)
from reconciler.training.base_models import read_provider, version_files
from reconciler.training.examples import Example
from reconciler.training.fine_tune import encode_examples, mean_loss, perplexity
from reconciler.training.logs import LogSource
from reconciler.training.registration import ROLE_EXTERNAL

EVALUATION_SEED = 1234
# The reason as a version or run tag (MLflow allows 5,000-100,000 characters by version).
REASON_LIMIT = 4000
# Starts the paragraph of a version's description that links its latest evaluation.
EVALUATION_NOTE = "Evaluated "


@dataclass(frozen=True)
class _Loaded:
    generator: Generator
    model: Any | None  # local weights, for the validation loss
    tokenizer: Any | None


def evaluate(
    use_case: UseCase,
    identity: UseCaseIdentity,
    desired: DesiredState,
    *,
    repo: Path,
    settings: Settings,
    candidate_version: str,
    champion_version: str | None,
    logs: LogSource | None = None,
    judge_safety: SafetyJudge | None = None,
    embedder: Embedder | None = None,
    tracking: Tracking | None = None,
    batch_size: int = 32,
    champion_cache: ChampionOutputs | None = None,
) -> EvaluationResult:
    """`champion_cache`: where the champion's outputs are kept between evaluations (default:
    the state folder's ``evaluation-cache/``, see `champion_cache`)."""
    tracking = tracking or Tracking(settings)
    spec = use_case.spec
    name = spec.registered_model
    # Every text of this evaluation is embedded once, in one pass (see `embedding_pass`).
    vectors = EmbeddingPass(embedder or default_embedder())
    guardrails_share_the_pass = judge_safety is None
    if judge_safety is None:
        policies = [desired.policy(p) for p in spec.guardrails]
        judge_safety = GuardrailsJudge(policies, embedder=vectors, base_path=repo)
    prompts = evaluation_prompts(
        use_case, datasets=desired.dataset_contents, logs=logs, seed=EVALUATION_SEED
    )
    if not prompts:
        raise ValueError(f"use case {use_case.name} has no evaluation prompts")
    texts = [p.prompt for p in prompts]
    repeats = spec.evaluation.repeats

    candidate = _load(
        tracking, tracking.get_version(name, candidate_version), use_case, settings, batch_size
    )
    candidate_runs = [
        candidate.generator.generate(texts, seed=EVALUATION_SEED + r) for r in range(repeats)
    ]
    champion_runs, champion_cached = _champion_runs(
        tracking,
        use_case,
        settings,
        candidate_runs,
        texts,
        candidate_version=candidate_version,
        champion_version=champion_version,
        cache=champion_cache or ChampionOutputs(settings.state_dir / CACHE_DIR),
        batch_size=batch_size,
    )

    outputs = [g.text for run in candidate_runs for g in run]
    champion_outputs = [g.text for run in champion_runs or [] for g in run]
    rows_prompts = [p for _ in range(repeats) for p in prompts]
    referenced = [(i, p.reference) for i, p in enumerate(rows_prompts) if p.reference]
    references = [str(r) for _, r in referenced]
    _embed_once(
        vectors,
        [*outputs, *champion_outputs, *references],
        guarded=outputs if guardrails_share_the_pass else [],
        champion_runs=[[g.text for g in run] for run in champion_runs or []],
        champion_cache=champion_cached,
    )
    behaviour: list[float] | None = None
    if champion_runs is not None:
        behaviour = pairwise_similarity(vectors, outputs, champion_outputs)
    reference_scores = pairwise_similarity(vectors, [outputs[i] for i, _ in referenced], references)
    safety = SafetyReport(tuple(judge_safety.verdicts(outputs)))
    assertions = spec.evaluation.assertions
    assertion_results = [[assertion_holds(a, text) for a in assertions] for text in outputs]
    latencies = [g.latency_ms for run in candidate_runs for g in run]
    # A batch's tokens came out in one wall time: count each batch's time once.
    batch_times = {(r, g.latency_ms) for r, run in enumerate(candidate_runs) for g in run}
    seconds = sum(t for _, t in batch_times) / 1000.0
    tokens = sum(g.new_tokens for run in candidate_runs for g in run)
    validation_loss = _validation_loss(candidate, use_case, prompts)
    checks = [ok for row in assertion_results for ok in row]
    measured = Measurements(
        behavior_similarity=mean(behaviour) if behaviour is not None else None,
        reference_similarity=mean(reference_scores) if reference_scores else None,
        safety_pass_rate=safety.pass_rate,
        assertion_pass_rate=mean([float(c) for c in checks]) if checks else None,
        latency_p50_ms=_or_nan(percentile(latencies, 0.5)),
        latency_p95_ms=_or_nan(percentile(latencies, 0.95)),
        tokens_per_second=tokens / seconds if seconds > 0 else math.nan,
        validation_loss=validation_loss,
        validation_perplexity=perplexity(validation_loss) if validation_loss is not None else None,
    )
    verdict, failures = judge(
        measured,
        spec.evaluation.thresholds,
        has_champion=champion_version is not None,
        safety=safety,
    )
    reference_by_row = dict(zip((i for i, _ in referenced), reference_scores, strict=True))
    table = [
        {
            "output": index,  # the id a reason's "e.g. output N" names
            "repeat": index // len(prompts),
            "prompt": rows_prompts[index].prompt,
            "origin": rows_prompts[index].origin,
            "reference": rows_prompts[index].reference or "",
            "candidate_output": outputs[index],
            "champion_output": champion_runs[index // len(prompts)][index % len(prompts)].text
            if champion_runs is not None
            else "",
            "behavior_similarity": behaviour[index] if behaviour is not None else None,
            "reference_similarity": reference_by_row.get(index),
            "safety_flagged": safety.verdicts[index].flagged,
            **safety.columns(index),
            "assertions_passed": sum(assertion_results[index]),
            "assertions_total": len(assertions),
            "latency_ms": latencies[index],
        }
        for index in range(len(outputs))
    ]
    run_tags = {
        lineage.USE_CASE: use_case.name,
        lineage.EVALUATION_DIGEST: identity.digest,
        "reconciler.candidate_version": candidate_version,
        "reconciler.champion_version": champion_version or "",
    }
    with tracking.run(use_case.name, f"evaluate-v{candidate_version}", tags=run_tags) as run:
        run.log_dataset(prompts_table(use_case, prompts, repo), context="evaluation")
        run.log_params(
            {
                "prompts": len(prompts),
                "repeats": repeats,
                "seed": EVALUATION_SEED,
                "guardrail_policies": ",".join(spec.guardrails),
            }
        )
        _log_evaluation(run, measured, verdict, failures, safety, table)
        run_id, run_link = run.run_id, run.ui_link
    result = EvaluationResult(
        candidate_version=candidate_version,
        champion_version=champion_version,
        verdict=verdict,
        failures=failures,
        measurements=measured,
        prompt_count=len(prompts),
        run_id=run_id,
        token_usage=TokenUsage.mean_of([g.usage for run in candidate_runs for g in run]),
        fired_checks=safety.fired,
    )
    tracking.set_version_tags(
        name,
        candidate_version,
        {
            lineage.EVALUATION_VERDICT: verdict.value,
            lineage.EVALUATION_DIGEST: identity.digest,
            lineage.EVALUATION_REASON: result.reason[:REASON_LIMIT],
            lineage.EVALUATION_RUN: run_id,
            **safety.tags(),
        },
    )
    _link_evaluation(tracking, name, result, run_link)
    return result


def _champion_runs(
    tracking: Tracking,
    use_case: UseCase,
    settings: Settings,
    candidate_runs: list[list[Generated]],
    texts: list[str],
    *,
    candidate_version: str,
    champion_version: str | None,
    cache: ChampionOutputs,
    batch_size: int,
) -> tuple[list[list[Generated]] | None, ChampionOutputs | None]:
    """The champion's outputs per repeat (None without a champion), and the cache they are
    kept in (None when they are not: no champion, the candidate's own, an external one)."""
    if champion_version is None:
        return None, None
    if champion_version == candidate_version:
        # The same registry version is the same files: generating again would reproduce
        # these outputs draw for draw (same seeds), so they are reused. Two versions holding
        # equal weights are still loaded and generated separately.
        return candidate_runs, None
    champion = tracking.get_version(use_case.spec.registered_model, champion_version)
    # A provider may change what a model id answers: an external champion is asked again.
    kept = None if champion.tags.get(lineage.ROLE) == ROLE_EXTERNAL else cache
    runs = champion_runs_of(
        kept,
        champion,
        texts,
        use_case.spec.generation,
        seeds=[EVALUATION_SEED + r for r in range(len(candidate_runs))],
        batch_size=batch_size,
        load=lambda: _load(tracking, champion, use_case, settings, batch_size).generator,
    )
    return runs, kept


def _embed_once(
    vectors: EmbeddingPass,
    texts: list[str],
    *,
    guarded: list[str],
    champion_runs: list[list[str]],
    champion_cache: ChampionOutputs | None,
) -> None:
    """Every text of the evaluation into `vectors` in one pass (see `embedding_pass`). A
    cached champion's output vectors are kept with its outputs: read from there, not encoded
    again; stored there when this is the first evaluation against it."""
    unstored = recall_vectors(champion_cache, champion_runs, vectors)
    vectors.prepare(texts, guarded=guarded)
    keep_vectors(champion_cache, unstored, vectors)


def _link_evaluation(
    tracking: Tracking, name: str, result: EvaluationResult, run_link: str
) -> None:
    """The candidate's description names the evaluation run with a link to it."""
    champion = result.champion_version
    against = f"against version {champion}" if champion else "without a champion"
    note = (
        f"{EVALUATION_NOTE}{against} in run [evaluate-v{result.candidate_version}]"
        f"({run_link}): {result.verdict.value} ({result.reason[:500]})."
    )
    described = tracking.get_version(name, result.candidate_version).description
    tracking.set_version_description(
        name, result.candidate_version, with_evaluation_note(described, note)
    )


def with_evaluation_note(description: str, note: str) -> str:
    """`description` with its evaluation paragraph replaced by `note` (added when missing):
    a version evaluated again links its latest evaluation, once."""
    kept = [
        paragraph
        for paragraph in description.split("\n\n")
        if paragraph.strip() and not paragraph.startswith(EVALUATION_NOTE)
    ]
    return "\n\n".join([*kept, note])


def prompts_table(
    use_case: UseCase, prompts: Sequence[EvaluationPrompt], repo: Path
) -> DatasetTable:
    """The prompts as the evaluation run's dataset input: the JSONL's and the logged ones."""
    rows = [
        {"prompt": p.prompt, "reference": p.reference or "", "origin": p.origin} for p in prompts
    ]
    return DatasetTable(
        name=f"{use_case.name}-evaluation",
        digest=digest_of(rows).removeprefix("sha256:"),
        rows=rows,
        source=str((repo / use_case.spec.evaluation.prompts).resolve()),
    )


def _load(
    tracking: Tracking,
    version: RegisteredVersion,
    use_case: UseCase,
    settings: Settings,
    batch_size: int,
) -> _Loaded:
    files = version_files(version, settings)
    generation = use_case.spec.generation
    if version.tags.get(lineage.ROLE) == ROLE_EXTERNAL:
        return _Loaded(
            ExternalGenerator.from_provider(read_provider(files), generation), None, None
        )
    folders = locate_model_folders(files)
    model, tokenizer = load_causal_lm(folders.weights, folders.tokenizer)
    return _Loaded(
        LocalGenerator(model, tokenizer, generation, batch_size=batch_size), model, tokenizer
    )


def _validation_loss(
    loaded: _Loaded, use_case: UseCase, prompts: Sequence[EvaluationPrompt]
) -> float | None:
    if loaded.model is None or loaded.tokenizer is None:
        return None
    system = use_case.spec.generation.system_prompt
    examples = [Example(system, p.prompt, p.reference, "dataset") for p in prompts if p.reference]
    if not examples:
        return None
    # A model with a short context (a small catalog model) is scored on what fits it.
    encoded = encode_examples(
        loaded.tokenizer, examples, max_length=fitting_length(loaded.model, 256)
    )
    loss = mean_loss(loaded.model, encoded, int(loaded.tokenizer.pad_token_id))
    return None if math.isnan(loss) else loss


def _log_evaluation(
    run: TrackingRun,
    measured: Measurements,
    verdict: lineage.EvaluationVerdict,
    failures: tuple[str, ...],
    safety: SafetyReport,
    table: list[dict[str, Any]],
) -> None:
    passed = verdict is lineage.EvaluationVerdict.PASSED
    run.log_metrics({**measured.as_metrics(), **safety.metrics(), "passed": float(passed)})
    reason = reason_of(failures)
    run.set_tags(
        {
            lineage.EVALUATION_VERDICT: verdict.value,
            lineage.EVALUATION_REASON: reason[:REASON_LIMIT],
            **safety.tags(),
        }
    )
    run.log_table(table, "evaluation/per_output.json")
    # Unbounded, unlike the tags: every fired check, and every finding of every output.
    run.log_dict(
        {
            "verdict": verdict.value,
            "failures": list(failures),
            "fired_checks": [f.to_json() for f in safety.fired],
            "findings": {
                str(output): [f.to_json() for f in v.findings]
                for output, v in enumerate(safety.verdicts)
                if v.flagged
            },
        },
        "evaluation/verdict.json",
    )


def _or_nan(value: float | None) -> float:
    # Measurements keep NaN for "nothing measured": the judge treats it as a failed threshold.
    return math.nan if value is None else value
