"""Commit an edit on a branch and push it, with gitpython, without touching the working tree.

The commit is made in a temporary worktree based on the current HEAD, so a person's checkout
(and anything uncommitted in it) is left as it was. A branch is force-pushed, as Renovate
does: a proposal branch belongs to the reconciler and always holds exactly one commit on top
of the base - unless the remote already holds that very change, in which case nothing is
pushed and the pull request is not touched.

The token reaches git as an HTTP header through `GIT_CONFIG_*` environment variables (what
actions/checkout does with `persist-credentials: false` turned around): never in the remote
URL, the command line, the repository's config or the commit. Like actions/checkout, the
header is scoped to the GitHub server the token belongs to (`GITHUB_SERVER_URL`), and it is
not configured at all when `origin` points to another host: a token is never sent elsewhere.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reconciler.errors import ReconcilerError
from reconciler.settings import redact_uri

DEFAULT_AUTHOR = ("model-reconciler", "model-reconciler@users.noreply.github.com")


class GitError(ReconcilerError):
    """A git operation failed; the message has no credentials."""


@dataclass(frozen=True)
class Published:
    branch: str
    commit: str
    pushed: bool  # False: the remote branch already held this change


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return (parts.scheme, parts.hostname.lower(), parts.port or _DEFAULT_PORTS[parts.scheme])


def auth_environment(remote_url: str, token: str | None, server_url: str) -> dict[str, str]:
    """git configuration (as environment) that sends `token` to `server_url` and nowhere else;
    empty when the remote is not on that server."""
    server = _origin(server_url)
    if not token or server is None or _origin(remote_url) != server:
        return {}
    scheme, host, port = server
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{scheme}://{host}:{port}/.extraheader",
        "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}",
        "GIT_TERMINAL_PROMPT": "0",
    }


class GitRepository:
    def __init__(self, path: Path, *, remote: str = "origin") -> None:
        import git

        try:
            self._repo = git.Repo(path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise GitError(f"{path} is not a git repository: {type(exc).__name__}") from None
        self.remote = remote

    @property
    def root(self) -> Path:
        return Path(str(self._repo.working_tree_dir))

    def remote_url(self) -> str | None:
        try:
            return str(self._repo.remote(self.remote).url)
        except ValueError:
            return None

    def base_branch(self, environ: Mapping[str, str]) -> str:
        """The branch proposals target: the checked-out branch, else GITHUB_REF_NAME, else main."""
        if not self._repo.head.is_detached:
            return str(self._repo.active_branch.name)
        return environ.get("GITHUB_REF_NAME") or "main"

    @contextmanager
    def _credentials(self, token: str | None, server_url: str) -> Iterator[None]:
        url = self.remote_url() or ""
        with self._repo.git.custom_environment(**auth_environment(url, token, server_url)):
            yield

    def _remote_commit(self, branch: str) -> str | None:
        listed = str(self._repo.git.ls_remote(self.remote, f"refs/heads/{branch}")).strip()
        return listed.split()[0] if listed else None

    def publish(
        self,
        branch: str,
        files: Mapping[str, str],
        message: str,
        *,
        token: str | None,
        server_url: str,
        environ: Mapping[str, str],
    ) -> Published:
        """Commit `files` (repository path -> text) on top of HEAD as `branch`, and push it;
        `token` goes only to `server_url` (the GitHub server it belongs to)."""
        import git

        base = self._repo.head.commit
        # The edit was made on the files as checked out: uncommitted changes there would ride
        # along into the proposal unseen.
        dirty = str(self._repo.git.status("--porcelain", "--", *files)).strip()
        if dirty:
            raise GitError(
                f"{', '.join(sorted(files))} has uncommitted changes; commit or stash them "
                "first (a proposal is made on top of the checked-out commit)"
            )
        name = environ.get("GIT_AUTHOR_NAME") or DEFAULT_AUTHOR[0]
        email = environ.get("GIT_AUTHOR_EMAIL") or DEFAULT_AUTHOR[1]
        actor = git.Actor(name, email)
        try:
            with (
                self._credentials(token, server_url),
                tempfile.TemporaryDirectory(prefix="propose-") as tmp,
            ):
                folder = Path(tmp) / "worktree"
                self._repo.git.worktree("add", "--detach", str(folder), base.hexsha)
                try:
                    worktree = git.Repo(folder)
                    for path, text in files.items():
                        target = folder / path
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with target.open("w", encoding="utf-8", newline="") as handle:
                            handle.write(text)
                    worktree.git.add("--", *files)
                    commit = worktree.index.commit(
                        message, author=actor, committer=actor, parent_commits=[base]
                    )
                    remote_sha = self._remote_commit(branch)
                    if remote_sha is not None and self._holds(branch, commit, base):
                        return Published(branch, remote_sha, pushed=False)
                    worktree.git.push(self.remote, f"+{commit.hexsha}:refs/heads/{branch}")
                    return Published(branch, commit.hexsha, pushed=True)
                finally:
                    self._repo.git.worktree("remove", "--force", str(folder))
        except git.GitCommandError as exc:
            raise GitError(
                f"git {exc.command[1] if len(exc.command) > 1 else ''} failed for branch "
                f"{branch} on {redact_uri(self.remote_url() or self.remote)} "
                f"(exit {exc.status})"
            ) from None

    def _holds(self, branch: str, commit: Any, base: Any) -> bool:
        """Whether the remote branch already is this change (same tree) on this base."""
        import git

        try:
            self._repo.git.fetch(self.remote, f"refs/heads/{branch}")
            remote = self._repo.commit("FETCH_HEAD")
        except (git.GitCommandError, ValueError):
            return False
        parents = [p.hexsha for p in remote.parents]
        return bool(remote.tree.hexsha == commit.tree.hexsha and parents == [base.hexsha])
