"""`make demo`'s main job, end to end: from nothing to every shipped use case converged.

The demo runs as a user runs it (`python -m reconciler.demo --repo`, then
`reconciler plan --detailed-exitcode`), on a copy of the shipped desired state, with
`MLFLOW_TRACKING_URI` and `RECONCILER_STATE_DIR` pointing into the test's folder. The tiny base
model is the session's (the demo builds it when missing; the builder is tested in
`tests/training`) and the LoRA use case trains for a few steps only; everything else is the
shipped configuration: real MLflow, a real gateway with guardrails and players, a local
provider for the paid model, canaries through every step.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import lineage
from reconciler.registry.mlflow_registry import MlflowRegistry

# Started processes, players and scaled bakes: with the other live tests on one `make test`
# worker (pytest-xdist), so two of them never compete for the two cores.
pytestmark = pytest.mark.xdist_group("live")

PLAN_FLAGS = ("--detailed-exitcode", "--output", "json")
USE_CASES = ("faction-decision", "npc-dialogue", "story-generation")


def _python(
    args: list[str], cwd: Path, env: dict[str, str], *, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.integration
def test_the_demo_converges_from_nothing_and_the_next_plan_is_empty(
    shipped_repo: Path, tmp_path: Path, tiny_base_model: Path
) -> None:
    shutil.copytree(tiny_base_model, shipped_repo / "models" / "tiny-base")
    spec = shipped_repo / "desired_state" / "npc-dialogue.yaml"
    spec.write_text(spec.read_text().replace("{epochs: 3,", "{epochs: 1, maxSteps: 8,"))
    tracking = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking,
        "RECONCILER_STATE_DIR": str(tmp_path / "state"),
    }
    env.pop("STORY_PROVIDER_BASE_URL", None)
    env.pop("STORY_PROVIDER_API_KEY", None)

    # Not run inside the copy: its reconciler/spec/schema.json folder would shadow the package.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    demo = _python(
        ["-m", "reconciler.demo", "--repo", str(shipped_repo)], elsewhere, env, timeout=540
    )
    assert demo.returncode == 0, demo.stdout[-6000:] + demo.stderr[-3000:]
    for name in USE_CASES:
        assert any(
            line.startswith(name) and "Synced" in line and "Healthy" in line
            for line in demo.stdout.splitlines()
        ), demo.stdout[-3000:]
    # Every trained use case went through every canary step before its promotion.
    assert "npc-dialogue: analysis at 100%: passed" in demo.stdout
    assert "faction-decision: analysis at 100%: passed" in demo.stdout
    assert "demo-key-not-a-secret" not in demo.stdout + demo.stderr

    replan = _python(
        [*("-m", "reconciler.cli", "plan", "--repo", str(shipped_repo)), *PLAN_FLAGS],
        elsewhere,
        env,
        timeout=120,
    )
    assert replan.returncode == 0, replan.stdout + replan.stderr
    plan = json.loads(replan.stdout)
    assert {c["action"] for c in plan["changes"]} == {"noop"}

    # Last, discovery: a newer tiny model in the local catalog is ranked, and the pull request
    # that would propose it is shown, with evidence against the live champion; nothing changes.
    catalog = _python(
        ["-m", "reconciler.demo.catalog", "--repo", str(shipped_repo), "--pretrain-steps", "20"],
        elsewhere,
        env,
        timeout=300,
    )
    assert catalog.returncode == 0, catalog.stderr[-3000:]
    found = _python(
        ["-m", "reconciler.cli", "discover", "--repo", str(shipped_repo), "--output", "json"],
        elsewhere,
        env,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr[-3000:]
    [npc] = json.loads(found.stdout)["use_cases"]
    assert npc["name"] == "npc-dialogue"
    [candidate] = npc["candidates"]
    assert candidate["id"] == "models/catalog/tiny-npc-v2"
    assert candidate["eligible"] and candidate["better"], candidate
    assert set(candidate["breakdown"]) == {
        "quality",
        "resourceEfficiency",
        "size",
        "communityHealth",
        "recency",
        "license",
    }
    proposed = _python(
        ["-m", "reconciler.cli", "propose", "--repo", str(shipped_repo), "--dry-run"],
        elsewhere,
        env,
        timeout=600,
    )
    assert proposed.returncode == 0, proposed.stdout[-3000:] + proposed.stderr[-3000:]
    assert "npc-dialogue" in proposed.stdout
    # The evidence was measured (a candidate may fail the gate, but the gate must have run).
    assert "pre-evaluation could not run" not in proposed.stdout, proposed.stdout[-3000:]
    assert (
        "+      path: models/catalog/tiny-npc-v2" in proposed.stdout
        or "is not proposed: " in proposed.stdout
    ), proposed.stdout[-3000:]
    final = _python(
        [*("-m", "reconciler.cli", "plan", "--repo", str(shipped_repo)), *PLAN_FLAGS],
        elsewhere,
        env,
        timeout=120,
    )
    assert final.returncode == 0, "a dry run changes nothing: the plan is still empty"

    # The environment was honoured: the store is the one named, not ./mlruns or ./.reconciler.
    assert not (elsewhere / "mlruns").exists() and not (elsewhere / ".reconciler").exists()
    assert not (shipped_repo / "mlruns").exists()
    registry = MlflowRegistry(tracking)
    models = registry.snapshot(["npc-dialogue", "faction-decision", "story-generation"])
    for name in ("npc-dialogue", "faction-decision"):
        model = models[name]
        assert model is not None
        champion = model.version(model.aliases["champion"])
        assert champion is not None and champion.tag(lineage.ROLE) == "trained"
        assert model.aliases.get("previous") is not None
