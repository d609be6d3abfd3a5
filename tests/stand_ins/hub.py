"""A stand-in Hugging Face Hub with many model repositories, for `HfApi` and downloads.

Answers what `huggingface_hub` asks, as the Hub does:

- `GET /api/models?author=&search=&pipeline_tag=&sort=&limit=`: the listing, filtered,
  sorted, paged `page_size` at a time with a `Link: <...>; rel="next"` header;
- `GET /api/models/{id}[/revision/{rev}]`: model info with `sha`, `lastModified`, `cardData`
  (license, pipeline tag, model-index), `safetensors` ({dtype: count}, total), downloads,
  likes, gated, siblings - after any `info_answers` a test queued (429, gated 403, ...);
- `GET /api/models/{id}/tree/{rev}` and `HEAD|GET /{id}/resolve/{rev}/{file}` for the files of
  models that have them (the pre-evaluation downloads a candidate's pinned revision).

Unknown repositories, revisions and files are 404s with the Hub's `X-Error-Code`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.stand_ins.http import Request, Response, Served, json_response, serve
from tests.training.stand_in_hub import LFS_SUFFIXES, _entry, git_blob_sha1


@dataclass
class HubModel:
    id: str
    sha: str
    license: str | None = "apache-2.0"
    pipeline_tag: str | None = "text-generation"
    downloads: int = 1000
    likes: int = 10
    last_modified: str = "2026-11-01T00:00:00.000Z"
    parameters: dict[str, int] | None = field(default_factory=lambda: {"BF16": 135_000_000})
    gated: bool | str = False
    benchmark: float | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    # Answers `GET /api/models/{id}` gives before the model info, one per request:
    # (status, headers), e.g. a 429 with Retry-After, or a gated repository's 403.
    info_answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    @property
    def author(self) -> str:
        return self.id.split("/")[0]

    def listing(self) -> dict[str, Any]:
        return {
            "_id": hashlib.sha1(self.id.encode()).hexdigest()[:24],
            "id": self.id,
            "modelId": self.id,
            "downloads": self.downloads,
            "likes": self.likes,
            "pipeline_tag": self.pipeline_tag,
            "tags": [f"license:{self.license}"] if self.license else [],
            "createdAt": "2026-01-01T00:00:00.000Z",
            "private": False,
        }

    def info(self) -> dict[str, Any]:
        card: dict[str, Any] = {}
        if self.license:
            card["license"] = self.license
        if self.pipeline_tag:
            card["pipeline_tag"] = self.pipeline_tag
        if self.benchmark is not None:
            card["model-index"] = [
                {
                    "name": self.id.split("/")[1],
                    "results": [
                        {
                            "task": {"type": "text-generation"},
                            "dataset": {"name": "stand-in-bench", "type": "stand-in-bench"},
                            "metrics": [{"type": "accuracy", "value": self.benchmark}],
                        }
                    ],
                }
            ]
        info: dict[str, Any] = {
            **self.listing(),
            "sha": self.sha,
            "lastModified": self.last_modified,
            "gated": self.gated,
            "cardData": card,
            "siblings": [{"rfilename": name} for name in self.files],
        }
        if self.parameters is not None:
            info["safetensors"] = {
                "parameters": self.parameters,
                "total": sum(self.parameters.values()),
            }
        return info


def model_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class HubHandler:
    def __init__(self, models: list[HubModel], page_size: int = 50) -> None:
        self.models = {m.id: m for m in models}
        self.page_size = page_size
        self.url = ""
        # Answers the listing gives first, one per request (not `Served.interruptions`: the
        # client may ask the Hub other things first, such as its agent-harness registry).
        self.listing_answers: list[tuple[int, dict[str, str]]] = []

    def __call__(self, request: Request) -> Response:
        path = request.path
        if path == "/api/models" and self.listing_answers:
            status, headers = self.listing_answers.pop(0)
            return json_response({"error": "stand-in"}, status, headers)
        if path == "/api/models":
            return self._list(request)
        if path.startswith("/api/models/"):
            parts = path.removeprefix("/api/models/").split("/")
            model = self.models.get("/".join(parts[:2]))
            if model is None:
                return _error("RepoNotFound", "Repository not found")
            rest = parts[2:]
            if not rest and model.info_answers:
                status, headers = model.info_answers.pop(0)
                return json_response({"error": headers.get("X-Error-Message", "")}, status, headers)
            if not rest:
                return json_response(model.info())
            if rest[0] == "revision" and len(rest) >= 2:
                if rest[1] not in (model.sha, "main"):
                    return _error("RevisionNotFound", f"Invalid rev id: {rest[1]}")
                return json_response(model.info())
            if rest[0] == "tree" and len(rest) >= 2:
                if rest[1] not in (model.sha, "main"):
                    return _error("RevisionNotFound", f"Invalid rev id: {rest[1]}")
                prefix = "/".join(rest[2:])
                return json_response(
                    [_entry(p, c) for p, c in model.files.items() if p.startswith(prefix)]
                )
            return Response(404)
        if "/resolve/" in path:
            repo, _, rest = path.lstrip("/").partition("/resolve/")
            model = self.models.get(repo)
            revision, _, name = rest.partition("/")
            if model is None:
                return _error("RepoNotFound", "Repository not found")
            if revision not in (model.sha, "main"):
                return _error("RevisionNotFound", f"Invalid rev id: {revision}")
            if name not in model.files:
                return _error("EntryNotFound", f"{name} does not exist")
            content = model.files[name]
            headers = {"X-Repo-Commit": model.sha, "Content-Type": "application/octet-stream"}
            if name.endswith(LFS_SUFFIXES):
                sha256 = hashlib.sha256(content).hexdigest()
                headers |= {
                    "ETag": f'"{sha256}"',
                    "X-Linked-Etag": f'"{sha256}"',
                    "X-Linked-Size": str(len(content)),
                }
            else:
                headers["ETag"] = f'"{git_blob_sha1(content)}"'
            return Response(200, content, headers)
        return Response(404)

    def _list(self, request: Request) -> Response:
        models = list(self.models.values())
        author = request.arg("author")
        search = request.arg("search")
        tag = request.arg("pipeline_tag")
        if author:
            models = [m for m in models if m.author == author]
        if search:
            models = [m for m in models if search.lower() in m.id.lower()]
        if tag:
            models = [m for m in models if m.pipeline_tag == tag]
        if request.arg("sort") == "downloads":
            models.sort(key=lambda m: -m.downloads)
        limit = int(request.arg("limit") or 1000)
        models = models[:limit]
        cursor = int(request.arg("cursor") or 0)
        page = models[cursor : cursor + self.page_size]
        headers = {}
        if cursor + self.page_size < len(models):
            query = {k: v[0] for k, v in request.query.items() if k != "cursor"}
            query["cursor"] = str(cursor + self.page_size)
            headers["Link"] = f'<{self.url}/api/models?{urlencode(query)}>; rel="next"'
        return json_response([m.listing() for m in page], headers=headers)


def _error(code: str, message: str) -> Response:
    return Response(
        404,
        json.dumps({"error": message}).encode(),
        {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"},
    )


@contextmanager
def serve_hub(
    models: list[HubModel],
    page_size: int = 50,
    listing_answers: list[tuple[int, dict[str, str]]] | None = None,
) -> Iterator[Served]:
    handler = HubHandler(models, page_size)
    handler.listing_answers = list(listing_answers or [])
    with serve(handler) as served:
        handler.url = served.url
        yield served


def point_client_at(monkeypatch: Any, url: str, cache: Path) -> None:
    """Point huggingface_hub at the stand-in. It reads HF_ENDPOINT and the cache when first
    imported, so its constants are set as well as the environment."""
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hub_constants, "ENDPOINT", url)
    monkeypatch.setattr(
        hub_constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
