"""The controller's reconcile cycle: automated use cases are applied, the others wait; a
rollout advances one step per cycle and never blocks one; failures back off or wait; with
`--ref origin/main --fetch` it follows what is merged into a real (bare) git remote."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import git

from reconciler.apply.context import ApplyContext
from reconciler.controller import ContextFactory, CycleReport, Retries, describe, reconcile_once
from reconciler.health import Health
from reconciler.rollout.state import Control
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
        database_url=world.database_url,
    )


def _contexts(world: World) -> ContextFactory:
    def make(repo: Path, desired: DesiredState, settings: Settings) -> ApplyContext:
        return dataclasses.replace(world.context(desired, drive_rollouts=False), repo=repo)

    return make


def _until_settled(world: World, cycle: Callable[[], CycleReport]) -> CycleReport:
    """Run cycles as the controller would: the next one when a rollout asks for it."""
    for _ in range(100):
        report = cycle()
        if report.requeue_after is None:
            return report
        assert report.applied and set(report.applied.values()) == {Health.PROGRESSING}, report
        world.clock.sleep(report.requeue_after)
    raise AssertionError("the rollout never settled")


def _only_npc_and_story(repo: Path) -> None:
    # faction-decision would need training, which these tests do not do.
    (repo / "desired_state" / "faction-decision.yaml").unlink()


def test_automated_use_cases_are_applied_and_the_others_wait(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    _only_npc_and_story(world.repo)
    served_traffic(_never_fails)

    def cycle() -> CycleReport:
        return reconcile_once(world.repo, None, _settings(world), make_context=_contexts(world))

    first = cycle()
    assert first.error is None, first
    assert first.applied == {USE_CASE: Health.PROGRESSING}  # one step, no waiting on a bake
    assert first.waiting == ("story-generation",)  # not automated: a person applies it
    last = _until_settled(world, cycle)
    assert last.applied == {USE_CASE: Health.HEALTHY}, last
    assert world.aliases() == {"champion": "3", "previous": "2"}
    second = cycle()
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

    def cycle() -> CycleReport:
        return reconcile_once(
            follower, "origin/main", _settings(world), make_context=_contexts(world), fetch=True
        )

    waiting = cycle()
    assert waiting.waiting == (USE_CASE, "story-generation"), waiting
    assert world.aliases() == {"champion": "2"}

    npc.write_text(npc.read_text().replace("automated: false", "automated: true"))
    author.git.add(A=True)
    merged = author.index.commit("automate npc-dialogue")
    author.remote("origin").push("main")

    applied = _until_settled(world, cycle)
    assert applied.commit == merged.hexsha
    assert applied.applied == {USE_CASE: Health.HEALTHY}, applied
    assert world.aliases() == {"champion": "3", "previous": "2"}


def test_a_temporary_failure_backs_off_then_is_retried(
    world: World, served_traffic: Callable[[ErrorRule], None]
) -> None:
    _only_npc_and_story(world.repo)
    served_traffic(_never_fails)
    retries = Retries(clock=world.clock)

    def cycle() -> CycleReport:
        return reconcile_once(
            world.repo, None, _settings(world), make_context=_contexts(world), retries=retries
        )

    with world.locks.hold(USE_CASE):  # another reconciler holds it
        held = cycle()
    assert held.applied == {USE_CASE: Health.DEGRADED}
    assert "being reconciled by" in held.messages[USE_CASE]
    assert cycle().backing_off == (USE_CASE,)  # not hammered at once
    world.clock.sleep(60)  # the first backoff is 30 s
    assert cycle().applied == {USE_CASE: Health.PROGRESSING}


def test_a_permanent_failure_waits_for_a_new_desired_state(world: World) -> None:
    """A rollout rolled back is final for its desired state: later cycles do not retry it."""
    _only_npc_and_story(world.repo)
    retries = Retries(clock=world.clock)
    world.journal.request(USE_CASE, Control.ABORT)

    def cycle() -> CycleReport:
        return reconcile_once(
            world.repo, None, _settings(world), make_context=_contexts(world), retries=retries
        )

    aborted = _until_settled(world, cycle)
    assert aborted.applied == {USE_CASE: Health.DEGRADED}
    after = cycle()
    assert after.applied == {} and USE_CASE in after.in_sync  # rejected: nothing to do
    assert world.aliases() == {"champion": "2"}
