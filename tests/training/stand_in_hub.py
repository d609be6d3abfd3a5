"""A stand-in Hugging Face Hub on 127.0.0.1: one model repository at one commit.

It answers the requests `huggingface_hub.snapshot_download` makes, as the real Hub does:

- `GET /api/models/{repo}/revision/{rev}` (and `/api/models/{repo}`): the model info, whose
  `sha` resolves a branch name to the commit;
- `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=...`: the file listing (one page, no
  `Link` header), with `oid` (git blob sha1), `size`, and an `lfs` block for weights;
- `HEAD|GET /{repo}/resolve/{rev}/{file}`: `X-Repo-Commit`, `ETag` (the git blob sha1, or for
  LFS files the sha256, also as `X-Linked-Etag` with `X-Linked-Size`), `Content-Length`;
- unknown repository, revision or file: 404 with `X-Error-Code` RepoNotFound,
  RevisionNotFound or EntryNotFound, which the client turns into its typed errors.

Every request's method and path is recorded, so a test can tell the Hub was (or was not) used.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin")


@dataclass
class StandInHub:
    url: str
    repo_id: str
    commit: str
    files: dict[str, bytes]
    requests: list[tuple[str, str]] = field(default_factory=list)


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _entry(path: str, content: bytes) -> dict[str, object]:
    entry: dict[str, object] = {
        "type": "file",
        "oid": git_blob_sha1(content),
        "size": len(content),
        "path": path,
    }
    if path.endswith(LFS_SUFFIXES):
        entry["lfs"] = {
            "oid": hashlib.sha256(content).hexdigest(),
            "size": len(content),
            "pointerSize": 134,
        }
    return entry


@contextmanager
def serve_hub(
    repo_id: str, commit: str, folder: Path, branch: str = "main"
) -> Iterator[StandInHub]:
    """Serve every file below `folder` as `repo_id` at `commit` (also reachable as `branch`)."""
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    hub = StandInHub(url="", repo_id=repo_id, commit=commit, files=files)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def _answer(self, *, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            with lock:
                hub.requests.append((self.command, path))
            api = f"/api/models/{repo_id}"
            resolve = f"/{repo_id}/resolve/"
            if path == api or path.startswith(api + "/revision/"):
                revision = path.removeprefix(api).removeprefix("/revision/") or branch
                if self._known_revision(revision):
                    self._json(
                        {
                            "_id": "stand-in",
                            "id": repo_id,
                            "modelId": repo_id,
                            "sha": commit,
                            "private": False,
                            "tags": [],
                            "siblings": [{"rfilename": name} for name in files],
                        },
                        body,
                    )
            elif path.startswith(api + "/tree/"):
                revision, _, prefix = path.removeprefix(api + "/tree/").partition("/")
                if self._known_revision(revision):
                    listing = [_entry(p, c) for p, c in files.items() if p.startswith(prefix)]
                    self._json(listing, body)
            elif path.startswith(resolve):
                revision, _, name = path.removeprefix(resolve).partition("/")
                if self._known_revision(revision):
                    self._file(name, body)
            elif path.startswith("/api/") or not path.startswith(f"/{repo_id}/"):
                self._error("RepoNotFound", "Repository not found")
            else:
                self.send_error(404)

        def _known_revision(self, revision: str) -> bool:
            if revision in (commit, branch):
                return True
            self._error("RevisionNotFound", f"Invalid rev id: {revision}")
            return False

        def _file(self, name: str, body: bool) -> None:
            if name not in files:
                self._error("EntryNotFound", f"{name} does not exist on {commit}")
                return
            content = files[name]
            self.send_response(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Length", str(len(content)))
            self.send_header("Content-Type", "application/octet-stream")
            if name.endswith(LFS_SUFFIXES):
                sha256 = hashlib.sha256(content).hexdigest()
                self.send_header("ETag", f'"{sha256}"')
                self.send_header("X-Linked-Etag", f'"{sha256}"')
                self.send_header("X-Linked-Size", str(len(content)))
            else:
                self.send_header("ETag", f'"{git_blob_sha1(content)}"')
            self.end_headers()
            if body:
                self.wfile.write(content)

        def _json(self, payload: object, body: bool) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _error(self, code: str, message: str) -> None:
            data = json.dumps({"error": message}).encode()
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
