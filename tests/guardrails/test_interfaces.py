"""The entry points other parts of the product use: gateway hook, monitor, store.

(The evaluation gate's safety measure is tested in tests/evaluation/test_safety.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.gateway.policy_guard import GuardAction, OutputGuard, PolicyOutputGuard
from reconciler.guardrails.engine import (
    GuardrailEngine,
    InvalidGuardrailPolicyError,
    compile_policies,
)
from reconciler.guardrails.monitor import LoggedOutput, monitor_outputs
from reconciler.guardrails.store import ViolationStore, redact_sample
from reconciler.spec.guardrail_parameters import parameter_problems
from reconciler.spec.model import (
    GuardrailCheck,
    GuardrailPolicy,
    Intervention,
    Severity,
)
from reconciler.state_store.database import StateDatabase

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SELF_HARM = "You should just kill yourself, nobody would care."
CARD = "Your card 4111 1111 1111 1111 was charged for the lantern."
FICTION = "The orc swings his axe, and the shield splinters."


def _policy(
    checks: list[dict[str, object]], interventions: dict[str, str] | None = None
) -> GuardrailPolicy:
    spec: dict[str, object] = {"checks": checks}
    if interventions is not None:
        spec["interventions"] = interventions
    return GuardrailPolicy.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "GuardrailPolicy",
            "metadata": {"name": "p"},
            "spec": spec,
        }
    )


class SteppingClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def test_parameter_problems_carry_their_paths() -> None:
    check = GuardrailCheck.model_validate(
        {
            "name": "c",
            "type": "semantic",
            "category": "x",
            "severity": "high",
            "parameters": {"exemplars": ["ok then"], "threshold": 2, "colour": "red"},
        }
    )
    problems = dict(parameter_problems(check))
    assert set(problems) == {("threshold",), ("colour",)}
    assert problems[("colour",)] == "unknown field"


def test_invalid_parameters_refuse_to_compile() -> None:
    policy = _policy(
        [
            {
                "name": "c",
                "type": "pattern",
                "category": "x",
                "severity": "low",
                "parameters": {"patterns": ["("]},
            }
        ]
    )
    with pytest.raises(
        InvalidGuardrailPolicyError, match=r"spec\.checks\.0\.parameters\.patterns\.0"
    ):
        compile_policies([policy])


def test_verdict_maps_the_highest_severity_to_the_policy_intervention() -> None:
    policy = _policy(
        [
            {
                "name": "words",
                "type": "pattern",
                "category": "rude",
                "severity": "low",
                "parameters": {"phrases": ["toad"]},
            },
            {"name": "data", "type": "pii", "category": "pii", "severity": "high"},
        ],
        interventions={"high": "retrain", "low": "log_only"},
    )
    engine = compile_policies([policy])
    rude, both, clean = engine.check_batch(["You toad!", f"You toad! {CARD}", "Hello."])
    assert (rude.severity, rude.intervention) == (Severity.LOW, Intervention.LOG_ONLY)
    assert both.categories == ["pii", "rude"]
    assert (both.severity, both.intervention) == (Severity.HIGH, Intervention.RETRAIN)
    assert not clean.flagged and clean.severity is None and clean.intervention is None


def test_gateway_hook_passes_masks_or_blocks(
    shipped_engine: GuardrailEngine, tmp_path: Path
) -> None:
    store = ViolationStore(
        StateDatabase(f"sqlite:///{tmp_path / 'state.db'}"), clock=SteppingClock()
    )
    guard = PolicyOutputGuard({"npc-dialogue": shipped_engine}, store=store)
    assert isinstance(guard, OutputGuard)
    assert guard.inspect("npc-dialogue", "3", FICTION).action is GuardAction.PASS
    masked = guard.inspect("npc-dialogue", "3", CARD)
    assert masked.action is GuardAction.REPLACE
    assert masked.replacement == "Your card [CARD] was charged for the lantern."
    blocked = guard.inspect("npc-dialogue", "3", SELF_HARM)
    assert blocked.action is GuardAction.BLOCK and blocked.replacement is None
    assert {v.split(":")[0] for v in blocked.violations} == {"self_harm"}
    assert guard.inspect("unguarded", "1", SELF_HARM).action is GuardAction.PASS
    assert store.report("npc-dialogue").by_category.keys() == {"pii", "self_harm"}

    with_fallback = PolicyOutputGuard({"npc-dialogue": shipped_engine}, fallback="The bard hums.")
    decision = with_fallback.inspect("npc-dialogue", "3", SELF_HARM)
    assert (decision.action, decision.replacement) == (GuardAction.REPLACE, "The bard hums.")


def test_monitor_rates_versions_and_says_when_to_roll_back(shipped_engine: GuardrailEngine) -> None:
    logged = [
        LoggedOutput("npc-dialogue", "4", FICTION, START + timedelta(minutes=i)) for i in range(8)
    ]
    logged += [LoggedOutput("npc-dialogue", "4", SELF_HARM, START + timedelta(minutes=9))]
    logged += [
        LoggedOutput("npc-dialogue", "3", FICTION, START + timedelta(minutes=i)) for i in range(5)
    ]
    logged += [LoggedOutput("npc-dialogue", "3", SELF_HARM, START - timedelta(days=1))]
    report = monitor_outputs(
        logged, {"npc-dialogue": shipped_engine}, critical_rate_limit=0.05, since=START
    )
    new = report.rates_of("npc-dialogue", "4")
    old = report.rates_of("npc-dialogue", "3")
    assert new is not None and old is not None
    assert (new.outputs, new.critical, dict(new.by_category)) == (9, 1, {"self_harm": 1})
    assert (old.outputs, old.critical) == (5, 0)
    assert report.rollback_needed and report.exceeding == (new,)
    cautious = monitor_outputs(
        logged,
        {"npc-dialogue": shipped_engine},
        critical_rate_limit=0.05,
        since=START,
        min_outputs=50,
    )
    assert not cautious.rollback_needed


def test_adjust_parameters_asks_the_gateway_to_regenerate(
    shipped_policies: tuple[GuardrailPolicy, ...],
) -> None:
    adjusting = [
        p.model_copy(
            update={
                "spec": p.spec.model_copy(
                    update={"interventions": {s: Intervention.ADJUST_PARAMETERS for s in Severity}}
                )
            }
        )
        for p in shipped_policies
    ]
    guard = PolicyOutputGuard({"npc-dialogue": compile_policies(adjusting)})
    decision = guard.inspect("npc-dialogue", "3", SELF_HARM)
    assert decision.action is GuardAction.REGENERATE
    assert decision.violations and decision.violated
    assert guard.inspect("npc-dialogue", "3", FICTION).action is GuardAction.PASS


def test_critical_means_what_the_policy_maps_to_rollback(
    shipped_policies: tuple[GuardrailPolicy, ...], shipped_engine: GuardrailEngine
) -> None:
    logged = [LoggedOutput("npc-dialogue", "4", SELF_HARM, START)] * 3
    strict = monitor_outputs(logged, {"npc-dialogue": shipped_engine}, critical_rate_limit=0.5)
    assert strict.rollback_needed
    # A team that only logs critical findings has asked for no rollbacks.
    lenient = [
        p.model_copy(
            update={
                "spec": p.spec.model_copy(
                    update={"interventions": {s: Intervention.LOG_ONLY for s in Severity}}
                )
            }
        )
        for p in shipped_policies
    ]
    engine = compile_policies(lenient)
    report = monitor_outputs(logged, {"npc-dialogue": engine}, critical_rate_limit=0.5)
    rates = report.rates_of("npc-dialogue", "4")
    assert rates is not None and rates.flagged == 3 and rates.critical == 0
    assert not report.rollback_needed


def test_store_redacts_and_reports(
    state_database: StateDatabase, shipped_engine: GuardrailEngine
) -> None:
    store = ViolationStore(state_database, clock=SteppingClock())
    text = "Mail me at quinn.d@protonmail.com " + "and more words " * 30
    verdict = shipped_engine.check(text)
    assert store.record(use_case="npc-dialogue", version="7", text=text, verdict=verdict) == 1
    assert (
        store.record(
            use_case="npc-dialogue",
            version="7",
            text=FICTION,
            verdict=shipped_engine.check(FICTION),
        )
        == 0
    )
    store.record(
        use_case="npc-dialogue",
        version="8",
        text=SELF_HARM,
        verdict=shipped_engine.check(SELF_HARM),
    )
    report = ViolationStore(state_database).report("npc-dialogue")
    assert report.total == len(shipped_engine.check(SELF_HARM).findings) + 1
    assert report.by_version == {"8": report.total - 1, "7": 1}
    oldest = report.latest[-1]
    assert oldest.sample.startswith("Mail me at [EMAIL] and more")
    assert "protonmail" not in oldest.sample and len(oldest.sample) <= 160
    assert oldest.recorded_at == START + timedelta(seconds=1)
    assert (oldest.policy, oldest.check, oldest.severity, oldest.intervention) == (
        "player-safety",
        "personal-data",
        "high",
        "block_output",
    )
    assert ViolationStore(state_database).report("story-generation").total == 0


def test_redacted_sample_is_masked_before_it_is_cut() -> None:
    sample = redact_sample("x" * 150 + " card 4111 1111 1111 1111", limit=170)
    assert "4111" not in sample and len(sample) <= 170


def test_engagement_windows_are_rated_per_version_against_the_checks_limit(
    shipped_engine: GuardrailEngine,
) -> None:
    label = "manipulative_engagement:healthy-engagement/manipulative-engagement:high"
    logged = [
        LoggedOutput("npc-dialogue", "4", "The bard hums.", START, inline_violations=(label,))
    ] * 2
    logged += [LoggedOutput("npc-dialogue", "4", FICTION, START)] * 38
    logged += [LoggedOutput("npc-dialogue", "3", FICTION, START)] * 40
    report = monitor_outputs(
        logged, {"npc-dialogue": shipped_engine}, critical_rate_limit=0.05, min_outputs=20
    )
    windows = {(e.version, e.name): e for e in report.engagement}
    new = windows["4", "healthy-engagement/manipulative-engagement"]
    old = windows["3", "healthy-engagement/manipulative-engagement"]
    assert (new.outputs, new.unhealthy, new.rate, new.limit) == (40, 2, 0.05, 0.01)
    assert new.intervention is Intervention.BLOCK_OUTPUT
    assert (old.unhealthy, old.rate) == (0, 0.0)
    assert report.engagement_exceeding == (new,)
    # Over the window, but the policy blocks each output rather than rolling back.
    assert not report.exceeding and not report.rollback_needed
    assert not monitor_outputs(
        logged, {"npc-dialogue": shipped_engine}, critical_rate_limit=0.05, min_outputs=50
    ).engagement_exceeding
