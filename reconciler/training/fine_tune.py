"""The training loop: LoRA (peft) or full fine-tuning of a causal LM, on CPU or GPU.

A plain loop rather than `transformers.Trainer`: the datasets are small, the loop is short
and every step's train loss, validation loss and perplexity go straight to the tracking run
through `on_metrics`. Loss is computed on the response tokens only (the prompt is masked), so
the model learns what to answer, not to echo the system prompt. Early stopping keeps the
weights of the best validation loss. Seeds are fixed: same data and settings, same weights.
"""

from __future__ import annotations

import copy
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.model_loading import fitting_length
from reconciler.prompt_format import render_prompt, response_text
from reconciler.spec.model import Hyperparameters, LoraSettings, TrainingMethod
from reconciler.training.architectures import lora_target_modules
from reconciler.training.examples import Example

MetricsCallback = Callable[[int, Mapping[str, float]], None]
IGNORED_LABEL = -100


@dataclass(frozen=True)
class FineTuneSettings:
    method: TrainingMethod
    hyperparameters: Hyperparameters
    lora: LoraSettings
    # Evaluations of the validation set per epoch (at least one, at each epoch's end).
    validations_per_epoch: int = 4


@dataclass(frozen=True)
class FineTuneResult:
    model: Any  # merged weights: a plain transformers model either way
    tokenizer: Any
    adapter_dir: Path | None  # the LoRA adapter alone, when method is lora
    initial_validation_loss: float
    best_validation_loss: float
    steps: int
    stopped_early: bool
    trained_tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.trained_tokens / self.seconds if self.seconds > 0 else 0.0


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def encode_examples(
    tokenizer: Any, examples: Sequence[Example], max_length: int
) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per example; prompt tokens are masked out of the labels."""
    encoded = []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for example in examples:
        prompt = render_prompt(tokenizer, example.system_prompt, example.prompt)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = (
            tokenizer(response_text(example.response), add_special_tokens=False)["input_ids"] + eos
        )
        # Keep the answer whole and cut the prompt from the left: the end of the prompt is
        # what the answer depends on most.
        room = max(max_length - len(answer_ids), 1)
        prompt_ids = prompt_ids[-room:]
        ids = (prompt_ids + answer_ids)[:max_length]
        labels = ([IGNORED_LABEL] * len(prompt_ids) + answer_ids)[:max_length]
        encoded.append((ids, labels))
    return encoded


def collate(batch: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = [ids + [pad_id] * (width - len(ids)) for ids, _ in batch]
    labels = [lab + [IGNORED_LABEL] * (width - len(lab)) for _, lab in batch]
    mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch]
    return {
        "input_ids": torch.tensor(input_ids),
        "labels": torch.tensor(labels),
        "attention_mask": torch.tensor(mask),
    }


def mean_loss(model: Any, encoded: Sequence[tuple[list[int], list[int]]], pad_id: int) -> float:
    """Mean loss per predicted token over `encoded` (teacher forcing, no gradients)."""
    import torch

    if not encoded:
        return math.nan
    total, tokens = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(encoded), 16):
            batch = collate(encoded[start : start + 16], pad_id)
            count = int((batch["labels"][:, 1:] != IGNORED_LABEL).sum())
            if count == 0:
                continue
            total += float(model(**batch).loss) * count
            tokens += count
    model.train(was_training)
    return total / tokens if tokens else math.nan


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0)) if not math.isnan(loss) else math.nan


def fine_tune(
    model: Any,
    tokenizer: Any,
    train: Sequence[Example],
    validation: Sequence[Example],
    settings: FineTuneSettings,
    *,
    on_metrics: MetricsCallback | None = None,
    progress: bool = True,
) -> FineTuneResult:
    import torch
    from tqdm.auto import tqdm

    hp = settings.hyperparameters
    seed_everything(hp.seed)
    pad_id = int(tokenizer.pad_token_id)
    length = fitting_length(model, hp.max_sequence_length)  # never past the model's context
    train_set = encode_examples(tokenizer, train, length)
    # With no validation examples, the training examples are the only yardstick there is.
    validation_set = encode_examples(tokenizer, validation, length) or train_set
    if not train_set:
        raise ValueError("no training examples: nothing to fine-tune on")

    lora = settings.method is TrainingMethod.LORA
    if lora:
        model = _with_lora(model, settings.lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=hp.learning_rate)

    steps_per_epoch = math.ceil(len(train_set) / hp.batch_size)
    # As in transformers: max_steps, when given, wins over epochs.
    total_steps = hp.max_steps if hp.max_steps is not None else steps_per_epoch * hp.epochs
    validate_every = max(1, steps_per_epoch // max(1, settings.validations_per_epoch))

    initial = mean_loss(model, validation_set, pad_id)
    stopping = _EarlyStopping(initial, _trainable_state(model), hp.early_stopping_patience)
    _report(on_metrics, 0, _validation_metrics(initial))
    generator = torch.Generator().manual_seed(hp.seed)
    tokens, step, started = 0, 0, time.perf_counter()
    show = progress and sys.stderr.isatty()
    bar = tqdm(total=total_steps, desc="fine-tuning", unit="step", disable=not show)
    model.train()
    while step < total_steps and not stopping.stopped:
        order = torch.randperm(len(train_set), generator=generator).tolist()
        for start in range(0, len(order), hp.batch_size):
            batch = collate([train_set[i] for i in order[start : start + hp.batch_size]], pad_id)
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            tokens += int(batch["attention_mask"].sum())
            value = float(loss.detach())
            metrics = {"train_loss": value, "train_perplexity": perplexity(value)}
            if step % validate_every == 0 or step == total_steps:
                current = mean_loss(model, validation_set, pad_id)
                metrics |= _validation_metrics(current)
                stopping.observe(current, model)
            _report(on_metrics, step, metrics)
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", best_val=f"{stopping.best:.3f}")
            if step >= total_steps or stopping.stopped:
                break
    bar.close()
    seconds = time.perf_counter() - started
    model.load_state_dict(stopping.best_state, strict=False)
    model, adapter_dir = _merged(model, lora=lora)
    return FineTuneResult(
        model=model,
        tokenizer=tokenizer,
        adapter_dir=adapter_dir,
        initial_validation_loss=initial,
        best_validation_loss=stopping.best,
        steps=step,
        stopped_early=stopping.stopped,
        trained_tokens=tokens,
        seconds=seconds,
    )


def _merged(model: Any, *, lora: bool) -> tuple[Any, Path | None]:
    """The plain model to log and, for LoRA, the adapter saved on its own first."""
    model.eval()
    if not lora:
        return model, None
    adapter_dir = Path(tempfile.mkdtemp(prefix="lora-adapter-"))
    model.save_pretrained(str(adapter_dir))
    return model.merge_and_unload(), adapter_dir


class _EarlyStopping:
    """Keeps the best validation loss and its weights; stops after `patience` non-improvements."""

    def __init__(self, loss: float, state: dict[str, Any], patience: int) -> None:
        self.best, self.best_state, self.patience = loss, state, patience
        self.waited, self.stopped = 0, False

    def observe(self, loss: float, model: Any) -> None:
        if math.isnan(self.best) or loss < self.best - 1e-4:
            self.best, self.best_state, self.waited = loss, _trainable_state(model), 0
        else:
            self.waited += 1
            self.stopped = self.waited >= self.patience


def _with_lora(model: Any, lora: LoraSettings) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora_target_modules(model, lora.target_modules),
        task_type="CAUSAL_LM",
        # GPT-2's Conv1D stores weights transposed.
        fan_in_fan_out=getattr(model.config, "model_type", "") in {"gpt2", "gpt_bigcode"},
    )
    return get_peft_model(model, config)


def _trainable_state(model: Any) -> dict[str, Any]:
    names = {name for name, p in model.named_parameters() if p.requires_grad}
    return {k: copy.deepcopy(v.detach()) for k, v in model.state_dict().items() if k in names}


def _validation_metrics(loss: float) -> dict[str, float]:
    return {"validation_loss": loss, "validation_perplexity": perplexity(loss)}


def _report(callback: MetricsCallback | None, step: int, metrics: Mapping[str, float]) -> None:
    if callback is not None:
        callback(step, {k: v for k, v in metrics.items() if not math.isnan(v)})
