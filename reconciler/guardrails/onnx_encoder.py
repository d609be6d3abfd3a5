"""The shipped all-MiniLM-L6-v2 on ONNX Runtime: sentence-transformers' vectors, sooner.

Inline checking encodes a few short texts at a time, where PyTorch's eager dispatch costs as
much as the arithmetic; ONNX Runtime runs the same graph, fused, in a fraction of the time
(README, "The cascade", has the figures). The vectors are the same ones: the model's
transformer is exported once from the local folder (torch's exporter, nothing downloaded),
then tokenised with the folder's own `tokenizer.json`, mean-pooled over the attention mask and
L2-normalised exactly as the folder's `modules.json` says sentence-transformers does.

The export is cached per user beside the distilled static embeddings, under the source
model's digest, so every process and clone on a host exports once. A model folder laid out
differently (another pooling, extra modules) is not exported: `supports` says so and the
caller keeps sentence-transformers.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.guardrails.embeddings import l2_normalised
from reconciler.model_loading import loading_models

if TYPE_CHECKING:
    from reconciler.guardrails.embeddings import FloatMatrix

# Bumped when the export changes, so a cached graph from an older export is not reused.
EXPORT_VERSION = "1"
OPSET = 17
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def supports(folder: Path) -> bool:
    """Whether `folder` is a transformer, mean pooling and normalisation, nothing else: the
    pipeline `OnnxSentenceEncoder` reproduces."""
    try:
        listed = _read_json(folder / "modules.json")
        modules = [m["type"] for m in listed]
        transformer_path = next(m["path"] for m in listed if m["type"] == _TRANSFORMER)
        pooling_path = next(m["path"] for m in listed if m["type"] == _POOLING)
        pooling = _read_json(folder / pooling_path / "config.json")
        bert = _read_json(folder / "sentence_bert_config.json")
        model = _read_json(folder / "config.json")
        extra = folder / "config_sentence_transformers.json"
        settings = _read_json(extra) if extra.is_file() else {}
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return False
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True}
    return (
        modules == [_TRANSFORMER, _POOLING, _NORMALIZE]
        and transformer_path == ""
        and modes == {"pooling_mode_mean_tokens"}
        # What the encoder below does not reproduce: lower-casing before the tokenizer,
        # prompts put before each text, a model without token type ids.
        and isinstance(bert.get("max_seq_length"), int)
        and not bert.get("do_lower_case", False)
        and not settings.get("prompts")
        and not settings.get("default_prompt_name")
        and int(model.get("type_vocab_size") or 0) > 0
        and (folder / "tokenizer.json").is_file()
    )


def max_tokens(folder: Path) -> int:
    """The sequence length sentence-transformers truncates to (`sentence_bert_config.json`,
    which `supports` requires)."""
    return int(_read_json(folder / "sentence_bert_config.json")["max_seq_length"])


class OnnxSentenceEncoder:
    """Tokenise, run the exported transformer, mean-pool, normalise: one row per text."""

    runtime = "onnx"

    def __init__(self, graph: Path, folder: Path, *, threads: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads would spin on the cores the gateway's event loop needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            str(graph), options, providers=["CPUExecutionProvider"]
        )
        self._wanted = [i.name for i in self._session.get_inputs()]
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        padding = tokenizer.padding or {}
        self._pad_id = int(padding.get("pad_id", tokenizer.token_to_id("[PAD]") or 0))
        tokenizer.enable_truncation(max_tokens(folder))
        # The file's own padding (all-MiniLM-L6-v2: always 128 tokens) would make every
        # text cost as much as a long one: each batch is padded to its longest text below.
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    def encode(self, texts: Sequence[str], *, batch_size: int) -> FloatMatrix:
        import numpy as np

        encodings = self._tokenizer.encode_batch(list(texts))
        # Similar lengths together: less padding to compute through.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            vectors = self._run([encodings[i] for i in chunk])
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[chunk] = vectors
        return out

    def _run(self, encodings: Sequence[Any]) -> FloatMatrix:
        import numpy as np

        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = 1
            types[row, :n] = encoding.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        hidden = self._session.run(None, {name: feeds[name] for name in self._wanted})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return l2_normalised(pooled)


def _export(source: Path, target: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    print(
        f"Exporting {source} to ONNX for the guardrails (once; cached in {target.parent})",
        file=sys.stderr,
    )
    with loading_models():
        import torch
        from transformers import AutoModel

        model = AutoModel.from_pretrained(str(source)).eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    example = torch.ones((2, 8), dtype=torch.int64)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "hidden")}
    # A file of this process's own, renamed into place: a reader never opens a half-written
    # graph, and a crash leaves at worst a stray `.partial-PID` file, never a broken cache.
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    import warnings

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on tracing: nothing to do
            torch.onnx.export(
                LastHiddenState(model),
                (example, example, torch.zeros_like(example)),
                str(partial),
                input_names=list(_INPUTS),
                output_names=["hidden"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        partial.rename(target)
    except BaseException:
        partial.unlink(missing_ok=True)  # never ~90 MB of a half-written graph left behind
        raise


_lock = threading.Lock()


def load_onnx_encoder(
    source: Path, *, threads: int, cache_dir: Path | None = None
) -> OnnxSentenceEncoder:
    """The ONNX encoder of `source` (a folder `supports` accepts), exported on first need."""
    from reconciler.guardrails.static_embeddings import static_cache_dir

    return _load(source.resolve(), (cache_dir or static_cache_dir()).resolve(), threads)


@functools.cache
def _load(folder: Path, cache: Path, threads: int) -> OnnxSentenceEncoder:
    from reconciler.guardrails.static_embeddings import model_digest

    target = cache / f"minilm-{model_digest(folder)}-onnx{EXPORT_VERSION}.onnx"
    with _lock:
        if not target.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            from filelock import FileLock

            # Processes sharing the cache export once; the others wait and load its file.
            with FileLock(str(cache / f"{target.name}.lock")):
                if not target.is_file():
                    _export(folder, target)
    return OnnxSentenceEncoder(target, folder, threads=threads)
