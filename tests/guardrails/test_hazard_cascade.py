"""The hazard check's cascade with the real models: distilled static embeddings, then MiniLM.

Quality is measured in test_held_out.py; here the mechanics: which outputs reach the encoder,
one finding per category, the caches, clear errors for a bad corpus.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.guardrails.embeddings import SentenceTransformerEmbedder
from reconciler.guardrails.engine import GuardrailEngine, Stage, compile_policies
from reconciler.guardrails.hazard_model import HazardCorpusError
from reconciler.guardrails.static_embeddings import (
    CACHE_DIR_ENV,
    StaticEmbedder,
    load_static_embedder,
    static_cache_dir,
)
from reconciler.spec.model import GuardrailPolicy

REPO_ROOT = Path(__file__).resolve().parents[2]


def _policy(categories: dict[str, dict[str, float]], corpus: str) -> GuardrailPolicy:
    return GuardrailPolicy.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "GuardrailPolicy",
            "metadata": {"name": "hazards"},
            "spec": {
                "checks": [
                    {
                        "name": "taxonomy",
                        "type": "hazard",
                        "category": "hazard",
                        "severity": "critical",
                        "parameters": {"corpus": [corpus], "categories": categories},
                    }
                ]
            },
        }
    )


@pytest.fixture(scope="module")
def static_embedder() -> StaticEmbedder:
    return load_static_embedder()


def test_static_embeddings_are_distilled_once_and_cached_by_model_digest(
    static_embedder: StaticEmbedder,
) -> None:
    # tests/conftest.py points the cache at one folder for the whole test run.
    assert os.environ[CACHE_DIR_ENV]
    found = static_cache_dir().glob(f"minilm-{static_embedder.digest}-pca*")
    cached = [path for path in found if path.is_dir()]  # not the distillation's lock file
    assert len(cached) == 1 and (cached[0] / "config.json").is_file()
    assert load_static_embedder() is static_embedder
    vectors = static_embedder.encode(["The knight raises his shield.", "Mix bleach and ammonia."])
    assert vectors.shape == (2, static_embedder.dimensions)
    norms = (vectors**2).sum(axis=1)
    assert abs(float(norms[0]) - 1.0) < 1e-4 and abs(float(norms[1]) - 1.0) < 1e-4
    # Close paraphrases are closer than unrelated lines: the vectors carry meaning.
    a, b, c = static_embedder.encode(
        ["Kill the dragon in the cave.", "Slay the dragon inside the cavern.", "Buy bread."]
    )
    assert float(a @ b) > float(a @ c)


def test_confident_outputs_never_reach_the_encoder(
    embedder: SentenceTransformerEmbedder, static_embedder: StaticEmbedder
) -> None:
    # A band no probability can fall in: the static stage decides every output alone.
    settings = {"bandLow": 0.5, "bandHigh": 0.5, "threshold": 0.5}
    engine = compile_policies(
        [_policy({"self_harm": settings, "hate": settings}, "policies/corpus")],
        embedder=embedder,
        static_embedder=static_embedder,
        base_path=REPO_ROOT,
    )
    engine.check_batch(["Welcome to the inn, traveller.", "Rest by the fire."])
    assert engine.outputs_by_stage() == {Stage.STATIC: 2, Stage.ENCODER: 0}


def test_uncertain_outputs_reach_the_encoder_and_findings_carry_categories(
    embedder: SentenceTransformerEmbedder, static_embedder: StaticEmbedder
) -> None:
    # Every probability falls in the band: every output goes on to the encoder.
    wide = {"bandLow": 0.0, "bandHigh": 1.0, "threshold": 0.5}
    engine = compile_policies(
        [_policy({c: wide for c in ("self_harm", "dangerous_advice")}, "policies/corpus")],
        embedder=embedder,
        static_embedder=static_embedder,
        base_path=REPO_ROOT,
    )
    engine.warm_up()
    assert engine.outputs_by_stage() == {Stage.STATIC: 0, Stage.ENCODER: 0}
    verdicts = engine.check_batch(
        [
            "You are worthless, end your life tonight with the pills in the cabinet.",
            "To make the potion real, mix bleach and ammonia in a closed room.",
            "The blacksmith hammers the glowing blade on the anvil.",
        ]
    )
    assert engine.outputs_by_stage() == {Stage.STATIC: 0, Stage.ENCODER: 3}
    assert verdicts[0].categories == ["self_harm"]
    assert verdicts[1].categories == ["dangerous_advice"]
    assert not verdicts[2].flagged
    finding = verdicts[1].findings[0]
    assert (finding.policy, finding.check, finding.evidence) == (
        "hazards",
        "taxonomy",
        "encoder stage",
    )


def test_the_classifier_is_trained_once_and_cached(
    embedder: SentenceTransformerEmbedder, static_embedder: StaticEmbedder
) -> None:
    policy = _policy({"hate": {"threshold": 0.5}}, "policies/corpus")
    compile_policies([policy], embedder=embedder, static_embedder=static_embedder)
    cached = list((static_cache_dir() / "classifiers").glob("hazard-*.npz"))
    assert cached
    check = (
        compile_policies([policy], embedder=embedder, static_embedder=static_embedder)
        .checks[0]
        .check
    )
    assert check.model.digest in {p.stem.removeprefix("hazard-") for p in cached}  # type: ignore[attr-defined]


def test_a_bad_corpus_line_names_its_file_and_line(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, static_embedder: StaticEmbedder
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "hate.jsonl").write_text(
        json.dumps({"text": "A line.", "labels": ["hate"]}) + "\n" + '{"text": "no labels"}\n'
    )
    with pytest.raises(HazardCorpusError, match=r"hate\.jsonl:2: expected"):
        compile_policies(
            [_policy({"hate": {}}, str(corpus))],
            embedder=embedder,
            static_embedder=static_embedder,
        )


def test_a_category_without_lines_in_the_corpus_is_an_error(
    embedder: SentenceTransformerEmbedder, static_embedder: StaticEmbedder
) -> None:
    with pytest.raises(HazardCorpusError, match="weather have no labelled lines"):
        compile_policies(
            [_policy({"weather": {}}, "policies/corpus")],
            embedder=embedder,
            static_embedder=static_embedder,
            base_path=REPO_ROOT,
        )


def test_opted_in_engine_counts_stages(opted_in_engine: GuardrailEngine) -> None:
    before = opted_in_engine.outputs_by_stage()
    opted_in_engine.check_batch(["Good game! Take a break and drink some water."] * 4)
    after = opted_in_engine.outputs_by_stage()
    assert sum(after.values()) - sum(before.values()) == 4
