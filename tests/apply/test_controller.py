"""The controller's reconcile cycle: automated use cases are applied, the others wait; with
`--ref origin/main --fetch` it follows what is merged into a real (bare) git remote."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import git

from reconciler.apply.run import ApplyContext
from reconciler.health import Health
from reconciler.scheduler import ContextFactory, describe, reconcile_once
from reconciler.settings import Settings
from reconciler.spec.loader import DesiredState
from tests.apply.world import USE_CASE, ErrorRule, World

NPC_SPEC = "desired_state/npc-dialogue.yaml"


def _never_fails(version: str, weight: int) -> bool:
    return False


def _settings(world: World) -> Settings:
    return Settings(
        tracking_uri=world.tracking_uri,
        registry_uri=world.tracking_uri,
        artifact_root=world.state_dir / "artifacts",
        state_dir=world.state_dir,
    )


def _contexts(world: World) -> ContextFactory:
    def make(repo: Path, desired: DesiredState, settings: Settings) -> ApplyContext:
        return dataclasses.replace(world.context(desired), repo=repo)

    return make


def _only_npc_and_story(repo: Path) -> None:
    # faction-decision would need training, which these tests do not do.
    (repo / "desired_state" / "faction-decision.yaml").unlink()


def test_automated_use_cases_are_applied_and_the_others_wait(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    _only_npc_and_story(world.repo)
    served_traffic(_never_fails)

    first = reconcile_once(world.repo, None, _settings(world), make_context=_contexts(world))

    assert first.error is None, first
    assert first.applied == {USE_CASE: Health.HEALTHY}
    assert first.waiting == ("story-generation",)  # not automated: a person applies it
    assert world.aliases() == {"champion": "3", "previous": "2"}
    second = reconcile_once(world.repo, None, _settings(world), make_context=_contexts(world))
    assert (second.applied, second.in_sync) == ({}, (USE_CASE,))
    assert "in sync: npc-dialogue" in describe(second)


def test_an_invalid_commit_is_reported_and_changes_nothing(world: World) -> None:
    (world.repo / NPC_SPEC).write_text("apiVersion: reconciler/v1\nkind: UseCase\nspec: {}\n")
    report = reconcile_once(world.repo, None, _settings(world), make_context=_contexts(world))
    assert report.error is not None and "invalid" in report.error
    assert report.applied == {}
    assert world.aliases() == {"champion": "2"}


def test_following_a_branch_picks_up_what_is_merged(
    world: World, served_traffic: Callable[[ErrorRule], None], tmp_path: Path
) -> None:
    _only_npc_and_story(world.repo)
    npc = world.repo / NPC_SPEC
    npc.write_text(npc.read_text().replace("automated: true", "automated: false"))
    remote = git.Repo.init(tmp_path / "remote.git", bare=True, initial_branch="main")
    author = git.Repo.init(world.repo, initial_branch="main")
    author.git.add(A=True)
    author.index.commit("desired state: npc-dialogue not automated yet")
    author.create_remote("origin", remote.working_dir).push("main")
    follower = tmp_path / "controller"
    git.Repo.clone_from(remote.working_dir, follower)
    shutil.rmtree(follower / "desired_state" / "datasets")  # the commit is read, not the folder
    served_traffic(_never_fails)

    def cycle() -> object:
        return reconcile_once(
            follower, "origin/main", _settings(world), make_context=_contexts(world), fetch=True
        )

    waiting = cycle()
    assert getattr(waiting, "waiting", None) == (USE_CASE, "story-generation"), waiting
    assert world.aliases() == {"champion": "2"}

    npc.write_text(npc.read_text().replace("automated: false", "automated: true"))
    author.git.add(A=True)
    merged = author.index.commit("automate npc-dialogue")
    author.remote("origin").push("main")

    applied = cycle()
    assert getattr(applied, "commit", None) == merged.hexsha
    assert getattr(applied, "applied", None) == {USE_CASE: Health.HEALTHY}, applied
    assert world.aliases() == {"champion": "3", "previous": "2"}
