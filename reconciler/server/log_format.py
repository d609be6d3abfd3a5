"""Log lines of `reconciler serve`: text for people, JSON lines for log pipelines.

Every line - ours, the scheduler's, uvicorn's, tracebacks included - goes through one root
handler whose formatter redacts the finished line (`RedactingFormatter`), so a URL with
credentials or a token in an upstream's error never reaches the log in either format.
"""

from __future__ import annotations

import enum
import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from reconciler.redaction import RedactingFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# LogRecord attributes that are the record's own, not `extra=` fields a caller added.
# (uvicorn's `color_message` is its message again, with terminal colours.)
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, `extra` fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(format: LogFormat, *, stream: TextIO | None = None) -> None:
    """Route every logger through one redacting handler in `format` (INFO and up)."""
    inner = JsonLinesFormatter() if format is LogFormat.JSON else logging.Formatter(TEXT_FORMAT)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(inner))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Uvicorn's loggers log through the root handler, not their own.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # The scheduler says "Running job ..." every cycle, and "skipped" when a cycle outlasts the
    # interval (missed runs coalesce by design): keep its errors only.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
