"""Training examples: from logged exchanges and the initial JSONL, filtered, deduplicated, split.

Everything here is pure and deterministic: the same logs and files give the same examples,
the same split and the same digests, which is what makes a trained version's key (and the
dataset digests tagged on it) mean something. The split is by content hash, so adding an
example never moves the others between train and validation.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from reconciler.digest import digest_of
from reconciler.spec.datasets import DatasetKind, dataset_records
from reconciler.training.logs import LoggedExchange

# Outputs shorter than this carry no behaviour worth learning; longer ones are usually
# runaway generations that a rating missed.
MIN_OUTPUT_CHARS = 2
MAX_OUTPUT_CHARS = 4000
MAX_INPUT_CHARS = 8000
# Two examples are near-duplicates when their prompts AND their responses each reach this
# Jaccard similarity of their word shingles (single words and pairs of adjacent words). One
# word added to a short line, or changed inside a line of nine words or more, stays at or above
# it; "Where is the inn?" against "Where is the smith?" (0.56) falls below.
NEAR_DUPLICATE_JACCARD = 0.7

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Example:
    system_prompt: str
    prompt: str
    response: str
    origin: str  # "initial" | "logs"

    def as_json(self) -> dict[str, str]:
        return {
            "system_prompt": self.system_prompt,
            "prompt": self.prompt,
            "response": self.response,
            "origin": self.origin,
        }

    @property
    def fingerprint(self) -> str:
        """Equal for copies that differ in case, punctuation and spacing only."""
        return _normalised(f"{self.prompt}\n{self.response}")


@dataclass(frozen=True)
class QualityFilter:
    min_rating: float
    min_output_chars: int = MIN_OUTPUT_CHARS
    max_output_chars: int = MAX_OUTPUT_CHARS
    max_input_chars: int = MAX_INPUT_CHARS

    def keeps(self, exchange: LoggedExchange) -> bool:
        if exchange.guardrail_flagged:
            return False
        # A person's correction is a rating of its own: it says what good looks like.
        rated_well = exchange.rating is not None and exchange.rating >= self.min_rating
        if not (rated_well or exchange.corrected_output):
            return False
        output = exchange.best_output.strip()
        return (
            self.min_output_chars <= len(output) <= self.max_output_chars
            and 0 < len(exchange.prompt.strip()) + len(exchange.context) <= self.max_input_chars
        )


@dataclass(frozen=True)
class Dataset:
    name: str
    examples: tuple[Example, ...]

    @property
    def digest(self) -> str:
        return digest_of([e.as_json() for e in self.examples])

    def rows(self) -> list[dict[str, str]]:
        return [e.as_json() for e in self.examples]


@dataclass(frozen=True)
class TrainingData:
    initial: Dataset
    historical: Dataset
    train: Dataset
    validation: Dataset

    def datasets(self) -> tuple[Dataset, ...]:
        return (self.initial, self.historical, self.train, self.validation)

    @property
    def digests(self) -> dict[str, str]:
        return {d.name: d.digest for d in self.datasets()}


def user_text(prompt: str, context: str) -> str:
    """The user's turn as the model sees it: the prompt, then any context below it."""
    return f"{prompt}\n\n{context}" if context.strip() else prompt


def examples_from_logs(
    exchanges: Iterable[LoggedExchange],
    quality: QualityFilter,
    *,
    default_system_prompt: str,
    max_examples: int | None = None,
) -> list[Example]:
    """Exchanges that pass `quality`, newest first, as examples (at most `max_examples`)."""
    kept = sorted(
        (e for e in exchanges if quality.keeps(e)), key=lambda e: e.timestamp, reverse=True
    )
    if max_examples is not None:
        kept = kept[:max_examples]
    return [
        Example(
            system_prompt=e.system_prompt or default_system_prompt,
            prompt=user_text(e.prompt, e.context),
            response=e.best_output.strip(),
            origin="logs",
        )
        for e in kept
    ]


def initial_examples(raw: bytes, *, path: str, system_prompt: str) -> list[Example]:
    """The curated examples of an initial JSONL dataset (its bytes, as loaded)."""
    return [
        Example(system_prompt, r.values["prompt"], r.values["response"].strip(), "initial")
        for r in dataset_records(raw, DatasetKind.TRAINING, path=path)
    ]


def read_initial_examples(path: Path, *, system_prompt: str) -> list[Example]:
    return initial_examples(path.read_bytes(), path=str(path), system_prompt=system_prompt)


def deduplicate(
    examples: Sequence[Example], threshold: float = NEAR_DUPLICATE_JACCARD
) -> list[Example]:
    """The first of each group of near-duplicates, in the original order.

    Exact copies (after normalising case, punctuation and spacing) go first; then an example
    whose prompt and response are both at least `threshold` similar (Jaccard of word shingles)
    to those of an example already kept is dropped. Callers order examples best first (curated
    data before logs), so the one kept is the best of its group.

    Candidates are found with a prefix filter rather than by comparing all pairs: with the
    response shingles of every example ranked rarest first, two sets with Jaccard >= t must
    share one of their first `|s| - ceil(t * |s|) + 1` shingles. Exact and deterministic, and
    near-linear for ordinary data where most shingles are rare.
    """
    prompts = [_shingles(e.prompt) for e in examples]
    responses = [_shingles(e.response) for e in examples]
    frequency = Counter(s for shingles in responses for s in shingles)
    seen: set[str] = set()
    by_prefix: dict[str, list[int]] = {}
    unique = []
    for index, example in enumerate(examples):
        if example.fingerprint in seen:
            continue
        ranked = sorted(responses[index], key=lambda s: (frequency[s], s))
        prefix = ranked[: len(ranked) - math.ceil(threshold * len(ranked)) + 1]
        candidates = sorted({kept for s in prefix for kept in by_prefix.get(s, ())})
        if any(
            jaccard(responses[index], responses[kept]) >= threshold
            and jaccard(prompts[index], prompts[kept]) >= threshold
            for kept in candidates
        ):
            continue
        seen.add(example.fingerprint)
        for shingle in prefix:
            by_prefix.setdefault(shingle, []).append(index)
        unique.append(example)
    return unique


def jaccard(left: frozenset[str], right: frozenset[str]) -> float:
    """|left & right| / |left | right|; two empty sets are equal (1.0)."""
    if not left and not right:
        return 1.0
    return len(left & right) / len(left | right)


def split(
    examples: Sequence[Example], validation_fraction: float, *, seed: int
) -> tuple[list[Example], list[Example]]:
    """(train, validation) by content hash; validation gets at least one of two or more."""
    ranked = sorted(examples, key=lambda e: _rank(e, seed))
    size = round(len(ranked) * validation_fraction)
    size = min(max(size, 1), len(ranked) - 1) if len(ranked) >= 2 else 0
    chosen = {id(e) for e in ranked[:size]}
    train = [e for e in examples if id(e) not in chosen]
    validation = [e for e in examples if id(e) in chosen]
    return train, validation


def build_training_data(
    initial: Sequence[Example],
    historical: Sequence[Example],
    *,
    validation_fraction: float,
    seed: int,
) -> TrainingData:
    # Initial examples come first so a logged near-duplicate never displaces curated data.
    unique = deduplicate([*initial, *historical])
    train, validation = split(unique, validation_fraction, seed=seed)
    return TrainingData(
        initial=Dataset("initial", tuple(initial)),
        historical=Dataset("historical", tuple(historical)),
        train=Dataset("train", tuple(train)),
        validation=Dataset("validation", tuple(validation)),
    )


def _rank(example: Example, seed: int) -> str:
    return hashlib.sha256(f"{seed}\0{example.fingerprint}".encode()).hexdigest()


def _normalised(text: str) -> str:
    return _NOT_WORD.sub(" ", text.casefold()).strip()


def _shingles(text: str) -> frozenset[str]:
    """The text's words and pairs of adjacent words, normalised: words alone make short lines
    comparable, pairs keep some order (a swapped word changes two of them)."""
    words = _normalised(text).split()
    return frozenset([*words, *(f"{a} {b}" for a, b in pairwise(words))])
