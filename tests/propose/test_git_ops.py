"""The git token goes to the GitHub server it belongs to and nowhere else: a real `git` pushing
to a recording HTTP host on 127.0.0.1, with the token scoped to that host or to another."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from reconciler.propose.git_ops import GitError, GitRepository, auth_environment
from tests.propose.conftest import TOKEN, git
from tests.stand_ins.http import Response, Served, serve


def _clone_with_origin(tmp_path: Path, origin: str) -> GitRepository:
    repo = tmp_path / "work"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test Person")
    git(repo, "config", "user.email", "person@example.com")
    (repo / "README.md").write_text("desired state\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    git(repo, "remote", "add", "origin", origin)
    return GitRepository(repo)


def _push_to(host: Served, tmp_path: Path, *, server_url: str) -> None:
    clone = _clone_with_origin(tmp_path, f"{host.url}/acme/game.git")
    with pytest.raises(GitError) as raised:  # the recording host serves no repository
        clone.publish(
            "propose/x", {"a.txt": "a\n"}, "m", token=TOKEN, server_url=server_url, environ={}
        )
    assert TOKEN not in str(raised.value)
    assert host.requests, "git asked the host"


@pytest.fixture(autouse=True)
def _no_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")


def test_a_push_to_another_host_carries_no_token(tmp_path: Path) -> None:
    with serve(lambda request: Response(404)) as elsewhere:
        _push_to(elsewhere, tmp_path, server_url="https://github.com")
    assert all("authorization" not in r.headers for r in elsewhere.requests)
    assert all(TOKEN not in str(r) for r in elsewhere.requests)


def test_a_push_to_the_github_server_carries_the_token(tmp_path: Path) -> None:
    with serve(lambda request: Response(404)) as server:
        _push_to(server, tmp_path, server_url=server.url)
    expected = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert server.requests[0].headers.get("authorization") == f"basic {expected}"


def test_the_header_is_scoped_to_the_server_not_the_remote() -> None:
    scoped = auth_environment("https://github.com/acme/game.git", TOKEN, "https://github.com")
    assert scoped["GIT_CONFIG_KEY_0"] == "http.https://github.com:443/.extraheader"
    assert auth_environment("https://git.example.com/acme/game", TOKEN, "https://github.com") == {}
    assert auth_environment("http://github.com/acme/game", TOKEN, "https://github.com") == {}
    assert auth_environment("git@github.com:acme/game.git", TOKEN, "https://github.com") == {}
    assert auth_environment("https://github.com/acme/game", None, "https://github.com") == {}
