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
from collections.abc import Mapping
from pathlib import Path

import httpx


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
        self.failed = 0
        self._lock = threading.Lock()

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
                try:
                    reply = client.post(
                        "/v1/chat/completions",
                        headers={"x-session-id": session},
                        json={
                            "model": use_case,
                            "messages": [{"role": "user", "content": prompt}],
                        },
                    )
                    ok = reply.status_code == 200
                    if ok and rng.random() < 0.3:
                        client.post(
                            "/v1/feedback",
                            json={"id": reply.json()["id"], "rating": rng.choice([0.8, 1.0])},
                        )
                except httpx.HTTPError:
                    ok = False
                with self._lock:
                    self.sent += 1
                    self.failed += 0 if ok else 1
                if not ok:
                    self._stop.wait(0.2)  # no route yet (nothing registered): do not spin
