"""Start and stop a real PostgreSQL server on 127.0.0.1 (tests and benchmarks share it).

The server runs from the system's binaries (Debian's `postgresql` package puts `initdb` and
`pg_ctl` under /usr/lib/postgresql/VERSION/bin, off the PATH) in a fresh temporary folder
on a free port, with password authentication, so the URL carries credentials the way a real
deployment's does. initdb refuses to run as root: as root, every server command runs as the
`postgres` user (`runuser -u postgres --`), which then owns the folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.child_process import free_port

SUPERUSER = "postgres"
# Durability is not what tests measure: skip the fsyncs (a benchmark may ask for them).
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries (15 on this project's machines)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "PostgreSQL's initdb was not found (/usr/lib/postgresql/*/bin or PATH); install the "
        "Debian package `postgresql` (.ci/run does so when it is missing)"
    )


@dataclass
class PostgresServer:
    """A running server: URLs of its databases, and stop/start for restart tests."""

    root: Path
    port: int
    password: str = field(repr=False)
    bin_dir: Path
    settings: tuple[str, ...]
    run_as: tuple[str, ...]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str | Path, timeout: float = 120) -> None:
        result = subprocess.run(
            [*self.run_as, *map(str, command)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            tail = (
                self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            )
            raise RuntimeError(
                f"{Path(str(command[0])).name} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{tail}"
            )

    def start(self) -> None:
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                f"-c unix_socket_directories={self.root}",
                "-c max_connections=200",
                *(f"-c {setting}" for setting in self.settings),
            ]
        )
        self._run(
            self.bin_dir / "pg_ctl", "start", "-w", "-t", "60", "-D", self.data_dir,
            "-l", self.log_file, "-o", options,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(
            self.bin_dir / "pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", self.data_dir
        )

    def execute(self, statement: str) -> None:
        """Run one statement outside a transaction (CREATE / DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as connection:
            connection.execute(statement)  # type: ignore[arg-type]

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop `name`, ending any session still connected to it."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_postgres_user() -> tuple[str, ...]:
    return ("runuser", "-u", SUPERUSER, "--") if os.geteuid() == 0 else ()


@contextmanager
def postgres_server(*, settings: Sequence[str] = FAST_SETTINGS) -> Iterator[PostgresServer]:
    """initdb a fresh cluster in a temporary folder, start it; stop and delete it after."""
    bin_dir = postgres_bin_dir()
    run_as = _as_postgres_user()
    # Not under pytest's root-only temporary folder: the postgres user must reach it.
    root = Path(tempfile.mkdtemp(prefix="reconciler-postgres-"))
    password = secrets.token_hex(12)
    (root / "password").write_text(password)
    if run_as:
        shutil.chown(root, user=SUPERUSER)
        shutil.chown(root / "password", user=SUPERUSER)
    server = PostgresServer(root, free_port(), password, bin_dir, tuple(settings), run_as)
    try:
        server._run(
            bin_dir / "initdb", "-D", server.data_dir, "-U", SUPERUSER,
            f"--pwfile={root / 'password'}", "--auth=scram-sha-256", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        server.start()
        try:
            yield server
        finally:
            # Already stopped, maybe: a restart test that ended with it down.
            with contextlib.suppress(RuntimeError):
                server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)
