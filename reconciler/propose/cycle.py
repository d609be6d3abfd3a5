"""The controller's discovery job: discover and propose for the use cases whose
`spec.discovery.schedule` (cron, UTC) has come round since their last run.

`due` is pure (schedules, last runs and the clock in, names out); `run_discovery_cycle` reads
the desired state, runs `propose` for the due use cases (or only `discover` when no
GITHUB_TOKEN is set: nothing could be proposed) and records when each ran in the state folder,
so a restarted controller neither repeats nor skips a scheduled run. Failures become the
report, never an exception: the controller keeps running.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.settings import Settings
from reconciler.spec.discovery import cron_trigger

LAST_RUNS_FILE = "discovery-schedule.json"


def due(
    schedules: Mapping[str, str],
    last_runs: Mapping[str, datetime],
    *,
    now: datetime,
    started: datetime,
) -> list[str]:
    """Use cases whose cron has a fire time after their last run (or the controller's start)
    and not after `now`."""
    found = []
    for name, schedule in sorted(schedules.items()):
        trigger = cron_trigger(schedule)
        since = last_runs.get(name, started) + timedelta(microseconds=1)
        upcoming = trigger.get_next_fire_time(None, since)
        if upcoming is not None and upcoming <= now:
            found.append(name)
    return found


def _read_last_runs(path: Path) -> dict[str, datetime]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    runs = {}
    for name, text in raw.items() if isinstance(raw, dict) else []:
        try:
            runs[str(name)] = datetime.fromisoformat(str(text))
        except ValueError:
            continue
    return runs


def _write_last_runs(path: Path, runs: Mapping[str, datetime]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps({k: v.isoformat() for k, v in sorted(runs.items())}, indent=2))
    os.replace(staged, path)


def run_discovery_cycle(
    repo: Path,
    settings: Settings,
    *,
    now: datetime,
    started: datetime,
    say: Callable[[str], None],
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Discover (and propose, with a token) for the use cases that are due; their names."""
    from reconciler.discovery.selection import load_valid

    env = os.environ if environ is None else environ
    try:
        desired = load_valid(repo)
    except ReconcilerError as exc:
        say(f"discovery: skipped: {str(exc).splitlines()[0]}")
        return []
    schedules = {
        u.name: u.spec.discovery.schedule
        for u in desired.use_cases
        if u.spec.discovery is not None and u.spec.discovery.schedule
    }
    if not schedules:
        return []
    path = settings.state_dir / LAST_RUNS_FILE
    last_runs = _read_last_runs(path)
    names = due(schedules, last_runs, now=now, started=started)
    if not names:
        return []
    try:
        if env.get("GITHUB_TOKEN"):
            _propose(repo, settings, names, env, now, say)
        else:
            _discover(repo, names, env, now, say)
    except ReconcilerError as exc:
        say(f"discovery for {', '.join(names)} failed: {exc}")
    _write_last_runs(path, {**last_runs, **dict.fromkeys(names, now)})
    return names


def _propose(
    repo: Path,
    settings: Settings,
    names: list[str],
    env: Mapping[str, str],
    now: datetime,
    say: Callable[[str], None],
) -> None:
    from reconciler.propose.context import ProposeOptions, open_context
    from reconciler.propose.proposals import run

    options = ProposeOptions(repo=repo, names=tuple(names))
    context, use_cases = open_context(options, settings=settings, environ=env, now=now, say=say)
    try:
        run(context, use_cases)
    finally:
        if context.forge is not None:
            context.forge.__exit__()


def _discover(
    repo: Path,
    names: list[str],
    env: Mapping[str, str],
    now: datetime,
    say: Callable[[str], None],
) -> None:
    from reconciler.discovery.discover import discover_use_case
    from reconciler.discovery.selection import discoverable_use_cases

    desired, use_cases = discoverable_use_cases(repo, names)
    for use_case in use_cases:
        found = discover_use_case(use_case, desired, repo=repo, environ=env, now=now)
        best = found.best
        shown = best.candidate.label if best else "none better than the current base"
        say(f"discovery: {use_case.name}: {shown} (set GITHUB_TOKEN to propose)")
