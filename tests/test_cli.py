"""The CLI shell: help lists commands, user errors are one line with exit 1, --debug shows tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reactcli import atomic
from reactcli.cli import COMMANDS

EXPECTED = {
    "synth",
    "preprocess",
    "train-tokenizer",
    "train-predictor",
    "generate",
    "evaluate",
    "fid",
    "baselines",
    "compare",
    "render",
    "package-submission",
    "live",
}


def react(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from reactcli.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_every_command() -> None:
    assert {name for name, _ in COMMANDS} == EXPECTED
    result = react("--help")
    assert result.returncode == 0
    for name in EXPECTED:
        assert name in result.stdout


def test_user_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[tokenizer]\nwidth = 3\n")
    result = react("preprocess", "--data", str(tmp_path), "--config", str(bad))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "tokenizer.width" in lines[0] and "bad.toml" in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_flag_shows_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[tokenizer]\nwidth = 3\n")
    result = react("--debug", "preprocess", "--data", str(tmp_path), "--config", str(bad))
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic.save_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("crash mid-write")
    assert target.read_text().strip().startswith("{")
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_outputs_get_normal_permissions(tmp_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        atomic.save_json(tmp_path / "x.json", {})
    finally:
        os.umask(umask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644


def test_compare_reads_metrics_and_baselines(tmp_path: Path) -> None:
    import json

    run = tmp_path / "myrun"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"FRC": 0.5, "FRD": 60.0, "FRDiv": 0.02}))
    (run / "baselines.json").write_text(json.dumps({"rows": {"Mime": {"FRC": 0.25, "FRD": 70.0}}}))
    result = react("compare", str(run / "metrics.json"), str(run / "baselines.json"))
    assert result.returncode == 0, result.stderr
    assert "myrun" in result.stdout and "Mime" in result.stdout
    assert "0.5000" in result.stdout and "70.00" in result.stdout
    (run / "other.json").write_text("[1, 2]")
    bad = react("compare", str(run / "other.json"))
    assert bad.returncode == 1 and "other.json: expected the JSON written by" in bad.stderr
