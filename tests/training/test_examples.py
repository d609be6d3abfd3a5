"""Logs to examples: quality filter, near-duplicate removal, deterministic split, digests."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.training.examples import (
    Example,
    QualityFilter,
    build_training_data,
    deduplicate,
    examples_from_logs,
    split,
)
from reconciler.training.logs import JsonlLogSource, LoggedExchange, exchange_to_json


def exchange(prompt: str, output: str, **fields: object) -> LoggedExchange:
    values: dict[str, object] = {
        "use_case": "npc-dialogue",
        "model_version": "1",
        "system_prompt": "Be an NPC.",
        "prompt": prompt,
        "context": "",
        "output": output,
        "rating": 0.9,
        "corrected_output": None,
        "guardrail_flagged": False,
        "timestamp": 100.0,
    }
    values.update(fields)
    return LoggedExchange(**values)  # type: ignore[arg-type]


def test_quality_filter_keeps_well_rated_clean_and_corrected_exchanges() -> None:
    quality = QualityFilter(min_rating=0.7)
    assert quality.keeps(exchange("hi", "hello there"))
    assert not quality.keeps(exchange("hi", "hello there", rating=0.5))
    assert not quality.keeps(exchange("hi", "hello there", rating=None))
    assert quality.keeps(exchange("hi", "bad", rating=0.1, corrected_output="Well met."))
    assert not quality.keeps(exchange("hi", "hello there", guardrail_flagged=True))
    assert not quality.keeps(exchange("hi", "x"))  # too short to teach anything
    assert not quality.keeps(exchange("hi", "y" * 5000))


def test_examples_use_the_correction_and_put_context_under_the_prompt() -> None:
    examples = examples_from_logs(
        [exchange("Where?", "dunno", rating=0.2, corrected_output="By the well.", context="Town")],
        QualityFilter(min_rating=0.7),
        default_system_prompt="default",
    )
    assert examples == [Example("Be an NPC.", "Where?\n\nTown", "By the well.", "logs")]


def test_near_duplicates_are_removed_keeping_the_first() -> None:
    first = Example("s", "Hello there!", "Hi, friend.", "initial")
    same = Example("s", "hello   there", "hi friend", "logs")
    other = Example("s", "Goodbye", "Farewell.", "logs")
    assert deduplicate([first, same, other]) == [first, other]


def test_split_is_deterministic_and_stable_when_data_grows() -> None:
    examples = [Example("s", f"prompt {i}", f"answer {i}", "initial") for i in range(40)]
    train, validation = split(examples, 0.25, seed=3)
    assert len(validation) == 10 and len(train) == 30
    assert split(examples, 0.25, seed=3) == (train, validation)
    _, grown_validation = split([*examples, Example("s", "new", "one", "logs")], 0.25, seed=3)
    # Content-hash ranks: existing examples keep their side except at the cut.
    assert len(set(map(id, validation)) & set(map(id, grown_validation))) >= 9


def test_split_keeps_a_validation_example_for_tiny_sets() -> None:
    examples = [Example("s", f"p{i}", f"a{i}", "initial") for i in range(3)]
    train, validation = split(examples, 0.1, seed=0)
    assert len(validation) == 1 and len(train) == 2


def test_dataset_digests_change_with_content_only() -> None:
    initial = [Example("s", "p", "a", "initial")]
    one = build_training_data(initial, [], validation_fraction=0.1, seed=0)
    two = build_training_data(list(initial), [], validation_fraction=0.1, seed=0)
    assert one.digests == two.digests
    changed = build_training_data(
        [Example("s", "p", "b", "initial")], [], validation_fraction=0.1, seed=0
    )
    assert changed.digests["initial"] != one.digests["initial"]


def test_jsonl_log_source_filters_by_use_case_and_time(tmp_path: Path) -> None:
    path = tmp_path / "logs.jsonl"
    rows = [
        exchange("old", "answer", timestamp=10.0),
        exchange("new", "answer", timestamp=200.0),
        exchange("other", "answer", timestamp=200.0, use_case="story-generation"),
    ]
    path.write_text("".join(json.dumps(exchange_to_json(r)) + "\n" for r in rows))
    found = list(JsonlLogSource(path).exchanges("npc-dialogue", since=100.0))
    assert [e.prompt for e in found] == ["new"]


def test_near_duplicates_differing_by_a_word_are_removed_keeping_the_first() -> None:
    curated = Example(
        "s",
        "Where can I find the blacksmith in this town?",
        "The forge is by the well, past the old mill on the left.",
        "initial",
    )
    # The same exchange with a word added to the answer and one changed in the question.
    logged = Example(
        "s",
        "where can i find the blacksmith in this village",
        "The forge is by the well, past the old mill on the left, friend.",
        "logs",
    )
    assert deduplicate([curated, logged]) == [curated]
    assert deduplicate([logged, curated]) == [logged]


def test_same_answer_to_another_question_or_another_answer_is_not_a_duplicate() -> None:
    base = Example("s", "Where is the inn?", "Down the lane, past the forge.", "initial")
    other_question = Example("s", "Where is the smith?", "Down the lane, past the forge.", "logs")
    other_answer = Example("s", "Where is the inn?", "No idea. Ask Mara at the well.", "logs")
    assert deduplicate([base, other_question, other_answer]) == [
        base,
        other_question,
        other_answer,
    ]


def test_the_prefix_filter_finds_exactly_what_comparing_every_pair_finds() -> None:
    import random

    from reconciler.training.examples import NEAR_DUPLICATE_JACCARD, _shingles, jaccard

    rng = random.Random(5)
    words = [
        "the",
        "forge",
        "inn",
        "well",
        "lane",
        "mill",
        "smith",
        "north",
        "pass",
        "wolves",
        "coal",
        "mara",
        "gate",
    ]
    originals = [
        (" ".join(rng.choices(words, k=6)), " ".join(rng.choices(words, k=rng.randint(3, 14))))
        for _ in range(60)
    ]
    examples = []
    for prompt, response in originals:
        examples.append(Example("s", prompt, response, "logs"))
        # Variants with one word swapped or appended: some near, some not.
        edited = response.split()
        edited[rng.randrange(len(edited))] = rng.choice(words)
        examples.append(Example("s", prompt, " ".join(edited), "logs"))
        examples.append(Example("s", prompt, response + " " + rng.choice(words), "logs"))

    def brute_force(items: list[Example]) -> list[Example]:
        kept: list[Example] = []
        for e in items:
            if any(
                e.fingerprint == k.fingerprint
                or (
                    jaccard(_shingles(e.prompt), _shingles(k.prompt)) >= NEAR_DUPLICATE_JACCARD
                    and jaccard(_shingles(e.response), _shingles(k.response))
                    >= NEAR_DUPLICATE_JACCARD
                )
                for k in kept
            ):
                continue
            kept.append(e)
        return kept

    expected = brute_force(examples)
    assert deduplicate(examples) == expected
    # The data has near-duplicates to find and distinct examples to keep.
    assert len(originals) <= len(expected) < len(examples)


def test_the_training_data_drops_a_logged_near_duplicate_of_curated_data() -> None:
    curated = [
        Example("s", "Who runs the town?", "Reeve Aldric, though the guild disagrees.", "initial"),
        Example("s", "Is the pass safe?", "Wolves in the north pass. Travel by day.", "initial"),
    ]
    logged = [
        Example("s", "who runs the town", "Reeve Aldric, though the guild disagrees, eh.", "logs")
    ]
    data = build_training_data(curated, logged, validation_fraction=0.5, seed=0)
    assert {*data.train.examples, *data.validation.examples} == set(curated)
    assert data.historical.examples == tuple(logged)  # still recorded as what was read
