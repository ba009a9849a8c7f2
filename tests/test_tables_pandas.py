"""Tabular files: Emotion CSV errors name the file, line and column; pandas agrees with our readers.

``load_emotion`` keeps ``np.loadtxt`` (faster in ``react preprocess`` than pandas plus its import),
so pandas serves here as the independent reference reader of the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_dataset, run_cli

from reactcli.data.layout import DatasetLayout, mirrored, read_pairs
from reactcli.data.loaders import load_emotion
from reactcli.errors import ReactError
from reactcli.tables import collect_rows, metrics_frame
from reactcli.vocab import EMOTION_COLUMNS


def _emotion_csv(path: Path, rows: int = 750, header: tuple[str, ...] = EMOTION_COLUMNS, seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).uniform(-1, 1, (rows, len(header))).round(6)
    lines = [",".join(header)] + [",".join(f"{v:g}" for v in row) for row in values]
    path.write_text("\n".join(lines) + "\n")
    return values


def _edit_line(path: Path, line_no: int, col: int, cell: str) -> None:
    """Replace one cell (1-based line and column, as an editor shows them)."""
    lines = path.read_text().splitlines()
    cells = lines[line_no - 1].split(",")
    cells[col - 1] = cell
    lines[line_no - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def _error(path: Path) -> str:
    with pytest.raises(ReactError) as info:
        load_emotion(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_emotion_matches_pandas(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    values = _emotion_csv(path, rows=751)
    array = load_emotion(path)
    assert array.shape == (750, 25) and array.dtype == np.float32
    reference = pd.read_csv(path).to_numpy(np.float64)[:750].astype(np.float32)
    assert np.array_equal(array, reference)
    assert np.allclose(array, values[:750], atol=1e-6)


def test_emotion_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing.csv"
    _emotion_csv(path, header=tuple(c for c in EMOTION_COLUMNS if c != "AU4"))
    assert _error(path) == "emotion CSV has 24 columns, expected 25 (missing AU4)"
    other = tmp_path / "renamed.csv"  # unknown header names: no guess about which one is missing
    _emotion_csv(other, header=tuple(f"c{i}" for i in range(24)))
    assert _error(other) == "emotion CSV has 24 columns, expected 25"


def test_emotion_non_numeric_and_empty_cells(tmp_path: Path) -> None:
    path = tmp_path / "text.csv"
    _emotion_csv(path)
    _edit_line(path, 7, 3, "abc")
    assert _error(path) == "not a numeric emotion CSV: line 7, column 3 (AU4): 'abc' is not a number"
    empty = tmp_path / "empty_cell.csv"
    _emotion_csv(empty)
    _edit_line(empty, 300, 25, "")
    assert _error(empty) == "not a numeric emotion CSV: line 300, column 25 (Contempt): the cell is empty"


def test_emotion_row_problems(tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    _emotion_csv(short, rows=749)
    assert _error(short) == "emotion CSV has 749 rows, expected 750"
    ragged = tmp_path / "ragged.csv"
    _emotion_csv(ragged)
    lines = ragged.read_text().splitlines()
    lines[9] = lines[9].rsplit(",", 1)[0]  # line 10 loses its last field
    ragged.write_text("\n".join(lines) + "\n")
    assert _error(ragged) == "not a numeric emotion CSV: line 10 has 24 fields, line 2 has 25"
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(EMOTION_COLUMNS) + "\n")
    assert _error(header_only) == "emotion CSV has 0 rows, expected 750"
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    assert _error(blank) == "emotion CSV is empty (expected a header row and 750 rows)"


def test_emotion_nan_is_located(tmp_path: Path) -> None:
    path = tmp_path / "nan.csv"
    _emotion_csv(path)
    _edit_line(path, 5, 16, "nan")
    assert _error(path) == "contains 1 NaN/inf values (first at line 5, column 16 (valence))"


def test_bad_emotion_is_one_cli_line(make_synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_dataset(make_synth(train=1, val=4), tmp_path / "data")
    samples = mirrored(read_pairs(root, "val"))
    bad = DatasetLayout(root).emotion("val", samples[0].listener)
    _edit_line(bad, 12, 2, "oops")
    pred = tmp_path / "pred.npy"
    np.save(pred, np.zeros((len(samples), 1, 750, 25), np.float32))
    code = run_cli(["evaluate", "--data", str(root), "--predictions", str(pred)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err
    assert str(bad) in lines[0] and "line 12, column 2 (AU2): 'oops' is not a number" in lines[0]


def test_metrics_frame_is_one_float_row_per_method(tmp_path: Path) -> None:
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps({"rows": {"GT": {"FRC": 2, "FRD": 0.0}, "Mime": {"FRC": 0.5, "FRD": None}}}))
    rows = collect_rows([path])
    frame = metrics_frame(rows, ("FRD", "FRC"))
    assert list(frame.index) == ["GT", "Mime"] and frame.index.name == "method"
    assert list(frame.columns) == ["FRD", "FRC"] and all(dtype == np.float64 for dtype in frame.dtypes)
    assert frame.loc["GT", "FRC"] == 2.0 and np.isnan(frame.loc["Mime", "FRD"])
    assert [r.reference for r in rows] == [True, False]  # GT from a baselines file is the reference row
