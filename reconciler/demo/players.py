"""Simulated players: steady chat traffic to the gateway so rollouts have something to judge.

A population of players per use case, each with its own session (sticky routing keeps a
player on one variant), asks prompts drawn from the use case's evaluation set and now and then
rates an answer through `/v1/feedback`, which training reads back as historical logs. A few
connections carry the whole population, each request from a player picked at random: with
many players the canary's share of traffic follows its weight, as it does in production,
where a handful of sticky sessions would put all or none of them on the canary.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import httpx

# The gateway's answer while a use case has no version serving yet (before its first apply):
# expected at the start of a demo, and counted apart from real failures.
NOT_SERVING_YET = "no_routes"


class Players:
    """Background threads sending chat completions for each use case until stopped."""

    def __init__(
        self,
        gateway_url: str,
        prompts: dict[str, list[str]],
        *,
        connections: Mapping[str, int] | None = None,
        population: int = 500,
        seed: int = 0,
    ) -> None:
        """`connections` per use case (default 2 each): how much of the load each one gets."""
        self.gateway_url = gateway_url.rstrip("/")
        self.prompts = prompts
        self.connections = {name: (connections or {}).get(name, 2) for name in prompts}
        self.population = population
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seed = seed
        self.sent = 0
        self.answered = 0
        # (use case, what went wrong) -> count: an HTTP status with the gateway's error code,
        # or the transport error's kind. Every request without an answer is accounted for.
        self.unanswered: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    @property
    def failed(self) -> int:
        """Requests without an answer, other than before a use case served at all."""
        return sum(n for (_, why), n in self.unanswered.items() if NOT_SERVING_YET not in why)

    @property
    def waiting(self) -> int:
        """Requests sent before their use case had any version serving."""
        return sum(n for (_, why), n in self.unanswered.items() if NOT_SERVING_YET in why)

    def report(self) -> list[str]:
        """One line per (use case, cause) of the requests that got no answer."""
        return [
            f"{use_case}: {count} requests: {why}"
            for (use_case, why), count in sorted(self.unanswered.items())
        ]

    @staticmethod
    def prompts_from(repo: Path, datasets: dict[str, str]) -> dict[str, list[str]]:
        found = {}
        for use_case, path in datasets.items():
            lines = (repo / path).read_text(encoding="utf-8").splitlines()
            found[use_case] = [json.loads(line)["prompt"] for line in lines if line.strip()]
        return found

    def start(self) -> Players:
        for use_case in sorted(self.prompts):
            for connection in range(self.connections[use_case]):
                thread = threading.Thread(
                    target=self._play, args=(use_case, connection), daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _play(self, use_case: str, connection: int) -> None:
        rng = random.Random(f"{self._seed}-{use_case}-{connection}")
        with httpx.Client(base_url=self.gateway_url, timeout=60) as client:
            while not self._stop.is_set():
                session = f"{use_case}-player-{rng.randrange(self.population)}"
                prompt = rng.choice(self.prompts[use_case])
                why: str | None = None
                try:
                    reply = client.post(
                        "/v1/chat/completions",
                        headers={"x-session-id": session},
                        json={
                            "model": use_case,
                            "messages": [{"role": "user", "content": prompt}],
                        },
                    )
                    if reply.status_code != 200:
                        why = f"HTTP {reply.status_code} {_error_code(reply)}"
                    elif rng.random() < 0.3:
                        client.post(
                            "/v1/feedback",
                            json={"id": reply.json()["id"], "rating": rng.choice([0.8, 1.0])},
                        )
                except httpx.HTTPError as exc:
                    why = f"{type(exc).__name__} (no HTTP answer)"
                with self._lock:
                    self.sent += 1
                    if why is None:
                        self.answered += 1
                    else:
                        self.unanswered[(use_case, why)] += 1
                if why is not None:
                    self._stop.wait(0.2)  # e.g. nothing serves it yet: do not spin


def _error_code(reply: httpx.Response) -> str:
    try:
        error = reply.json().get("error", {})
    except ValueError:
        return "(not JSON)"
    return str(error.get("code") or error.get("type") or "")
