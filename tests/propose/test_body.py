"""PR bodies: a summary table that untrusted text cannot break, and never more than GitHub's
65,536 characters - the long parts are cut, the summary and the marker always stay."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from reconciler.discovery.candidate import Candidate, SourceKind
from reconciler.discovery.discover import RankedCandidate, UseCaseDiscovery
from reconciler.propose.body import GITHUB_BODY_LIMIT, UseCaseProposal, code, pull_request_body
from reconciler.propose.branches import Proposed, branch_part, marker, proposal_branch, read_marker
from reconciler.propose.evidence import Cost, Evidence

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def ranked(candidate_id: str) -> RankedCandidate:
    return RankedCandidate(
        candidate=Candidate(SourceKind.HUGGINGFACE, candidate_id, revision="a" * 40, license="mit"),
        score=0.8,
        breakdown={"quality": 0.5, "recency": 1.0},
        unknown=("quality",),
        eligible=True,
        reasons=(),
        better=True,
        memory_gib=0.3,
        entry={"source": "huggingface"},
    )


def proposal(plan: str, candidate_id: str = "acme/npc-small") -> UseCaseProposal:
    current = ranked("acme/old")
    return UseCaseProposal(
        discovery=UseCaseDiscovery("npc-dialogue", current, (ranked(candidate_id),), ()),
        chosen=ranked(candidate_id),
        evidence=Evidence(
            verdict="passed",
            reasons=("all thresholds met",),
            champion_version="3",
            candidate_figures={
                "behavior_similarity": 0.91,
                "safety_pass_rate": 1.0,
                "latency_p95_ms": 120.0,
                "tokens_per_second": 50.0,
            },
            champion_figures={
                "behavior_similarity": 1.0,
                "safety_pass_rate": 1.0,
                "latency_p95_ms": 150.0,
            },
            thresholds={"behaviorSimilarity": {"min": 0.5}, "latencyP95Ms": {"max": 100.0}},
            memory_gib=0.3,
            cost=None,
        ),
        plan_excerpt=plan,
        file="desired_state/npc-dialogue.yaml",
        diff="+    - source: huggingface\n",
    )


def test_the_evidence_table_compares_with_the_champion_and_judges_each_threshold() -> None:
    body = pull_request_body([proposal("  + register ...")], labels=["model-upgrade"], now=NOW)
    assert "| behaviour similarity | 0.910 | 1.000 | ≥ 0.5 | ✅ pass |" in body
    assert "| p95 latency (ms) | 120.000 | 150.000 | ≤ 100 | ❌ fail |" in body
    assert "| tokens/s | 50.000 | - | - | - |" in body
    assert "Labels: `model-upgrade`" in body
    assert read_marker(body) == [
        Proposed("npc-dialogue", "huggingface", "acme/npc-small", "a" * 40)
    ]


@pytest.mark.parametrize(
    ("cost", "row"),
    [
        (
            Cost(0.015, measured=True, basis="measured: 3.0 prompt + 6.0 completion tokens"),
            "| cost per 1,000 requests (USD, measured) | 0.0150 | - | - | - |",
        ),
        (
            Cost(0.25, measured=False, basis="estimate: prompt tokens as characters / 4"),
            "| cost per 1,000 requests (USD, estimate) | 0.2500 | - | - | - |",
        ),
    ],
)
def test_the_cost_row_says_whether_it_was_measured_and_from_what(cost: Cost, row: str) -> None:
    priced = proposal("  + register ...")
    priced = replace(priced, evidence=replace(priced.evidence, cost=cost))
    body = pull_request_body([priced], labels=[], now=NOW)
    assert row in body
    assert f"Cost basis: {cost.basis}." in body
    unpriced = pull_request_body([proposal("  + register ...")], labels=[], now=NOW)
    assert "cost per 1,000 requests" not in unpriced and "Cost basis" not in unpriced


def test_a_huge_body_is_cut_to_the_limit_keeping_summary_and_marker() -> None:
    huge = "\n".join(f"  ~ shift step {i} " + "x" * 80 for i in range(5000))
    body = pull_request_body([proposal(huge), proposal(huge, "acme/other")], labels=[], now=NOW)
    assert len(body) <= GITHUB_BODY_LIMIT
    assert "| Use case | From → To |" in body
    assert "truncated to fit GitHub's 65,536-character limit" in body
    assert len(read_marker(body)) == 2
    assert body.count("<details>") == body.count("</details>")
    assert body.count("```") % 2 == 0


def test_untrusted_text_stays_inside_its_code_span() -> None:
    assert code("a|b`c\nd") == "`a\\|b'c d`"
    assert code("") == "-"


def test_branch_names_are_sanitised() -> None:
    assert branch_part("Acme/NPC Small!!") == "acme-npc-small"
    assert branch_part("../../etc/passwd") == "etc-passwd"
    assert branch_part("x.lock") == "x"
    assert branch_part("$(rm -rf /)") == "rm-rf"
    assert branch_part("🙂") == "model"
    long = proposal_branch("npc-dialogue", "huggingface", "a" * 300)
    assert len(long) <= len("reconciler/npc-dialogue/") + 60


def test_a_marker_cannot_be_forged_into_closing_the_comment() -> None:
    proposed = Proposed("npc", "openai-compatible", "evil --> <script>", None)
    text = marker([proposed])
    assert text.count("-->") == 1
    assert read_marker("prose " + text + " more") == [proposed]
    assert read_marker("<!-- reconciler:proposal not-base64! -->") == []
