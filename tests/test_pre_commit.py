"""The pre-commit hooks: local tools from the project's .venv, run for real by pre-commit.

Every hook is a `repo: local` hook whose entry is a program of this environment, so nothing is
downloaded. pre-commit itself runs them: over the project (all pass, as `make test` does), and
over a scratch repository whose desired state and Python are broken (each hook fails, naming
the file).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import git
import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG = PROJECT_ROOT / ".pre-commit-config.yaml"
HOOKS = ("reconciler-validate", "desired-state-schema", "ruff-check", "ruff-format", "mypy")


def _hooks() -> list[dict[str, object]]:
    config = yaml.safe_load(CONFIG.read_text())
    return [hook for repo in config["repos"] for hook in repo["hooks"]]


def _pre_commit(
    cwd: Path, home: Path, *args: str, skip: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "SKIP": skip}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--color", "never", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_every_hook_is_local_and_runs_a_program_of_this_environment() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = _hooks()
    assert tuple(hook["id"] for hook in hooks) == HOOKS
    bin_dir = Path(sys.executable).parent
    for hook in hooks:
        assert hook["language"] == "unsupported", hook["id"]  # runs as is: nothing installed
        program = str(hook["entry"]).split()[0]
        assert program.startswith(".venv/bin/"), hook["id"]
        assert (bin_dir / program.removeprefix(".venv/bin/")).is_file(), program


@pytest.mark.integration
def test_the_hooks_pass_on_the_project(tmp_path: Path) -> None:
    if not (PROJECT_ROOT / ".venv").is_dir():
        pytest.fail("the hooks run .venv/bin/...: create it with `make .venv/.installed`")
    result = _pre_commit(PROJECT_ROOT, tmp_path / "pre-commit-home", "--all-files")
    assert result.returncode == 0, result.stdout + result.stderr
    for hook in _hooks():
        assert f"{hook['name']}." in result.stdout


@pytest.mark.integration
def test_the_hooks_refuse_a_broken_desired_state_and_broken_python(
    shipped_repo: Path, tmp_path: Path
) -> None:
    shutil.copy(CONFIG, shipped_repo / CONFIG.name)
    (shipped_repo / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    (shipped_repo / ".gitignore").write_text(".venv\n")
    spec = shipped_repo / "desired_state" / "npc-dialogue.yaml"
    spec.write_text(spec.read_text().replace("temperature: 0.8", "temperature: hot"))
    (shipped_repo / "tool.py").write_text("import os\ndef f( ):\n    return 1\n")
    repo = git.Repo.init(shipped_repo)
    repo.git.add(all=True)

    # mypy checks the project's package (pyproject.toml), which this scratch repository lacks.
    result = _pre_commit(shipped_repo, tmp_path / "home", "--all-files", skip="mypy")
    assert result.returncode == 1
    out = result.stdout
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if "hot" in text)
    assert f"desired_state/npc-dialogue.yaml:{line}:18: spec.generation.temperature:" in out
    assert "$.spec.generation.temperature: 'hot' is not of type 'number'" in out
    assert "F401 [*] `os` imported but unused\n --> tool.py:1:8" in out  # ruff check
    assert "1 file would be reformatted" in out  # ruff format --check
    for hook_id in HOOKS[:4]:
        assert f"- hook id: {hook_id}" in out, hook_id
