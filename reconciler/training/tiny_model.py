"""The tiny local base model the demo and the tests train and serve.

Nothing can be fetched from a model hub here, so the base is built on the spot: a byte-level
BPE tokenizer trained with `tokenizers` on a small built-in corpus (plus any extra texts, such
as the shipped datasets), and a randomly initialised 2-layer GPT-2. Real transformers code
paths, sizes small enough to fine-tune in seconds on a laptop CPU.

A base model worth the name has seen text before: the weights get a short pretraining on the
same corpus (a fixed thread count, seeded), so the base already writes the game's kind of prose and
fine-tuning teaches it a use case's manner, as with a real pretrained model. Without it the
base is token soup and any fine-tuned copy looks nothing like it. Same seed and texts, same
weights: the folder can be rebuilt anywhere and still match the `revision` written in git.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from reconciler.model_loading import loading_models

END_OF_TEXT = "<|endoftext|>"
VOCAB_SIZE = 1024
CONTEXT_LENGTH = 256
EMBEDDING_SIZE = 64
LAYERS = 2
HEADS = 4
PRETRAIN_STEPS = 1000
PRETRAIN_BLOCK = 64
PRETRAIN_BATCH = 16
PRETRAIN_LEARNING_RATE = 3e-3
PRETRAIN_THREADS = 2

BUILT_IN_CORPUS = (
    "System: You are an NPC in the frontier town of Emberfall. Stay in character.",
    "User: Hello there, who are you?",
    "Assistant: Name's Brann. I keep the forge hot and the gossip hotter.",
    "User: Where can I find the blacksmith? Assistant: You're looking at him.",
    "Caravans say the north pass is crawling with wolves. Best travel in daylight.",
    "The Glowing Coal is down the lane. Tell Mara that Brann sent you.",
    "Sealed after the collapse. Folk swear they hear hammering down there at night.",
    "Reeve Aldric runs the town, though the miners' guild would tell you otherwise.",
    "The guild board by the well always has postings. Safe travels, friend.",
    "Write a quest hook about a missing lighthouse keeper.",
    "Summarise chapter one: the party escapes the burning monastery.",
    "Describe the city of Varrow at night in two sentences.",
    'You decide for a faction. Answer with JSON: {"action": ..., "target": ...}.',
    '{"action": "attack", "target": "border_fort_enemy"}',
    '{"action": "trade", "target": "neighbour"}',
    '{"action": "quarantine", "target": "capital"}',
    '{"action": "defend", "target": "walls"}',
    "Turn 12. Enemy army near our border fort. Our troops: 40. Theirs: 25.",
    "Turn 3. Treasury low. Neighbour offers trade. Turn 7. Plague in the capital.",
    "the a an and or but of to in on at by for with from as is are was were be been",
    "I you he she it we they me him her us them my your his its our their",
    "0 1 2 3 4 5 6 7 8 9 10 20 30 40 50 100 . , ; : ! ? ' \" ( ) [ ] { } - _ / \\",
)


def shipped_dataset_texts(folder: Path) -> list[str]:
    """The text of every JSONL line below `folder`, in a stable order.

    Every string value is included, and a record with a prompt and an answer also as the
    transcript the gateway frames it in ("User: ...", "Assistant: ..."): the base then knows
    the framing, as an instruction-tuned base does.
    """
    texts: list[str] = []
    for path in sorted(folder.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            texts += [v for _, v in sorted(record.items()) if isinstance(v, str)]
            answer = record.get("response") or record.get("reference")
            if isinstance(record.get("prompt"), str) and isinstance(answer, str):
                texts.append(f"User: {record['prompt']}\nAssistant: {answer}")
    return texts


def build_tiny_model(
    out: Path,
    *,
    seed: int = 0,
    extra_texts: Sequence[str] = (),
    pretrain_steps: int = PRETRAIN_STEPS,
    embedding_size: int = EMBEDDING_SIZE,
    layers: int = LAYERS,
    heads: int = HEADS,
) -> Path:
    """Write a tiny GPT-2 and its tokenizer to `out` (created) and return it.

    `pretrain_steps=0` leaves the weights as initialised: a model that knows nothing. The
    size parameters make wider or deeper variants (benchmarks); the defaults are the base the
    demo and the tests use.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(extra_texts), trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        model_max_length=CONTEXT_LENGTH,
    )
    config = GPT2Config(
        vocab_size=len(fast),
        n_positions=CONTEXT_LENGTH,
        n_embd=embedding_size,
        n_layer=layers,
        n_head=heads,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    torch.manual_seed(seed)
    with loading_models():
        model = GPT2LMHeadModel(config)
    if pretrain_steps > 0:
        _pretrain(model, fast, _corpus(extra_texts), steps=pretrain_steps, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


def _pretrain(model: Any, tokenizer: Any, texts: Sequence[str], *, steps: int, seed: int) -> None:
    """Next-token training on the corpus packed into overlapping fixed blocks (a block spans
    several texts, so a transcript keeps the system line before it); a fixed thread count
    (`PRETRAIN_THREADS`, whatever the machine has), so the same seed gives the same weights on
    any machine with the same torch."""
    import torch

    stream: list[int] = []
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"]
        stream.append(tokenizer.eos_token_id)
    blocks = torch.tensor(
        [
            stream[i : i + PRETRAIN_BLOCK]
            for i in range(0, len(stream) - PRETRAIN_BLOCK + 1, PRETRAIN_BLOCK // 2)
        ]
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(PRETRAIN_THREADS)
    try:
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=PRETRAIN_LEARNING_RATE)
        model.train()
        for _ in range(steps):
            batch = blocks[torch.randint(len(blocks), (PRETRAIN_BATCH,), generator=generator)]
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.eval()
    finally:
        torch.set_num_threads(threads)


def _corpus(extra_texts: Iterable[str]) -> list[str]:
    # Repeating the corpus gives the BPE trainer stable pair counts to merge on.
    return [*BUILT_IN_CORPUS, *extra_texts] * 4
