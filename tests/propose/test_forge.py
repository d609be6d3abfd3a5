"""The GitHub adapter against the stand-in REST API: paging through Link headers, retrying a
rate limit, refusing a pagination link to another host, and errors that never carry the
token."""

from __future__ import annotations

import pytest

from reconciler.discovery.retries import RetryPolicy
from reconciler.propose.forge import (
    ForgeError,
    ForgeSettings,
    GitHubForge,
    _same_origin,
    repository_from_remote,
)
from tests.stand_ins.github import serve_github

TOKEN = "ghs_forge-test-token-abcdef0123456789"


def _forge(url: str, token: str = TOKEN, waits: list[float] | None = None) -> GitHubForge:
    policy = RetryPolicy(attempts=3, sleep=(waits if waits is not None else []).append)
    return GitHubForge(ForgeSettings(url, token, "acme/game"), policy=policy)


def test_lists_every_page_and_filters_by_branch_prefix() -> None:
    with serve_github(token=TOKEN) as (served, state):
        for i in range(130):
            head = f"reconciler/uc-{i}/x" if i % 2 else f"feature/{i}"
            state.pulls.append(
                {
                    "number": i + 1,
                    "state": "open" if i < 120 else "closed",
                    "merged_at": None,
                    "title": f"pr {i}",
                    "body": "",
                    "head": {"ref": head},
                    "base": {"ref": "main"},
                    "labels": [],
                    "html_url": "",
                }
            )
        with _forge(served.url) as forge:
            found = forge.pulls(state="all", head_prefix="reconciler/")
            open_only = forge.pulls(state="open", head_prefix="reconciler/")
    assert len(found) == 65 and len(open_only) == 60
    pages = [r for r in served.requests if r.path == "/repos/acme/game/pulls"]
    assert [r.arg("page") for r in pages] == [None, "2", None, "2"]


def test_a_rate_limit_is_waited_out() -> None:
    waits: list[float] = []
    with serve_github(token=TOKEN) as (served, _):
        served.interruptions.append((429, {"Retry-After": "3"}))
        with _forge(served.url, waits=waits) as forge:
            pull = forge.create_pull(title="t", head="reconciler/a/b", base="main", body="b")
    assert pull.number == 1 and waits == [3.0]


def test_errors_say_what_to_check_and_never_show_the_token() -> None:
    with (
        serve_github(token="the-right-one") as (served, _),
        _forge(served.url) as forge,
        pytest.raises(ForgeError) as refused,
    ):
        forge.create_issue(title="Model upgrades", body="", labels=[])
    message = str(refused.value)
    assert refused.value.status == 401
    assert "check that GITHUB_TOKEN may write pull requests and issues of acme/game" in message
    assert TOKEN not in message and TOKEN not in repr(_forge(served.url).settings)


def test_a_second_open_pr_for_the_same_branch_is_refused_by_github() -> None:
    with serve_github(token=TOKEN) as (served, _), _forge(served.url) as forge:
        forge.create_pull(title="t", head="reconciler/a/b", base="main", body="b")
        with pytest.raises(ForgeError, match="HTTP 422"):
            forge.create_pull(title="t", head="reconciler/a/b", base="main", body="b")


def test_pagination_never_leads_the_token_elsewhere() -> None:
    assert _same_origin("http://api.test/repos/x?page=2", "http://api.test") is not None
    with pytest.raises(ForgeError, match="leads away"):
        _same_origin("http://evil.test/repos/x?page=2", "http://api.test")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/game.git", "acme/game"),
        ("https://x-access-token:secret@github.com/acme/game", "acme/game"),
        ("git@github.com:acme/game.git", "acme/game"),
        ("/srv/git/game.git", None),
    ],
)
def test_the_repository_comes_from_the_remote(url: str, expected: str | None) -> None:
    assert repository_from_remote(url) == expected


def test_settings_need_a_repository() -> None:
    with pytest.raises(ForgeError, match="set GITHUB_REPOSITORY=owner/name"):
        ForgeSettings.from_environment({}, remote_url="/srv/git/game.git")
    settings = ForgeSettings.from_environment(
        {"GITHUB_TOKEN": TOKEN}, remote_url="git@github.com:a/b.git"
    )
    assert (settings.api_url, settings.repository) == ("https://api.github.com", "a/b")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "https://github.com"),
        ({"GITHUB_API_URL": "https://ghe.example.com/api/v3"}, "https://ghe.example.com"),
        ({"GITHUB_API_URL": "http://127.0.0.1:8123"}, "http://127.0.0.1:8123"),
        (
            {"GITHUB_API_URL": "https://api.github.com", "GITHUB_SERVER_URL": "https://gh.corp/"},
            "https://gh.corp",
        ),
    ],
)
def test_the_server_the_token_belongs_to(environ: dict[str, str], expected: str) -> None:
    settings = ForgeSettings.from_environment({**environ, "GITHUB_REPOSITORY": "a/b"})
    assert settings.server_url == expected
