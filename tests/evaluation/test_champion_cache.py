"""The champion's outputs (and their embeddings) kept between evaluations, and the one
embedding pass.

A real tiny GPT-2 generates; a small wrapper counts its `generate` calls (no mock of
transformers). The embedder is the real all-MiniLM-L6-v2.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from reconciler import lineage
from reconciler.evaluation.champion_cache import (
    ChampionOutputs,
    champion_runs,
    keep_vectors,
    recall_vectors,
)
from reconciler.evaluation.embedding_pass import EmbeddingPass
from reconciler.evaluation.generation import Generated, LocalGenerator
from reconciler.guardrails.checks.hazard import embedder_digest
from reconciler.guardrails.embeddings import (
    SentenceTransformerEmbedder,
    clauses,
    default_embedder,
    locate_embedding_model,
)
from reconciler.model_loading import load_causal_lm
from reconciler.spec.model import Generation
from reconciler.tracking.mlflow_tracking import RegisteredVersion

PROMPTS = [
    "Greet the traveller at the gate.",
    "What does the blacksmith sell?",
    "Tell me a rumour about the old mine, and be quick about it, the bell is ringing.",
    "Where is the inn?",
    "Who guards the bridge?",
]
SETTINGS = Generation(temperature=0.7, max_new_tokens=12)
CHAMPION = RegisteredVersion(
    name="npc-dialogue",
    version="3",
    status="READY",
    tags=MappingProxyType({lineage.KEY: "sha256:abc"}),
    run_id="0f3c1d",
)


class CountingGenerator:
    """A real generator that counts the calls made to it."""

    def __init__(self, inner: LocalGenerator) -> None:
        self.inner = inner
        self.calls = 0

    def generate(self, prompts: Sequence[str], *, seed: int) -> list[Generated]:
        self.calls += 1
        return self.inner.generate(prompts, seed=seed)


@pytest.fixture(scope="module")
def local(tiny_base_model: Path) -> tuple[object, object]:
    return load_causal_lm(tiny_base_model)


def counting(local: tuple[object, object], settings: Generation = SETTINGS) -> CountingGenerator:
    model, tokenizer = local
    return CountingGenerator(LocalGenerator(model, tokenizer, settings, batch_size=2))


def texts(runs: list[list[Generated]]) -> list[list[str]]:
    return [[g.text for g in run] for run in runs]


def test_cached_champion_outputs_are_reused_and_equal_fresh_ones(
    local: tuple[object, object], tmp_path: Path
) -> None:
    cache = ChampionOutputs(tmp_path / "evaluation-cache")
    generator = counting(local)
    loads = []

    def load() -> CountingGenerator:
        loads.append(1)
        return generator

    first = champion_runs(
        cache, CHAMPION, PROMPTS, SETTINGS, seeds=[1234, 1235], batch_size=2, load=load
    )
    assert generator.calls == 2 and len(loads) == 1
    assert len(list(cache.folder.glob("*.json"))) == 2
    again = champion_runs(
        cache, CHAMPION, PROMPTS, SETTINGS, seeds=[1234, 1235], batch_size=2, load=load
    )
    # Neither loaded nor generated the second time.
    assert generator.calls == 2 and len(loads) == 1
    assert texts(again) == texts(first)
    # Without a cache the champion is generated again, to the same outputs.
    fresh = counting(local)
    uncached = champion_runs(
        None, CHAMPION, PROMPTS, SETTINGS, seeds=[1234, 1235], batch_size=2, load=lambda: fresh
    )
    assert fresh.calls == 2 and texts(uncached) == texts(first)


@pytest.mark.parametrize(
    "change",
    [
        {"settings": Generation(temperature=0.9, max_new_tokens=12)},
        {"settings": Generation(temperature=0.7, max_new_tokens=12, system_prompt="Be brief.")},
        {"prompts": [*PROMPTS[:-1], "Who guards the north bridge?"]},
        {"seeds": [1236]},
        {"batch_size": 4},
        {"version": RegisteredVersion("npc-dialogue", "3", "READY", CHAMPION.tags, "9e9e9e")},
        {"version": RegisteredVersion("npc-dialogue", "4", "READY", CHAMPION.tags, "0f3c1d")},
    ],
)
def test_a_change_of_what_the_outputs_depend_on_is_a_miss(
    local: tuple[object, object], tmp_path: Path, change: dict[str, object]
) -> None:
    cache = ChampionOutputs(tmp_path / "evaluation-cache")
    champion_runs(
        cache, CHAMPION, PROMPTS, SETTINGS, seeds=[1234], batch_size=2,
        load=lambda: counting(local),
    )  # fmt: skip
    settings = change.get("settings", SETTINGS)
    assert isinstance(settings, Generation)
    generator = counting(local, settings)
    runs = champion_runs(
        cache,
        change.get("version", CHAMPION),  # type: ignore[arg-type]
        change.get("prompts", PROMPTS),  # type: ignore[arg-type]
        settings,
        seeds=change.get("seeds", [1234]),  # type: ignore[arg-type]
        batch_size=change.get("batch_size", 2),  # type: ignore[arg-type]
        load=lambda: generator,
    )
    assert generator.calls == 1
    assert len(runs[0]) == len(change.get("prompts", PROMPTS))  # type: ignore[arg-type]


def test_an_unreadable_or_short_entry_is_generated_again(
    local: tuple[object, object], tmp_path: Path
) -> None:
    cache = ChampionOutputs(tmp_path)
    champion_runs(
        cache, CHAMPION, PROMPTS, SETTINGS, seeds=[1234], batch_size=2,
        load=lambda: counting(local),
    )  # fmt: skip
    [entry] = tmp_path.glob("*.json")
    entry.write_text("[{")
    generator = counting(local)
    champion_runs(
        cache, CHAMPION, PROMPTS, SETTINGS, seeds=[1234], batch_size=2, load=lambda: generator
    )
    assert generator.calls == 1


def test_length_sorted_batches_come_back_in_prompt_order(local: tuple[object, object]) -> None:
    model, tokenizer = local
    generator = LocalGenerator(
        model, tokenizer, Generation(temperature=0.0, max_new_tokens=8), batch_size=2
    )
    # Batches are formed by length whatever the order the prompts come in, so the same
    # prompts reversed give the same outputs, reversed.
    forward = [g.text for g in generator.generate(PROMPTS, seed=0)]
    backward = [g.text for g in generator.generate(PROMPTS[::-1], seed=0)]
    assert backward[::-1] == forward
    assert len(set(forward)) > 1  # different prompts, told apart


def test_one_embedding_pass_encodes_each_unique_text_once() -> None:
    inner = default_embedder()
    vectors = EmbeddingPass(inner)
    long = "The bridge is guarded by two old knights. They have not slept in a week, poor souls."
    outputs = ["Welcome, traveller.", long, "Welcome, traveller."]
    vectors.prepare([*outputs, "Welcome, traveller.", "A reference."], guarded=outputs)
    units = {"Welcome, traveller.", long, "A reference.", *clauses(long)}
    assert len(clauses(long)) == 2
    assert vectors.encoded == len(units)
    served = vectors.encode([long, *clauses(long), "Welcome, traveller."])
    assert vectors.encoded == len(units)  # all from the pass
    assert np.allclose(served, inner.encode([long, *clauses(long), "Welcome, traveller."]))
    vectors.encode(["Something new."])
    assert vectors.encoded == len(units) + 1


class UnnamedEmbedder:
    """The real embedder behind a wrapper that does not say which model it is."""

    def __init__(self) -> None:
        self.inner = default_embedder()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.encode(texts)


CHAMPION_OUTPUTS = [
    "The gate opens at dawn, traveller.",
    "Swords, shields and a few horseshoes.",
    "The gate opens at dawn, traveller.",
    "They say the old mine still sings at night.",
]


def test_champion_vectors_are_kept_and_served_without_encoding(tmp_path: Path) -> None:
    cache = ChampionOutputs(tmp_path)
    first = EmbeddingPass(default_embedder())
    unstored = recall_vectors(cache, [CHAMPION_OUTPUTS], first)
    assert unstored == [CHAMPION_OUTPUTS]
    first.prepare([*CHAMPION_OUTPUTS, "A candidate's answer."])
    keep_vectors(cache, unstored, first)
    assert len(list(tmp_path.glob("vectors-*.npy"))) == 1
    # A later evaluation, in a process whose embedder has seen none of these texts.
    later = EmbeddingPass(SentenceTransformerEmbedder(locate_embedding_model()))
    assert recall_vectors(cache, [CHAMPION_OUTPUTS], later) == []
    served = later.encode(CHAMPION_OUTPUTS)
    assert later.encoded == 0
    assert np.array_equal(served, first.encode(CHAMPION_OUTPUTS))
    # Other texts are another entry: a miss, encoded as usual.
    other = [*CHAMPION_OUTPUTS[:-1], "The mine is quiet now."]
    assert recall_vectors(cache, [other], later) == [other]


def test_unreadable_or_unnamed_champion_vectors_are_encoded_again(tmp_path: Path) -> None:
    cache = ChampionOutputs(tmp_path)
    first = EmbeddingPass(default_embedder())
    first.prepare(CHAMPION_OUTPUTS)
    keep_vectors(cache, [CHAMPION_OUTPUTS], first)
    [stored] = tmp_path.glob("vectors-*.npy")
    for damaged in (b"not an array", b"", stored.read_bytes()[:-8]):
        stored.write_bytes(damaged)
        assert recall_vectors(cache, [CHAMPION_OUTPUTS], EmbeddingPass(default_embedder())) == [
            CHAMPION_OUTPUTS
        ]
    stored.unlink()
    # An embedder that cannot be named: nothing is kept, nothing is recalled.
    unnamed = EmbeddingPass(UnnamedEmbedder())
    assert unnamed.digest is None
    unnamed.prepare(CHAMPION_OUTPUTS)
    keep_vectors(cache, [CHAMPION_OUTPUTS], unnamed)
    assert list(tmp_path.glob("vectors-*.npy")) == []


def test_an_embedding_pass_is_named_by_its_model() -> None:
    inner = default_embedder()
    # The hazard check keys its trained classifier by the embedder's digest: a pass over
    # the shared model finds the classifier trained for that model, not a new one each time.
    assert EmbeddingPass(inner).digest == embedder_digest(inner)
    assert embedder_digest(EmbeddingPass(inner)) == embedder_digest(inner)
