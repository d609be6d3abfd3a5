"""The API's audit log: every write, who asked (address), what it did and where it is recorded.

One JSON object per line in the state folder (owner-only). It is what `history` shows of
operators' actions that git cannot express - a pause, a resume - and the record of every
break-glass write beside the journal's champion history. Never the token.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.state_files import private_file

AUDIT_FILE = "api-audit.jsonl"


@dataclass(frozen=True)
class AuditEntry:
    at: str
    action: str
    use_case: str | None
    client: str | None
    outcome: str
    recorded: str  # where git (or, failing that, history) can see it

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "action": self.action,
            "use_case": self.use_case,
            "client": self.client,
            "outcome": self.outcome,
            "recorded": self.recorded,
        }


class AuditLog:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / AUDIT_FILE
        self._lock = threading.Lock()

    def append(self, entry: AuditEntry) -> None:
        with self._lock, private_file(self.path).open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry.as_json()) + "\n")

    def entries(self, use_case: str | None = None) -> list[AuditEntry]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        found = []
        for line in lines:
            try:
                data = json.loads(line)
                entry = AuditEntry(**{k: data.get(k) for k in AuditEntry.__dataclass_fields__})
            except (ValueError, TypeError):
                continue  # a line cut short by a crash
            if use_case is None or entry.use_case == use_case:
                found.append(entry)
        return found
