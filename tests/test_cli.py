"""The command line as a user runs it: exit codes, messages, saved plans, light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import git
import pytest

from reconciler.cli import main
from reconciler.plan import planfile

ROOT = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


MISSING_COMMIT = "0" * 40  # well-formed, so git takes it on trust until it is read


def committed(shipped_repo: Path) -> git.Repo:
    repo = git.Repo.init(shipped_repo, initial_branch="main")
    repo.git.add(A=True)
    repo.index.commit("desired state")
    return repo


def test_validate_shipped_state(capsys: pytest.CaptureFixture[str], shipped_repo: Path) -> None:
    code, out, _ = run(capsys, "validate", "--repo", str(shipped_repo))
    assert code == 0
    assert "Valid: 3 use cases, 3 guardrail policies" in out


def test_validate_malformed_file_names_file_and_line(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path
) -> None:
    path = shipped_repo / "desired_state" / "npc-dialogue.yaml"
    path.write_text(path.read_text().replace("temperature: 0.8", "temperature: hot"))
    code, _, err = run(capsys, "validate", "--repo", str(shipped_repo))
    assert code == 1
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "hot" in text)
    assert f"desired_state/npc-dialogue.yaml:{line}:18: spec.generation.temperature:" in err
    assert "Traceback" not in err


def test_validate_json_and_github_outputs(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path
) -> None:
    (shipped_repo / "desired_state" / "broken.yaml").write_text("kind: [\n")
    code, out, _ = run(capsys, "validate", "--repo", str(shipped_repo), "--output", "json")
    assert code == 1
    document = json.loads(out)
    assert document["valid"] is False
    assert document["diagnostics"][0]["file"] == "desired_state/broken.yaml"
    code, out, _ = run(capsys, "validate", "--repo", str(shipped_repo), "--output", "github")
    assert code == 1
    assert out.startswith("::error file=desired_state/broken.yaml,line=")


def test_schema_prints_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert out == (ROOT / "reconciler/spec/schema.json").read_text()


def test_plan_on_empty_registry_lists_every_use_case_and_exits_2(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path, isolated_env: dict[str, str]
) -> None:
    code, out, _ = run(
        capsys, "plan", "--repo", str(shipped_repo), "--output", "json", "--detailed-exitcode"
    )
    assert code == 2
    document = json.loads(out)
    assert {c["use_case"] for c in document["changes"]} == {
        "npc-dialogue",
        "faction-decision",
        "story-generation",
    }
    assert document["summary"]["changes"] > 0


def test_plan_without_detailed_exitcode_exits_0(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path, isolated_env: dict[str, str]
) -> None:
    code, out, _ = run(capsys, "plan", "--repo", str(shipped_repo))
    assert code == 0
    assert "Plan: 18 changes" in out


def test_plan_markdown_and_saved_plan(
    capsys: pytest.CaptureFixture[str],
    shipped_repo: Path,
    isolated_env: dict[str, str],
    tmp_path: Path,
) -> None:
    saved = tmp_path / "out.plan.json"
    code, out, err = run(
        capsys, "plan", "--repo", str(shipped_repo), "--output", "markdown", "--out", str(saved)
    )
    assert code == 0
    assert out.startswith("### Model reconciler plan")
    assert f"Saved the plan to {saved}" in err
    plan = planfile.load(saved)
    assert plan.summary()["changes"] == 18


def test_plan_from_git_ref_records_the_commit(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path, isolated_env: dict[str, str]
) -> None:
    repo = committed(shipped_repo)
    code, out, _ = run(
        capsys, "plan", "--repo", str(shipped_repo), "--ref", "main", "--output", "json"
    )
    assert code == 0
    assert json.loads(out)["source"]["commit"] == repo.head.commit.hexsha


def test_validate_a_commit_that_is_not_in_the_repository_is_a_user_error(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path
) -> None:
    committed(shipped_repo)
    code, out, err = run(capsys, "validate", "--repo", str(shipped_repo), "--ref", MISSING_COMMIT)
    assert code == 1
    assert out == ""
    assert err == (
        f"error: unknown git ref '{MISSING_COMMIT}': no commit by that name in the repository "
        f"at {shipped_repo}\n"
    )


def test_apply_of_a_saved_plan_naming_a_missing_commit_is_a_user_error(
    capsys: pytest.CaptureFixture[str],
    shipped_repo: Path,
    isolated_env: dict[str, str],
    tmp_path: Path,
) -> None:
    committed(shipped_repo)
    saved = tmp_path / "out.plan.json"
    code, _, _ = run(
        capsys, "plan", "--repo", str(shipped_repo), "--ref", "main", "--out", str(saved)
    )
    assert code == 0
    document = json.loads(saved.read_text())
    document["source"]["commit"] = MISSING_COMMIT
    saved.write_text(json.dumps(document))
    code, out, err = run(capsys, "apply", str(saved), "--repo", str(shipped_repo), "--auto-approve")
    assert code == 1
    assert out == ""
    assert err == (
        f"error: cannot read the desired state the saved plan {saved} was made from "
        f"(unknown git ref '{MISSING_COMMIT}': no commit by that name in the repository "
        f"at {shipped_repo}); run `reconciler plan` again\n"
    )
    assert not (Path(isolated_env["RECONCILER_STATE_DIR"]) / "state.db").exists()


def test_plan_one_use_case_and_unknown_use_case(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path, isolated_env: dict[str, str]
) -> None:
    code, out, _ = run(
        capsys,
        "plan",
        "--repo",
        str(shipped_repo),
        "--use-case",
        "story-generation",
        "--output",
        "json",
    )
    assert code == 0
    assert {c["use_case"] for c in json.loads(out)["changes"]} == {"story-generation"}
    code, _, err = run(capsys, "plan", "--repo", str(shipped_repo), "--use-case", "nope")
    assert code == 1
    assert "unknown use case nope" in err


def test_plan_with_invalid_desired_state_exits_1(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path, isolated_env: dict[str, str]
) -> None:
    (shipped_repo / "desired_state" / "bad.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Nope\n"
    )
    code, out, err = run(capsys, "plan", "--repo", str(shipped_repo), "--detailed-exitcode")
    assert code == 1
    assert out == ""
    assert "desired_state/bad.yaml:2:7: kind:" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "--bogus"],
        ["nope"],
        ["plan", "--output", "yaml"],
        ["plan", "--repo", "/does/not/exist"],
    ],
)
def test_usage_errors_exit_1_not_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert "Traceback" not in err


def test_unreachable_registry_exits_1_with_redacted_uri(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://admin:hunter2@127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    code, _, err = run(capsys, "plan", "--repo", str(shipped_repo))
    assert code == 1
    assert "error: cannot read the model registry at http://***@127.0.0.1:9" in err
    assert "hunter2" not in err


_IMPORT_PROBE = """
import sys
from reconciler.cli import main
code = main(sys.argv[1:])
heavy = [
    m for m in ("torch", "transformers", "sentence_transformers", "peft", "ray") if m in sys.modules
]
print("HEAVY=" + ",".join(heavy))
sys.exit(code)
"""


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_validate_and_plan_never_import_torch_or_ray(
    command: str,
    shipped_repo: Path,
    isolated_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECONCILER_JOBS", "ray")  # jobs on Ray: still nothing of Ray to plan
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, command, "--repo", str(shipped_repo)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stdout


def test_plan_out_into_a_missing_folder_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
    shipped_repo: Path,
    isolated_env: dict[str, str],
    tmp_path: Path,
) -> None:
    target = tmp_path / "missing" / "dir" / "x.json"
    code, out, err = run(capsys, "plan", "--repo", str(shipped_repo), "--out", str(target))
    assert code == 1
    assert out == ""  # refused before planning, so no plan is shown as if it were saved
    assert err == (
        f"error: cannot save the plan to {target}: folder {target.parent} does not exist\n"
    )
    assert not (tmp_path / "missing").exists()


def test_plan_out_that_cannot_be_written_names_the_os_reason(
    capsys: pytest.CaptureFixture[str],
    shipped_repo: Path,
    isolated_env: dict[str, str],
    tmp_path: Path,
) -> None:
    # The save writes a temporary file beside the target first; a folder in its place makes
    # the write fail even for root, for whom permissions do not.
    target = tmp_path / "x.json"
    (tmp_path / ".x.json.tmp").mkdir()
    code, out, err = run(capsys, "plan", "--repo", str(shipped_repo), "--out", str(target))
    assert code == 1
    assert "Plan: 18 changes" in out
    assert f"error: cannot save the plan to {target}: Is a directory" in err
    assert "internal error" not in err
    assert not target.exists()


def test_controller_refuses_a_bad_interval_before_doing_anything(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path
) -> None:
    code, _, err = run(
        capsys, "controller", "--once", "--interval", "soon", "--repo", str(shipped_repo)
    )
    assert code == 1
    assert "soon" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["pause", "resume", "abort", "promote", "history"])
def test_rollout_commands_refuse_an_unknown_use_case(
    capsys: pytest.CaptureFixture[str],
    shipped_repo: Path,
    isolated_env: dict[str, str],
    command: str,
) -> None:
    code, _, err = run(capsys, command, "no-such-thing", "--repo", str(shipped_repo))
    assert code == 1
    assert "unknown use case no-such-thing" in err and "npc-dialogue" in err
    assert not (Path(isolated_env["RECONCILER_STATE_DIR"]) / "state.db").exists()


def test_pause_with_no_rollout_waits_for_the_next_one(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path, isolated_env: dict[str, str]
) -> None:
    code, out, _ = run(capsys, "pause", "npc-dialogue", "--repo", str(shipped_repo))
    assert code == 0
    assert "no rollout is in progress" in out and "the next one holds" in out


@pytest.mark.parametrize("command", ["resume", "abort", "promote"])
def test_controls_for_one_rollout_are_refused_when_none_runs(
    capsys: pytest.CaptureFixture[str],
    shipped_repo: Path,
    isolated_env: dict[str, str],
    command: str,
) -> None:
    """Kept for later, a promote would skip the analysis of a candidate nobody has seen."""
    from reconciler.apply.journal import Journal
    from reconciler.state_store.database import StateDatabase

    code, _, err = run(capsys, command, "npc-dialogue", "--repo", str(shipped_repo))

    assert code == 1
    assert "no rollout of npc-dialogue is in progress" in err
    state = Path(isolated_env["RECONCILER_STATE_DIR"]) / "state.db"
    journal = Journal(StateDatabase(f"sqlite:///{state}"))
    assert journal.pending_control("npc-dialogue") is None


def test_history_json_lists_champion_changes_and_judgements(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path, isolated_env: dict[str, str]
) -> None:
    from reconciler.apply.journal import Cause, Journal
    from reconciler.rollout.analysis import Metric, WindowMetrics, measure, thresholds_of
    from reconciler.rollout.state import Judgement
    from reconciler.spec.model import AnalysisMetrics
    from reconciler.state_store.database import StateDatabase
    from tests.rollout.test_machine import busy, new_rollout, rollout_spec

    state = Path(isolated_env["RECONCILER_STATE_DIR"]) / "state.db"
    journal = Journal(StateDatabase(f"sqlite:///{state}"))
    journal.record_champion("npc-dialogue", "3", "2", Cause.COMMIT, "commit abc")
    thresholds = thresholds_of(AnalysisMetrics.model_validate({"errorRate": {"max": 0.01}}))
    analysis = measure(WindowMetrics(requests=40, errors=2), thresholds, 20)
    state = new_rollout(rollout_spec(), busy()).state
    judgement = Judgement(
        use_case="npc-dialogue",
        digest=state.digest,
        candidate="3",
        champion="2",
        stage="25%",
        weight=25,
        final=False,
        window_start=1_800_000_000.0,
        window_end=1_800_001_800.0,
        analysis=analysis,
        decision="failed: roll back",
    )
    journal.save_rollout(state, judgement)

    code, out, _ = run(
        capsys, "history", "npc-dialogue", "--repo", str(shipped_repo), "--output", "json"
    )

    assert code == 0
    document = json.loads(out)
    assert document["champion_changes"][0] | {"at": None} == {
        "use_case": "npc-dialogue",
        "at": None,
        "version": "3",
        "previous": "2",
        "cause": "commit",
        "detail": "commit abc",
    }
    (judged,) = document["judgements"]
    assert (judged["stage"], judged["outcome"], judged["decision"]) == (
        "25%",
        "Failed",
        "failed: roll back",
    )
    (measured,) = judged["measurements"]
    assert measured["metric"] == Metric.ERROR_RATE.value
    assert (measured["value"], measured["sample_size"], measured["outcome"]) == (0.05, 40, "Failed")
    assert measured["threshold"] == {"metric": "errorRate", "bound": "max", "limit": 0.01}
    code, text, _ = run(capsys, "history", "npc-dialogue", "--repo", str(shipped_repo))
    assert "analysis of 3 vs 2 at 25%: Failed (40 requests) → failed: roll back" in text
    assert "errorRate 0.05 (max 0.01, n=40): Failed" in text
