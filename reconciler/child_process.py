"""Child processes that serve HTTP on 127.0.0.1: a free port, and waiting until they answer.

Used by the demo (its provider gateway), the benchmarks and the integration tests, which all
start real servers as subprocesses and must neither race them nor wait forever on one that
died.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_serving(
    url: str,
    process: subprocess.Popen[bytes],
    *,
    timeout: float = 90.0,
    log: Path | None = None,
) -> None:
    """Return once GET `url` answers 200; raise RuntimeError if the process exits first or
    `timeout` runs out."""
    where = f"; see {log}" if log else ""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}{where}\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:g}s{where}")
        time.sleep(0.1)
