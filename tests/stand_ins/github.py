"""A stand-in GitHub REST API on 127.0.0.1: the pulls, issues, comments and labels endpoints
`reconciler propose` uses, with GitHub's behaviour where it matters:

- a second open pull request for the same head branch is refused (422), as GitHub does;
- bodies over 65,536 characters are refused (422);
- every request needs `Authorization: Bearer <token>` (401 otherwise);
- list endpoints page with `per_page`/`page` and a `Link: rel="next"` header.

State is plain lists a test can read and change (close a PR "by hand", merge one).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tests.stand_ins.http import Request, Response, Served, json_response, serve

BODY_LIMIT = 65_536


@dataclass
class GitHubState:
    repository: str
    token: str
    url: str = ""
    pulls: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)
    next_number: int = 1

    def _number(self) -> int:
        number = self.next_number
        self.next_number += 1
        return number

    def close(self, number: int, *, merged: bool = False) -> None:
        pull = self.pull(number)
        pull["state"] = "closed"
        pull["merged_at"] = "2026-12-01T12:00:00Z" if merged else None

    def reopen(self, number: int) -> None:
        self.pull(number)["state"] = "open"

    def pull(self, number: int) -> dict[str, Any]:
        return next(p for p in self.pulls if p["number"] == number)

    def open_pulls(self) -> list[dict[str, Any]]:
        return [p for p in self.pulls if p["state"] == "open"]


class GitHubHandler:
    def __init__(self, state: GitHubState) -> None:
        self.state = state

    def __call__(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.state.token}":
            return json_response({"message": "Bad credentials"}, status=401)
        prefix = f"/repos/{self.state.repository}"
        if not request.path.startswith(prefix + "/"):
            return json_response({"message": "Not Found"}, status=404)
        route = request.path.removeprefix(prefix)
        body = request.json() if request.body else {}
        if isinstance(body, dict) and len(str(body.get("body") or "")) > BODY_LIMIT:
            return json_response(
                {"message": "Validation Failed", "errors": [{"message": "body is too long"}]},
                status=422,
            )
        if route == "/pulls":
            return (
                self._list(request, self.state.pulls)
                if request.method == "GET"
                else self._create_pull(body)
            )
        if match := re.fullmatch(r"/pulls/(\d+)", route):
            pull = self.state.pull(int(match[1]))
            if request.method == "PATCH":
                pull.update({k: body[k] for k in ("title", "body", "state") if k in body})
            return json_response(pull)
        if match := re.fullmatch(r"/issues/(\d+)/labels", route):
            item = self._item(int(match[1]))
            for name in body["labels"]:
                if name not in [label["name"] for label in item["labels"]]:
                    item["labels"].append({"name": name})
            return json_response(item["labels"])
        if match := re.fullmatch(r"/issues/(\d+)/comments", route):
            comment = {
                "id": len(self.state.comments) + 1,
                "issue": int(match[1]),
                "body": body["body"],
            }
            self.state.comments.append(comment)
            return json_response(comment, status=201)
        if route == "/issues":
            if request.method == "GET":
                everything = self.state.issues + [
                    {**p, "pull_request": {}} for p in self.state.pulls
                ]
                return self._list(request, everything)
            issue = {
                "number": self.state._number(),
                "title": body["title"],
                "body": body.get("body", ""),
                "state": "open",
                "labels": [{"name": n} for n in body.get("labels", [])],
                "html_url": f"https://github.example/{self.state.repository}/issues/x",
            }
            issue["html_url"] = issue["html_url"].replace("x", str(issue["number"]))
            self.state.issues.append(issue)
            return json_response(issue, status=201)
        if match := re.fullmatch(r"/issues/(\d+)", route):
            issue = next(i for i in self.state.issues if i["number"] == int(match[1]))
            if request.method == "PATCH":
                issue.update({k: body[k] for k in ("title", "body", "state") if k in body})
            return json_response(issue)
        return json_response({"message": "Not Found"}, status=404)

    def _item(self, number: int) -> dict[str, Any]:
        return next(i for i in self.state.pulls + self.state.issues if i["number"] == number)

    def _create_pull(self, body: dict[str, Any]) -> Response:
        if any(p["head"]["ref"] == body["head"] for p in self.state.open_pulls()):
            return json_response(
                {
                    "message": "Validation Failed",
                    "errors": [{"message": f"A pull request already exists for {body['head']}."}],
                },
                status=422,
            )
        number = self.state._number()
        pull = {
            "number": number,
            "state": "open",
            "merged_at": None,
            "title": body["title"],
            "body": body["body"],
            "head": {"ref": body["head"]},
            "base": {"ref": body["base"]},
            "labels": [],
            "html_url": f"https://github.example/{self.state.repository}/pull/{number}",
        }
        self.state.pulls.append(pull)
        return json_response(pull, status=201)

    def _list(self, request: Request, items: list[dict[str, Any]]) -> Response:
        state = request.arg("state", "open")
        if state != "all":
            items = [i for i in items if i["state"] == state]
        per_page = int(request.arg("per_page") or 30)
        page = int(request.arg("page") or 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            query = {k: v[0] for k, v in request.query.items() if k != "page"}
            query["page"] = str(page + 1)
            headers["Link"] = f'<{self.state.url}{request.path}?{urlencode(query)}>; rel="next"'
        return json_response(chunk, headers=headers)


@contextmanager
def serve_github(
    repository: str = "acme/game", token: str = "ghs_stand-in-token-0123456789"
) -> Iterator[tuple[Served, GitHubState]]:
    state = GitHubState(repository=repository, token=token)
    with serve(GitHubHandler(state)) as served:
        state.url = served.url
        yield served, state
