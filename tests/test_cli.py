"""The CLI shell: help lists commands, user errors are one line with exit 1, --debug shows tracebacks."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reactcli import atomic
from reactcli.cli import COMMANDS
from reactcli.errors import ReactError

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


# -- failures that are not ReactErrors: the operating system's, and Ctrl-C --------------------------------
def _one_line(stderr: str) -> str:
    """The one line a failure prints; a progress bar's last frame (``name  3/40 0:00:01``) may precede it."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    assert lines and all(re.search(r"\d+/\d+ +\d+:\d\d:\d\d", line) for line in lines[:-1]), stderr
    return lines[-1]


def _readonly_prefix() -> list[str]:
    """A command prefix under which a mode-0555 folder really refuses writes (EACCES).

    root ignores file modes through CAP_DAC_OVERRIDE, so as root the command runs with that
    capability dropped from its bounding set (util-linux ``setpriv``).
    """
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot refuse writes")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.fixture()
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def react_readonly(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_readonly_prefix(), sys.executable, "-c", "from reactcli.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_read_only_out_of_synth_is_one_line(readonly_dir: Path) -> None:
    result = react_readonly("synth", "--out", str(readonly_dir / "data"), "--video", "none")
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert line.startswith(f"error: {readonly_dir / 'data'}") and "Permission denied" in line, line
    debug = react_readonly("--debug", "synth", "--out", str(readonly_dir / "data"), "--video", "none")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "Permission denied" in debug.stderr


def test_read_only_out_of_evaluate_baselines_and_fid_is_refused_before_the_work(
    readonly_dir: Path, synth_root: Path, tmp_path: Path
) -> None:
    """These commands check ``--out`` (fid: ``--json``) first: the error names the file and comes
    before any metric (fid: before its weights are even looked for)."""
    import numpy as np

    from reactcli.data.layout import mirrored, read_pairs
    from reactcli.vocab import EMOTION_DIM, EVAL_FRAMES

    n = len(mirrored(read_pairs(synth_root, "val")))
    predictions = tmp_path / "preds.npy"
    np.save(predictions, np.random.default_rng(0).random((n, 2, EVAL_FRAMES, EMOTION_DIM), dtype=np.float32))
    out = readonly_dir / "metrics.json"
    for args in (
        ("evaluate", "--data", str(synth_root), "--predictions", str(predictions), "--out", str(out)),
        ("baselines", "--data", str(synth_root), "--samples", "2", "--out", str(out)),
        ("fid", str(tmp_path), str(tmp_path), "--inception", str(tmp_path / "weights.pth"), "--json", str(out)),
    ):
        result = react_readonly(*args)
        assert result.returncode == 1, result.stderr
        line = _one_line(result.stderr)
        assert f"{out}: cannot be written: Permission denied" in line, line
        assert "FRD" not in result.stdout + result.stderr  # refused before scoring
        assert list(readonly_dir.iterdir()) == []


def test_os_error_escaping_a_command_is_one_line_with_its_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """ENOSPC (injected: no full disk at hand) anywhere in a command: ``error: <path>: <reason>``."""
    import errno

    from conftest import run_cli

    from reactcli.data import synth as synth_module

    def full_disk(out: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(out) / "train.csv"))

    monkeypatch.setattr(synth_module, "make_synthetic_dataset", full_disk)
    assert run_cli(["synth", "--out", str(tmp_path / "d")]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == f"error: {tmp_path / 'd' / 'train.csv'}: No space left on device"
    with pytest.raises(OSError, match="No space left"):
        run_cli(["--debug", "synth", "--out", str(tmp_path / "d")])


def test_atomic_write_errors_name_the_target_not_the_temp_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import errno

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a failed write() has no file name

    monkeypatch.setattr(Path, "write_text", no_space)
    with pytest.raises(ReactError) as info:
        atomic.save_json(tmp_path / "m.json", {})
    target = tmp_path / "m.json"
    assert str(info.value) == f"{target}: could not write (No space left on device); nothing was changed there"
    assert info.value.path == str(tmp_path / "m.json")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_from_a_stage_prints_its_own_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from conftest import run_cli

    from reactcli.data import synth as synth_module
    from reactcli.errors import Interrupted

    def stopped(*args: object, **kwargs: object) -> None:
        raise Interrupted("interrupted at step 3; kept runs/x/predictor_last.ckpt (continue with --resume)")

    monkeypatch.setattr(synth_module, "make_synthetic_dataset", stopped)
    assert run_cli(["synth", "--out", str(tmp_path / "d")]) == 130
    assert _one_line(capsys.readouterr().err) == (
        "interrupted at step 3; kept runs/x/predictor_last.ckpt (continue with --resume)"
    )


def test_ctrl_c_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """A real SIGINT to a running ``react synth`` (its work replaced by a wait, so the signal lands
    inside the command): one line, exit code 130, no traceback."""
    script = (
        "import time\n"
        "import reactcli.data.synth as s\n"
        "def wait(*args, **kwargs):\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
        "s.make_synthetic_dataset = wait\n"
        "from reactcli.cli import main\n"
        "main()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "synth", "--out", str(tmp_path / "d")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert _one_line(stderr).startswith("interrupted; ")
