"""Durations written the way operators write them: ``90s``, ``30m``, ``1h30m``, ``7d``."""

from __future__ import annotations

import re

DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_seconds(text: str) -> float:
    """Seconds in a duration string; raises ValueError on anything else."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 1h30m or 7d")
    return sum(int(number) * _SECONDS[unit] for number, unit in _PART.findall(text))
