"""Written to a pipe or a log file, problem lists and error lines keep every path whole on one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import copy_dataset

from reactcli.data.layout import DatasetLayout, mirrored, read_pairs


def test_long_path_survives_in_captured_output(make_synth, tmp_path: Path) -> None:
    deep = tmp_path / ("a_folder_with_a_long_name_" * 4) / "RECOLA_like" / "dataset"
    root = copy_dataset(make_synth(train=1, val=4, video="none"), deep)
    clip = mirrored(read_pairs(root, "val"))[0].listener
    gone = DatasetLayout(root).emotion("val", clip)
    gone.unlink()
    assert len(str(gone)) > 200  # far beyond the 80 columns rich assumes without a terminal
    env = {**os.environ, "COLUMNS": "80", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "reactcli.cli", "preprocess", "--data", str(root), "--splits", "val"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    problem = [line for line in lines if str(gone) in line]
    assert len(problem) == 1, proc.stdout
    assert problem[0].startswith(f"val  {gone} or ") and problem[0].endswith(".csv: emotion file not found")
    assert any(str(root) in line for line in lines if line.lstrip().startswith("preprocess"))  # table title
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert error == [f"error: {root}: 1 problem(s) found (listed above); fix them and rerun"]
    assert "Traceback" not in proc.stderr
