"""Training examples: from logged exchanges and the initial JSONL, filtered, deduplicated, split.

Everything here is pure and deterministic: the same logs and files give the same examples,
the same split and the same digests, which is what makes a trained version's key (and the
dataset digests tagged on it) mean something. The split is by content hash, so adding an
example never moves the others between train and validation.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.digest import digest_of
from reconciler.training.logs import LoggedExchange

# Outputs shorter than this carry no behaviour worth learning; longer ones are usually
# runaway generations that a rating missed.
MIN_OUTPUT_CHARS = 2
MAX_OUTPUT_CHARS = 4000
MAX_INPUT_CHARS = 8000

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
        """Equal for near-duplicates: case, punctuation and spacing do not count."""
        text = f"{self.prompt}\n{self.response}".casefold()
        return _NOT_WORD.sub(" ", text).strip()


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


def read_initial_examples(path: Path, *, system_prompt: str) -> list[Example]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record: dict[str, Any] = json.loads(line)
        if not isinstance(record.get("prompt"), str) or not isinstance(record.get("response"), str):
            raise ValueError(f"{path}:{number}: an initial example needs 'prompt' and 'response'")
        examples.append(
            Example(system_prompt, record["prompt"], record["response"].strip(), "initial")
        )
    return examples


def deduplicate(examples: Sequence[Example]) -> list[Example]:
    """The first of each group of near-duplicates, in the original order."""
    seen: set[str] = set()
    unique = []
    for example in examples:
        if example.fingerprint not in seen:
            seen.add(example.fingerprint)
            unique.append(example)
    return unique


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
