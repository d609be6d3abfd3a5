"""``reconciler guardrails check`` and ``report`` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import main


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_check_writes_one_object_per_line_and_reports_malformed_lines(
    shipped_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _jsonl(
        tmp_path / "outputs.jsonl",
        [
            json.dumps({"text": "The shop closes at dusk.", "speaker": "merchant"}),
            "{not json",
            json.dumps({"text": "Email me: jo@example.org"}),
            "",
            json.dumps({"words": "no text key"}),
            json.dumps({"text": "You should kill yourself."}),
        ],
    )
    code = main(["guardrails", "check", "--repo", str(shipped_repo), "--input", str(source)])
    captured = capsys.readouterr()
    assert code == 1
    results = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["line"] for r in results] == [1, 3, 6]
    assert [r["flagged"] for r in results] == [False, True, True]
    assert results[1]["categories"] == ["pii"] and results[1]["severity"] == "high"
    assert "self_harm" in results[2]["categories"] and results[2]["severity"] == "critical"
    assert f"{source}:2: not valid JSON" in captured.err
    assert f"{source}:5: expected an object" in captured.err


def test_check_with_one_policy_and_text_output(
    shipped_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _jsonl(
        tmp_path / "outputs.jsonl",
        [json.dumps({"text": "Call me at (415) 555-0132."}), json.dumps({"text": "Hello!"})],
    )
    code = main(
        [
            "guardrails", "check", "--repo", str(shipped_repo), "--policy", "player-safety",
            "--input", str(source), "--output", "text",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith("1: FLAGGED high -> block_output [pii]")
    assert out[1] == "2: pass"


def test_check_refuses_an_unknown_policy(
    shipped_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _jsonl(tmp_path / "outputs.jsonl", [json.dumps({"text": "Hi"})])
    code = main(
        [
            "guardrails",
            "check",
            "--repo",
            str(shipped_repo),
            "--policy",
            "nope",
            "--input",
            str(source),
        ]
    )
    assert code == 1
    assert "no policy 'nope'" in capsys.readouterr().err


def test_report_reads_the_state_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.guardrails.store import ViolationStore
    from reconciler.guardrails.verdicts import Finding, Verdict
    from reconciler.spec.model import Intervention, Severity
    from reconciler.state_store.database import StateDatabase

    monkeypatch.setenv("RECONCILER_STATE_DIR", str(tmp_path / "state"))
    finding = Finding("player-safety", "personal-data", "pii", Severity.HIGH,
                      Intervention.BLOCK_OUTPUT, 1.0, "email")  # fmt: skip
    ViolationStore(StateDatabase(f"sqlite:///{tmp_path / 'state' / 'state.db'}")).record(
        use_case="npc-dialogue", version="2", text="mail a@b.io", verdict=Verdict((finding,))
    )
    assert main(["guardrails", "report", "npc-dialogue", "--output", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["total"] == 1 and summary["byCategory"] == {"pii": 1}
    assert summary["latest"][0]["sample"] == "mail [EMAIL]"
    assert main(["guardrails", "report", "npc-dialogue"]) == 0
    assert "1 violation(s) recorded for npc-dialogue." in capsys.readouterr().out


def test_validate_and_the_guardrails_cli_do_not_import_torch() -> None:
    script = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "import reconciler.guardrails.cli, reconciler.spec.guardrail_parameters\n"
        "main(['validate', '--output', 'json'])\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", script], cwd=root, check=True, capture_output=True)


def test_prepare_builds_what_the_checks_need_and_names_it(
    shipped_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.guardrails.static_embeddings import static_cache_dir

    assert main(["guardrails", "prepare", "--repo", str(shipped_repo)]) == 0
    out = capsys.readouterr().out
    assert "prepared: " in out and "player-safety" in out and "game-hazards" in out
    assert "encoder runtime: onnx" in out
    assert f"cache: {static_cache_dir()}" in out
    listed = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert any(name.endswith(".onnx") for name in listed), out
    assert any(name.endswith("-pca256/") for name in listed), out
    for name in listed:
        assert (static_cache_dir() / name.rstrip("/")).exists()


def test_prepare_names_an_unknown_policy(
    shipped_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["guardrails", "prepare", "--repo", str(shipped_repo), "--policy", "nope"])
    assert code != 0
    assert "no policy 'nope'" in capsys.readouterr().err
