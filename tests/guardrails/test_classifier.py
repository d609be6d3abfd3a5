"""The classifier check with a tiny text-classification model built here, on CPU.

The model's classification head is set by hand (zero weights, fixed bias) so its scores are
known exactly: every text gets P(toxic) = softmax of the biases (0, 2), about 0.88.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.guardrails.checks.classifier import ClassifierCheck, ClassifierModelMissingError
from reconciler.guardrails.embeddings import TextBatch
from reconciler.spec.guardrail_parameters import ClassifierParameters
from reconciler.spec.model import CheckType, GuardrailCheck, Severity


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-classifier")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "orc", "you", "are", "bad"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]",
    )  # fmt: skip
    config = BertConfig(
        vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
        id2label={0: "safe", 1: "toxic"}, label2id={"safe": 0, "toxic": 1},
    )  # fmt: skip
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 2.0]))
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def _check(folder: Path, threshold: float) -> ClassifierCheck:
    spec = GuardrailCheck(
        name="toxicity", type=CheckType.CLASSIFIER, category="toxicity", severity=Severity.HIGH
    )
    parameters = ClassifierParameters.model_validate(
        {"model": str(folder), "labels": ["toxic"], "threshold": threshold}
    )
    return ClassifierCheck(spec, parameters, folder)


def test_labels_scoring_above_the_threshold_violate(tiny_classifier: Path) -> None:
    results = _check(tiny_classifier, 0.5).scan(TextBatch(["you are bad", "the orc"]))
    assert [r.violated for r in results] == [True, True]
    assert results[0].score == pytest.approx(0.8808, abs=1e-3)
    assert results[0].evidence == "label toxic"
    strict = _check(tiny_classifier, 0.95).scan(TextBatch(["you are bad"]))
    assert not strict[0].violated


def test_a_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ClassifierModelMissingError, match="no classifier model folder"):
        _check(tmp_path / "absent", 0.5).scan(TextBatch(["hello"]))
