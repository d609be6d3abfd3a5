"""Eligibility and ranking are pure: each constraint names its own reason, the score keeps its
breakdown, and "better" means eligible and outranking the current base in the same ranking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.discovery.candidate import Candidate, Pricing, SourceKind, SourceReport
from reconciler.discovery.discover import assess
from reconciler.discovery.eligibility import EligibilityContext, reasons_against
from reconciler.discovery.memory import (
    bytes_per_parameter_from_counts,
    bytes_per_parameter_from_quantization,
    estimated_memory_gib,
    parameters_from_label,
)
from reconciler.discovery.ranking import rank
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.spec.model import Constraints

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SHA = "0123456789abcdef0123456789abcdef01234567"
WEIGHTS = {
    "quality": 0.3,
    "resourceEfficiency": 0.2,
    "size": 0.1,
    "communityHealth": 0.15,
    "recency": 0.15,
    "license": 0.1,
}


def hub(model_id: str = "acme/npc-small", **fields: object) -> Candidate:
    values: dict[str, object] = {
        "source": SourceKind.HUGGINGFACE,
        "id": model_id,
        "revision": SHA,
        "license": "apache-2.0",
        "parameters": 135e6,
        "bytes_per_parameter": 2.0,
        "pipeline_tag": "text-generation",
        "downloads": 5000,
        "likes": 40,
        "released_at": NOW - timedelta(days=30),
    }
    values.update(fields)
    return Candidate(**values)  # type: ignore[arg-type]


CONSTRAINED = Constraints.model_validate(
    {
        "licenses": ["apache-2.0", "mit"],
        "maxParameters": 2e9,
        "maxMemoryGiB": 2.0,
        "pipelineTags": ["text-generation"],
    }
)


def context(**fields: object) -> EligibilityContext:
    values: dict[str, object] = {"constraints": CONSTRAINED, "now": NOW}
    values.update(fields)
    return EligibilityContext(**values)  # type: ignore[arg-type]


def test_an_eligible_candidate_has_no_reasons() -> None:
    assert reasons_against(hub(), frozenset(), context()) == []


@pytest.mark.parametrize(
    ("candidate", "extra", "reason"),
    [
        (hub(license="llama3"), {}, "license 'llama3' is not in constraints.licenses"),
        (hub(license=None), {}, "license unknown; constraints.licenses allows"),
        (
            hub(parameters=7e9, bytes_per_parameter=0.25),
            {},
            "7e+09 parameters exceed constraints.maxParameters 2e+09",
        ),
        (
            hub(parameters=None),
            {"constraints": Constraints.model_validate({"maxParameters": 2e9})},
            "parameter count unknown; constraints.maxParameters",
        ),
        (
            hub(parameters=1.5e9, bytes_per_parameter=2.0),
            {},
            "estimated serving memory 3.35 GiB exceeds constraints.maxMemoryGiB 2",
        ),
        (hub(pipeline_tag="text-to-image"), {}, "pipeline tag 'text-to-image' is not in"),
        (hub(pipeline_tag=None), {}, "pipeline tag unknown"),
        (hub(downloads=3, min_downloads=100), {}, "3 downloads < minDownloads 100"),
        (
            hub(released_at=NOW - timedelta(hours=20)),
            {"minimum_release_age": timedelta(days=3)},
            "released 20h ago, younger than minimumReleaseAge 3d (soaking)",
        ),
        (
            hub(released_at=None),
            {"minimum_release_age": timedelta(days=3)},
            "release time unknown; minimumReleaseAge needs it",
        ),
        (hub(expires_at=NOW - timedelta(days=1)), {}, "the provider retires it on 2026-11-30"),
        (
            hub(),
            {"rejected": {"sha256:k": "canary failed at 25%"}},
            "rejected before: canary failed at 25%",
        ),
        (
            hub(),
            {"ignored": {("huggingface", "acme/npc-small", SHA): "PR #4 was closed"}},
            "ignored: PR #4 was closed",
        ),
    ],
    ids=[
        "license-not-allowed",
        "license-unknown",
        "too-many-parameters",
        "parameters-unknown",
        "too-much-memory",
        "wrong-pipeline-tag",
        "pipeline-tag-unknown",
        "too-few-downloads",
        "soaking",
        "release-time-unknown",
        "expired",
        "rejected",
        "ignored",
    ],
)
def test_each_failed_check_is_its_own_reason(
    candidate: Candidate, extra: dict[str, object], reason: str
) -> None:
    reasons = reasons_against(candidate, frozenset({"sha256:k"}), context(**extra))
    assert len(reasons) == 1, reasons
    assert reasons[0].startswith(reason), reasons


def test_a_soaked_candidate_passes_the_release_age() -> None:
    old_enough = hub(released_at=NOW - timedelta(days=4))
    assert (
        reasons_against(old_enough, frozenset(), context(minimum_release_age=timedelta(days=3)))
        == []
    )


def test_memory_estimates_follow_the_dtype() -> None:
    assert bytes_per_parameter_from_counts({"BF16": 10, "F32": 10}) == 3.0
    assert bytes_per_parameter_from_counts({"BF16": 10, "Q9": 1}) is None
    assert bytes_per_parameter_from_quantization("Q4_K_M") == pytest.approx(4.5 / 8)
    assert bytes_per_parameter_from_quantization("Q8_0") == pytest.approx(8.5 / 8)
    assert bytes_per_parameter_from_quantization("F16") == 2.0
    assert parameters_from_label("8.0B") == 8e9
    assert parameters_from_label("135M") == 135e6
    one_billion_bf16 = estimated_memory_gib(1e9, 2.0)
    assert one_billion_bf16 == pytest.approx(1e9 * 2 * 1.2 / 1024**3)
    assert estimated_memory_gib(1e9, None) == one_billion_bf16  # 16-bit assumed
    assert estimated_memory_gib(None, 2.0) is None


def test_scores_keep_their_breakdown_and_weights_decide() -> None:
    small_new = hub("acme/small", parameters=100e6, released_at=NOW, downloads=10, likes=0)
    big_popular = hub(
        "acme/big", parameters=1e9, released_at=NOW - timedelta(days=720), downloads=10**6
    )
    scores = rank([small_new, big_popular], WEIGHTS, now=NOW)
    assert set(scores[0].breakdown) == set(WEIGHTS)
    assert scores[0].breakdown["size"] == 1.0 and scores[1].breakdown["size"] == 0.0
    assert scores[1].breakdown["communityHealth"] == 1.0
    assert scores[0].breakdown["recency"] == 1.0
    assert scores[1].breakdown["recency"] == pytest.approx(0.5**4, abs=1e-4)
    expected = sum(WEIGHTS[k] * v for k, v in scores[0].breakdown.items()) / sum(WEIGHTS.values())
    assert scores[0].total == pytest.approx(expected, abs=1e-4)
    assert scores[0].total > scores[1].total
    # Only community counts: the popular one wins.
    community_only = dict.fromkeys(WEIGHTS, 0.0) | {"communityHealth": 1.0}
    popular_first = rank([small_new, big_popular], community_only, now=NOW)
    assert popular_first[1].total > popular_first[0].total


def test_missing_data_is_neutral_and_said_to_be_unknown() -> None:
    bare = Candidate(SourceKind.LOCAL, "models/x", license="mit")
    score = rank([bare, hub()], WEIGHTS, now=NOW)[0]
    assert score.breakdown["quality"] == 0.5
    assert "quality" in score.unknown and "recency" in score.unknown
    assert "license" not in score.unknown


def test_paid_models_are_compared_on_price() -> None:
    cheap = Candidate(
        SourceKind.OPENAI_COMPATIBLE, "cheap", license="proprietary", pricing=Pricing(1e-7, 2e-7)
    )
    dear = Candidate(
        SourceKind.OPENAI_COMPATIBLE, "dear", license="proprietary", pricing=Pricing(1e-5, 3e-5)
    )
    scores = rank([cheap, dear], WEIGHTS, now=NOW)
    assert scores[0].breakdown["resourceEfficiency"] == 1.0
    assert scores[1].breakdown["resourceEfficiency"] == 0.0
    assert scores[0].breakdown["license"] == 0.5


@pytest.fixture(scope="module")
def desired() -> DesiredState:
    state = load_desired_state(Path(__file__).resolve().parents[2]).state
    assert state is not None
    return state


def test_better_means_eligible_and_outranking_the_current_base(desired: DesiredState) -> None:
    use_case = desired.use_case("npc-dialogue")  # local tiny-base, apache-2.0, 2e6 parameters
    newer = Candidate(
        SourceKind.LOCAL,
        "models/catalog/npc-v2",
        path="models/catalog/npc-v2",
        revision="0123456789abcdef",
        license="apache-2.0",
        parameters=2e6,
        released_at=NOW,
    )
    gpl = Candidate(
        SourceKind.LOCAL,
        "models/catalog/gpl",
        path="models/catalog/gpl",
        revision="fedcba9876543210",
        license="gpl-3.0",
        parameters=1e6,
        released_at=NOW,
    )
    same = Candidate(
        SourceKind.LOCAL,
        "models/tiny-base",
        path="models/tiny-base",
        revision="tiny-v1",
        license="apache-2.0",
        released_at=NOW - timedelta(days=400),
    )
    report = SourceReport("local (models/catalog)", candidates=(gpl, newer, same))
    found = assess(use_case, desired, [report], now=NOW)
    assert [c.candidate.id for c in found.candidates] == [
        "models/catalog/npc-v2",
        "models/catalog/gpl",
    ]
    best = found.best
    assert best is not None and best.candidate.id == "models/catalog/npc-v2"
    assert best.score > found.current.score
    ineligible = found.candidates[1]
    assert not ineligible.eligible and not ineligible.better
    assert ineligible.reasons == (
        "license 'gpl-3.0' is not in constraints.licenses ['apache-2.0', 'mit']",
    )
    # The base as the catalog describes it is ranked with that data (old: low recency).
    assert found.current.breakdown["recency"] < 0.5
    assert best.entry == {
        "source": "local",
        "path": "models/catalog/npc-v2",
        "revision": "0123456789abcdef",
        "license": "apache-2.0",
        "parameters": 2e6,
    }


def test_a_candidate_rejected_in_git_is_not_better(desired: DesiredState) -> None:
    from reconciler.discovery.acceptable import identity_of, with_preferred

    use_case = desired.use_case("npc-dialogue")
    newer = Candidate(
        SourceKind.LOCAL,
        "models/catalog/npc-v2",
        path="models/catalog/npc-v2",
        revision="0123456789abcdef",
        license="apache-2.0",
        parameters=2e6,
        released_at=NOW,
    )
    entry = {
        "source": "local",
        "path": "models/catalog/npc-v2",
        "revision": "0123456789abcdef",
        "license": "apache-2.0",
        "parameters": 2e6,
    }
    trained_key = identity_of(with_preferred(use_case, entry), desired).target_key
    from reconciler.spec.discovery import RejectedCandidate

    rejected_spec = use_case.spec.model_copy(
        update={
            "rejected": [
                RejectedCandidate(key=trained_key, reason="canary failed", at=NOW, version="3")
            ]
        }
    )
    rejected_use_case = use_case.model_copy(update={"spec": rejected_spec})
    report = SourceReport("local", candidates=(newer,))
    found = assess(rejected_use_case, desired, [report], now=NOW)
    assert found.best is None
    assert found.candidates[0].reasons == ("rejected before: canary failed",)
