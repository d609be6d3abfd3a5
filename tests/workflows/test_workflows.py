"""Every command the GitHub workflows run, run here as the workflow runs it.

Each workflow's `run:` steps are read from `.github/workflows/` and executed in order, as
GitHub runs them (`bash --noprofile --norc -eo pipefail`), in a scratch git repository that
plays the checkout, against a real MLflow store and state folder. The `${{ … }}` expressions
a job or step sets are given test values (a secret becomes the scratch store); an
expression this test does not know fails it, so a new one is looked at rather than ignored.

Steps that install the package (`pip install -e .`) are the only ones not run: `make` does
the same install before every test run. The CI workflow's one step is `bash .ci/run`, the
run these tests are part of. A step of any other kind fails `test_every_run_step_is_exercised`
until a test here runs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import git
import pytest
import yaml

from reconciler.plan.render import COMMENT_LIMIT
from reconciler.registry.mlflow_registry import MlflowRegistry
from tests.evaluation.stand_in_provider import serve_provider
from tests.propose.conftest import TOKEN as PROPOSE_TOKEN
from tests.propose.conftest import Project

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
# The use case these tests reconcile: an external model is registered, evaluated over its API
# (a stand-in provider) and served without training, so an apply converges in seconds.
USE_CASE = "story-generation"
PROVIDER_KEY = "sk-stand-in-provider-key"
INSTALL = re.compile(r"^(python3? -m venv \.venv|(python3? -m |\.venv/bin/)pip install .*)$")
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


@dataclass(frozen=True)
class Step:
    workflow: str
    job: str
    name: str
    script: str
    env: Mapping[str, str]


def _workflow(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(document, dict)
    return document


def _steps(workflow: str, job: str) -> list[dict[str, Any]]:
    steps = _workflow(workflow)["jobs"][job]["steps"]
    assert isinstance(steps, list)
    return steps


def _run_steps(workflow: str, job: str, expressions: Mapping[str, str]) -> list[Step]:
    """The job's `run:` steps in order, with job and step env resolved."""
    definition = _workflow(workflow)["jobs"][job]
    job_env = {k: _resolve(str(v), expressions) for k, v in definition.get("env", {}).items()}
    found = []
    for index, step in enumerate(definition["steps"]):
        if "run" not in step:
            continue
        step_env = {k: _resolve(str(v), expressions) for k, v in step.get("env", {}).items()}
        found.append(
            Step(
                workflow,
                job,
                str(step.get("name", f"step {index}")),
                str(step["run"]),
                {**job_env, **step_env},
            )
        )
    return found


def _resolve(value: str, expressions: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        expression = match[1]
        assert expression in expressions, f"this test does not know ${{{{ {expression} }}}}"
        return expressions[expression]

    return EXPRESSION.sub(replace, value)


def _is_install(script: str) -> bool:
    lines = [line.strip() for line in script.strip().splitlines() if line.strip()]
    return bool(lines) and all(INSTALL.match(line) for line in lines)


@dataclass
class Checkout:
    """A scratch repository with the desired state, as actions/checkout leaves it."""

    root: Path
    sha: str
    store: str
    state_dir: Path
    github_output: Path
    # The self-hosted runner's own environment: where the provider's key lives.
    runner_env: Mapping[str, str]

    def environment(self, step: Step) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "RECONCILER_STATE_DIR")
        }
        return {
            **env,
            # The runner's own variables that the scripts read.
            "GITHUB_SHA": self.sha,
            "GITHUB_OUTPUT": str(self.github_output),
            "GITHUB_SERVER_URL": "https://github.example",
            "GITHUB_REPOSITORY": "game/models",
            "GITHUB_RUN_ID": "4242",
            # `reconciler` on PATH, as after `pip install -e .` on a hosted runner.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            **self.runner_env,
            **step.env,
        }

    def run(self, step: Step) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step.script],
            cwd=self.root,
            env=self.environment(step),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def expressions(self) -> dict[str, str]:
        return {
            "secrets.MLFLOW_TRACKING_URI": self.store,
            "secrets.MLFLOW_TRACKING_TOKEN": "",
            # No serving gateway to ask: the plan reads the (empty) route table instead.
            "vars.RECONCILER_GATEWAY_URL": "",
            "vars.RECONCILER_STATE_DIR": str(self.state_dir),
            "github.event.pull_request.head.sha": self.sha,
        }


@pytest.fixture
def provider_url() -> Iterator[str]:
    with serve_provider(lambda body: "The bell tolls thrice; the quest begins at dawn.") as p:
        yield p.url


@pytest.fixture
def checkout(shipped_repo: Path, tmp_path: Path, provider_url: str) -> Checkout:
    for other in shipped_repo.glob("desired_state/*.yaml"):
        if other.name != f"{USE_CASE}.yaml":
            other.unlink()
    # `.venv/bin/reconciler` in the self-hosted runner's checkout: this test's environment.
    (shipped_repo / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    (shipped_repo / ".gitignore").write_text(".venv\n*.plan.json\nplan.md\n")
    repo = git.Repo.init(shipped_repo)
    repo.index.add([".gitignore", "desired_state", "policies", "reconciler"])
    actor = git.Actor("ci", "ci@example.com")
    commit = repo.index.commit("desired state", author=actor, committer=actor)
    output = tmp_path / "github_output"
    output.touch()
    return Checkout(
        root=shipped_repo,
        sha=commit.hexsha,
        store=f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}",
        state_dir=tmp_path / "state",
        github_output=output,
        runner_env={
            "STORY_PROVIDER_BASE_URL": provider_url,
            "STORY_PROVIDER_API_KEY": PROVIDER_KEY,
        },
    )


def _run_job(checkout: Checkout, workflow: str, job: str) -> dict[str, str]:
    """Run the job's steps in order; returns each run step's stdout by name."""
    outputs = {}
    for step in _run_steps(workflow, job, checkout.expressions()):
        if _is_install(step.script):
            continue
        result = checkout.run(step)
        assert result.returncode == 0, f"{workflow} {step.name}:\n{result.stdout}\n{result.stderr}"
        assert PROVIDER_KEY not in result.stdout + result.stderr
        outputs[step.name] = result.stdout
    return outputs


@pytest.mark.integration
def test_plan_workflow_validates_plans_and_uploads_what_the_comment_posts(
    checkout: Checkout,
) -> None:
    outputs = _run_job(checkout, "plan.yml", "plan")
    assert "Valid: 1 use cases" in outputs["Validate"]
    assert "changes=true" in checkout.github_output.read_text().splitlines()
    markdown = (checkout.root / "plan.md").read_text()
    assert markdown.startswith("### Model reconciler plan")
    assert f"commit {checkout.sha[:12]}" in markdown
    assert f"<b>{USE_CASE}</b>" in markdown
    assert len(markdown) <= COMMENT_LIMIT
    saved = json.loads((checkout.root / "pr.plan.json").read_text())
    assert saved["source"]["commit"] == checkout.sha
    # What the plan job uploads is what the comment job downloads and posts.
    [upload] = [s for s in _steps("plan.yml", "plan") if "upload-artifact" in s.get("uses", "")]
    uploaded = upload["with"]["path"].split()
    for path in uploaded:
        assert (checkout.root / path).is_file(), path
    comment_steps = _steps("plan.yml", "comment")
    [download] = [s for s in comment_steps if "download-artifact" in s.get("uses", "")]
    [sticky] = [s for s in comment_steps if "sticky-pull-request-comment" in s.get("uses", "")]
    assert download["with"]["name"] == upload["with"]["name"]
    assert sticky["with"]["path"] in uploaded


@pytest.mark.integration
def test_plan_workflow_fails_on_an_invalid_desired_state(checkout: Checkout) -> None:
    spec = checkout.root / "desired_state" / f"{USE_CASE}.yaml"
    spec.write_text(spec.read_text().replace("temperature: 0.9", "temperature: 9"))
    repo = git.Repo(checkout.root)
    repo.index.add([str(spec)])
    actor = git.Actor("ci", "ci@example.com")
    broken = repo.index.commit("too hot", author=actor, committer=actor).hexsha
    steps = _run_steps("plan.yml", "plan", checkout.expressions())
    [validate] = [s for s in steps if s.name == "Validate"]
    result = checkout.run(replace(validate, env={**validate.env, "HEAD_SHA": broken}))
    assert result.returncode == 1
    assert result.stdout.startswith(f"::error file=desired_state/{USE_CASE}.yaml,line="), (
        result.stdout + result.stderr
    )


@pytest.mark.integration
def test_apply_workflow_converges_and_a_second_run_changes_nothing(checkout: Checkout) -> None:
    outputs = _run_job(checkout, "apply.yml", "apply")
    assert USE_CASE in outputs["Status"]
    model = MlflowRegistry(checkout.store).snapshot([USE_CASE])[USE_CASE]
    assert model is not None and "champion" in model.aliases
    assert checkout.state_dir.joinpath("state.db").is_file()
    # Level-triggered: the scheduled run finds nothing left to do.
    again = _run_job(checkout, "apply.yml", "apply")
    assert "Synced" in again["Status"], again["Status"]


@pytest.mark.integration
def test_propose_workflow_discovers_and_opens_one_pull_request(project: Project) -> None:
    """Discover then propose, as the scheduled run does, against a stand-in GitHub."""
    expressions = {
        "secrets.MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"],
        "secrets.MLFLOW_TRACKING_TOKEN": "",
        "vars.RECONCILER_GATEWAY_URL": "",
        "secrets.RECONCILER_PROPOSE_TOKEN || secrets.GITHUB_TOKEN": PROPOSE_TOKEN,
        "inputs.dry-run && '--dry-run' || ''": "",
        "inputs.use-cases": "",
    }
    outputs = {}
    for step in _run_steps("propose.yml", "propose", expressions):
        if _is_install(step.script):
            continue
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **step.env,
        }
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step.script],
            cwd=project.repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"{step.name}:\n{result.stdout}\n{result.stderr}"
        assert PROPOSE_TOKEN not in result.stdout + result.stderr
        outputs[step.name] = result.stdout
    assert "npc-v2" in outputs["Discover"]
    pulls = project.state.pulls
    assert len(pulls) == 1, outputs
    assert "npc-dialogue" in pulls[0]["title"], pulls
    assert any(b.startswith("reconciler/") for b in project.remote_branches())


def test_every_run_step_is_exercised() -> None:
    """A run step is an install, `.ci/run`, or a step one of the tests above runs."""
    exercised = {
        ("plan.yml", "plan"): {"Validate", "Plan"},
        ("apply.yml", "apply"): {"Validate", "Apply", "Guardrail watch", "Status"},
        ("propose.yml", "propose"): {"Discover", "Propose"},
    }
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        for job in _workflow(path.name)["jobs"]:
            for step in _run_steps(path.name, job, _AnyExpression()):
                if _is_install(step.script) or step.script.strip() == "bash .ci/run":
                    continue
                covered = exercised.get((path.name, job), set())
                assert step.name in covered, (
                    f"{path.name} job {job} step {step.name!r} runs {step.script.strip()!r}, "
                    "which no test runs: add it to tests/workflows"
                )


def test_ci_runs_the_suite_this_test_is_part_of() -> None:
    [step] = _run_steps("ci.yml", "test", _AnyExpression())
    assert step.script.strip() == "bash .ci/run"
    ci_run = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert ci_run.rstrip().endswith("make test")
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert re.search(r"^test: .*\blint-workflows\b", makefile, re.M)


class _AnyExpression(dict[str, str]):
    """Every expression resolves (to its own text): for reading steps, not running them."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return f"<{key}>"


def test_installs_are_the_package_make_installs() -> None:
    """The install steps that are not run install this package, as `make` does."""
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        for job in _workflow(path.name)["jobs"]:
            for step in _run_steps(path.name, job, _AnyExpression()):
                if _is_install(step.script) and "pip install" in step.script:
                    assert re.search(r"pip install (--quiet )?-e \.", step.script), step.script
