"""The forge adapter: GitHub's REST API through httpx - pull requests, issues, comments, labels.

Configured as GitHub Actions configures its steps: `GITHUB_API_URL` (default the public API),
`GITHUB_SERVER_URL` (the git host the token belongs to; default derived from the API URL),
`GITHUB_TOKEN`, `GITHUB_REPOSITORY=owner/name` (else derived from the `origin` remote). The
token goes in the Authorization header only; it is never part of a URL, a message or an error,
and a refusal says which variable to check instead. Requests share the discovery adapters'
retries (429 `Retry-After`, 5xx backoff); list endpoints follow the `Link: rel="next"` header.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler.discovery.retries import RetryPolicy, request_with_retries
from reconciler.errors import ReconcilerError
from reconciler.settings import redact_uri

DEFAULT_API_URL = "https://api.github.com"
API_URL_ENV = "GITHUB_API_URL"
SERVER_URL_ENV = "GITHUB_SERVER_URL"
TOKEN_ENV = "GITHUB_TOKEN"
REPOSITORY_ENV = "GITHUB_REPOSITORY"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_REMOTE = re.compile(r"(?:github\.com[:/])(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$")


class ForgeError(ReconcilerError):
    """The forge refused or failed a request; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PullRequest:
    number: int
    state: str  # open | closed
    merged: bool
    head: str  # branch name
    title: str
    body: str
    url: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Issue:
    number: int
    title: str
    body: str
    url: str


def repository_from_remote(url: str) -> str | None:
    """owner/name from a GitHub remote URL (https or ssh), credentials ignored."""
    match = _REMOTE.search(url.strip())
    return match.group("repo") if match else None


def server_url_for(api_url: str, environ: Mapping[str, str]) -> str:
    """The git host the token belongs to: GITHUB_SERVER_URL, else the API's host as GitHub lays
    it out (`https://api.github.com` -> `https://github.com`, Enterprise Server's
    `https://host/api/v3` -> `https://host`, anything else its own scheme, host and port)."""
    configured = (environ.get(SERVER_URL_ENV) or "").strip().rstrip("/")
    if configured:
        return configured
    parts = urlsplit(api_url)
    host = parts.netloc.rpartition("@")[2]
    if host.startswith("api.") and parts.path.strip("/") == "":
        host = host.removeprefix("api.")
    return f"{parts.scheme}://{host}"


@dataclass(frozen=True)
class ForgeSettings:
    api_url: str
    token: str | None
    repository: str
    server_url: str = "https://github.com"

    def __repr__(self) -> str:  # the token is never shown
        return (
            f"ForgeSettings(api_url={self.api_url!r}, repository={self.repository!r}, "
            f"server_url={self.server_url!r})"
        )

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str], *, remote_url: str | None = None
    ) -> ForgeSettings:
        repository = environ.get(REPOSITORY_ENV) or (
            repository_from_remote(remote_url) if remote_url else None
        )
        if not repository or not _REPOSITORY.match(repository):
            raise ForgeError(
                f"set {REPOSITORY_ENV}=owner/name (the origin remote does not name a GitHub "
                "repository)"
            )
        api_url = (environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")
        return cls(
            api_url=api_url,
            token=environ.get(TOKEN_ENV) or None,
            repository=repository,
            server_url=server_url_for(api_url, environ),
        )


def _pull(data: dict[str, Any]) -> PullRequest:
    return PullRequest(
        number=int(data["number"]),
        state=str(data["state"]),
        merged=bool(data.get("merged_at")),
        head=str(data["head"]["ref"]),
        title=str(data.get("title") or ""),
        body=str(data.get("body") or ""),
        url=str(data.get("html_url") or ""),
        labels=tuple(str(label["name"]) for label in data.get("labels") or []),
    )


def _issue(data: dict[str, Any]) -> Issue:
    return Issue(
        number=int(data["number"]),
        title=str(data.get("title") or ""),
        body=str(data.get("body") or ""),
        url=str(data.get("html_url") or ""),
    )


class GitHubForge:
    """One repository's pulls and issues. Use as a context manager (one HTTP connection pool)."""

    def __init__(self, settings: ForgeSettings, *, policy: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.policy = policy or RetryPolicy()
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "model-reconciler",
        }
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        self._client = httpx.Client(
            base_url=settings.api_url, headers=headers, timeout=self.policy.timeout
        )
        self._prefix = f"/repos/{settings.repository}"

    def __enter__(self) -> GitHubForge:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    # -- transport -------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        what = f"GitHub {method} {path.split('?', maxsplit=1)[0]}"
        response = request_with_retries(
            self._client, method, path, policy=self.policy, what=what, **kwargs
        )
        if response.status_code in (401, 403):
            raise ForgeError(
                f"{what}: refused (HTTP {response.status_code}); check that {TOKEN_ENV} may "
                "write pull requests and issues of "
                f"{self.settings.repository}",
                response.status_code,
            )
        if response.status_code >= 400:
            raise ForgeError(
                f"{what}: HTTP {response.status_code}: {_message(response)}",
                response.status_code,
            )
        return response.json() if response.content else None

    def _pages(self, path: str, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        url: str | None = path
        query: Mapping[str, str] | None = {**params, "per_page": "100"}
        while url is not None:
            response = request_with_retries(
                self._client,
                "GET",
                url,
                policy=self.policy,
                what=f"GitHub GET {path}",
                params=query,
            )
            if response.status_code >= 400:
                raise ForgeError(
                    f"GitHub GET {path}: HTTP {response.status_code}: {_message(response)}",
                    response.status_code,
                )
            yield from response.json()
            next_link = response.links.get("next", {}).get("url")
            url = _same_origin(next_link, self.settings.api_url)
            query = None  # the next link carries its query

    # -- pull requests ---------------------------------------------------------------------

    def pulls(self, *, state: str, head_prefix: str) -> list[PullRequest]:
        """Pull requests whose head branch starts with `head_prefix` (open, closed or all)."""
        found = [_pull(p) for p in self._pages(f"{self._prefix}/pulls", {"state": state})]
        return [p for p in found if p.head.startswith(head_prefix)]

    def create_pull(self, *, title: str, head: str, base: str, body: str) -> PullRequest:
        data = self._request(
            "POST",
            f"{self._prefix}/pulls",
            json={"title": title, "head": head, "base": base, "body": body},
        )
        return _pull(data)

    def update_pull(self, number: int, *, title: str, body: str) -> PullRequest:
        data = self._request(
            "PATCH", f"{self._prefix}/pulls/{number}", json={"title": title, "body": body}
        )
        return _pull(data)

    def add_labels(self, number: int, labels: Sequence[str]) -> None:
        if labels:
            self._request(
                "POST", f"{self._prefix}/issues/{number}/labels", json={"labels": list(labels)}
            )

    def comment(self, number: int, body: str) -> None:
        self._request("POST", f"{self._prefix}/issues/{number}/comments", json={"body": body})

    # -- issues ----------------------------------------------------------------------------

    def find_issue(self, title: str) -> Issue | None:
        for data in self._pages(f"{self._prefix}/issues", {"state": "open"}):
            if "pull_request" not in data and data.get("title") == title:
                return _issue(data)
        return None

    def create_issue(self, *, title: str, body: str, labels: Sequence[str]) -> Issue:
        data = self._request(
            "POST",
            f"{self._prefix}/issues",
            json={"title": title, "body": body, "labels": list(labels)},
        )
        return _issue(data)

    def update_issue(self, number: int, *, body: str) -> Issue:
        data = self._request("PATCH", f"{self._prefix}/issues/{number}", json={"body": body})
        return _issue(data)


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return "no details"
    message = data.get("message") if isinstance(data, dict) else None
    return str(message)[:200] if message else "no details"


def _same_origin(link: str | None, api_url: str) -> str | None:
    """Follow a pagination link only to the API it came from: never send the token elsewhere."""
    if not link:
        return None
    if not link.startswith(api_url + "/"):
        raise ForgeError(f"pagination link leads away from {redact_uri(api_url)}; refused")
    return link
