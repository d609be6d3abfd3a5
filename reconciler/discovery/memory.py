"""Estimated serving memory: parameters x bytes per dtype + overhead (the VRAM check).

An estimate, stated as one: weights take `parameters x bytes per parameter`, and serving adds
activations, the KV cache and the runtime, counted here as a flat 20 %. When the dtype is not
known the weights are assumed to be served in 16-bit (the common case for checkpoints that are
published in bf16/fp16), and the estimate says so.
"""

from __future__ import annotations

import re

GIB = 1024**3
SERVING_OVERHEAD = 1.2
DEFAULT_BYTES_PER_PARAMETER = 2.0

# safetensors dtype names (as the Hub reports them in `safetensors.parameters`).
DTYPE_BYTES = {
    "F64": 8.0,
    "I64": 8.0,
    "F32": 4.0,
    "I32": 4.0,
    "F16": 2.0,
    "BF16": 2.0,
    "I16": 2.0,
    "F8_E4M3": 1.0,
    "F8_E5M2": 1.0,
    "I8": 1.0,
    "U8": 1.0,
    "BOOL": 1.0,
}
# GGUF quantisation levels as Ollama names them: bits per weight, blocks' scales included.
_QUANT_BITS = re.compile(r"^(?:I?Q)(\d)(?:_|$)", re.IGNORECASE)


def bytes_per_parameter_from_counts(counts: dict[str, int]) -> float | None:
    """The mean bytes per parameter of a checkpoint, from {dtype: parameter count}."""
    total = sum(counts.values())
    if total <= 0:
        return None
    known = {d: n for d, n in counts.items() if d.upper() in DTYPE_BYTES}
    if sum(known.values()) != total:
        return None
    return sum(DTYPE_BYTES[d.upper()] * n for d, n in known.items()) / total


def bytes_per_parameter_from_quantization(level: str | None) -> float | None:
    """Bytes per weight of a GGUF quantisation level such as Q4_K_M, Q8_0 or F16."""
    if not level:
        return None
    upper = level.upper()
    if upper in ("F16", "BF16"):
        return 2.0
    if upper == "F32":
        return 4.0
    match = _QUANT_BITS.match(upper)
    if match is None:
        return None
    # Each block of 32 weights also stores a 16-bit scale: + 0.5 bit per weight.
    return (int(match.group(1)) + 0.5) / 8


def estimated_memory_gib(
    parameters: float | None, bytes_per_parameter: float | None
) -> float | None:
    if parameters is None:
        return None
    per = bytes_per_parameter if bytes_per_parameter is not None else DEFAULT_BYTES_PER_PARAMETER
    return parameters * per * SERVING_OVERHEAD / GIB


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMBT]?)\s*$", re.IGNORECASE)
_SCALE = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def parameters_from_label(label: str | None) -> float | None:
    """`8.0B`, `135M`, `1.5T` (Ollama's `parameter_size`) as a count."""
    if not label:
        return None
    match = _SIZE.match(label)
    if match is None:
        return None
    return float(match.group(1)) * _SCALE[match.group(2).upper()]
