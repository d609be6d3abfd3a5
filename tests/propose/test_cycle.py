"""The controller's discovery job follows each use case's cron schedule, with an injected
clock: due once per fire time, remembered across restarts, and without a token it discovers
only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.propose.cycle import due, run_discovery_cycle
from reconciler.settings import Settings
from reconciler.spec.discovery import cron_trigger
from tests.propose.conftest import Project

MONDAY_6 = "0 6 * * 1"
START = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)  # a Monday, 05:00


def test_due_once_per_fire_time() -> None:
    schedules = {"npc": MONDAY_6, "story": "0 */6 * * *"}
    assert due(schedules, {}, now=datetime(2026, 11, 30, 5, 30, tzinfo=UTC), started=START) == []
    at_six = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    assert due(schedules, {}, now=at_six, started=START) == ["npc", "story"]
    ran = {"npc": at_six, "story": at_six}
    later = datetime(2026, 11, 30, 11, 59, tzinfo=UTC)
    assert due(schedules, ran, now=later, started=START) == []
    assert due(schedules, ran, now=datetime(2026, 11, 30, 12, 0, tzinfo=UTC), started=START) == [
        "story"
    ]
    next_week = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    assert "npc" in due(schedules, ran, now=next_week, started=START)


def test_weekdays_count_from_sunday_as_in_crontab() -> None:
    monday = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)
    for schedule, expected in (
        ("0 6 * * 1", 30),
        ("0 6 * * 0", 6),
        ("0 6 * * 7", 6),
        ("0 6 * * 2-4", 1),
        ("0 6 * * sat", 5),
    ):
        fire = cron_trigger(schedule).get_next_fire_time(None, monday)
        assert fire.day == expected, schedule


def test_a_cycle_without_a_token_discovers_and_remembers(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project.repo / "desired_state" / "npc-dialogue.yaml"
    path.write_text(path.read_text() + f'    schedule: "{MONDAY_6}"\n')
    monkeypatch.delenv("GITHUB_TOKEN")
    settings = Settings.from_environment(cwd=project.repo)
    said: list[str] = []
    at_six = datetime(2026, 11, 30, 6, 0, 30, tzinfo=UTC)
    names = run_discovery_cycle(project.repo, settings, now=at_six, started=START, say=said.append)
    assert names == ["npc-dialogue"]
    assert said == [
        "discovery: npc-dialogue: "
        + said[0].removeprefix("discovery: npc-dialogue: ").split(" (")[0]
        + " (set GITHUB_TOKEN to propose)"
    ]
    assert "local:models/catalog/npc-v2@" in said[0]
    # A restarted controller (new start time) does not run it again for the same fire time.
    again = run_discovery_cycle(project.repo, settings, now=at_six, started=at_six, say=said.append)
    assert again == []
    assert project.state.pulls == [] and project.github.requests == []
