"""``react compare`` exports: Markdown, LaTeX and CSV built from metrics.json + baselines.json.

The JSON files are written here in the exact shape ``react evaluate --out`` and ``react baselines
--out`` produce (the numbers are the demo's), so the tests need no dataset and no model.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import run_cli

from reactcli.errors import ReactError
from reactcli.metrics.names import metric, parse_metrics
from reactcli.vocab import METRIC_KEYS, METRICS

# (FRC, FRD, FRDiv, FRVar, FRDvs, FRSyn, FRSyn_all); FRRea is null everywhere, as without its weights
DEMO = {
    "demo": (0.785, 58.27, 0.0199, 0.0105, 0.0468, 49.0, 11.5),
    "GT": (6.75, 0.0, 0.0, 0.0196, 0.0512, 49.0, 9.25),
    "Mime": (0.645, 68.29, 0.0, 0.0196, 0.0512, 49.0, 0.0),
    "Random": (0.032, 211.52, 0.1666, 0.0833, 0.1667, 49.0, 24.75),
    "MeanSeq": (0.331, 63.8, 0.0, 0.0021, 0.0, 49.0, 17.0),
    "MeanFr": (0.0, 76.26, 0.0, 0.0, 0.0, 49.0, None),
}
METHODS = list(DEMO)


def _metrics_json(values: tuple[float | None, ...]) -> dict[str, Any]:
    """One result dict as ``evaluate_arrays`` returns it (metrics.json and each baselines row)."""
    out: dict[str, Any] = dict(zip(METRIC_KEYS[:7], values, strict=True))
    out["FRRea"] = None
    out.update(
        {
            "N": 24,
            "K": 10,
            "T": 750,
            "split": "val",
            "timings": {key: 0.01 for key in METRIC_KEYS[:7]},
            "notes": {"FRRea": "torch-fidelity is not installed", "FRSyn": "official protocol"},
            "FRSyn_all_excluded": 0,
            "speakers_without_neighbours": 0,
        }
    )
    return out


@pytest.fixture()
def demo_files(tmp_path: Path) -> tuple[Path, Path]:
    """runs/demo/metrics.json and runs/demo/baselines.json in the formats the commands write."""
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(_metrics_json(DEMO["demo"]), indent=2))
    rows = {name: _metrics_json(values) for name, values in DEMO.items() if name != "demo"}
    payload = {"split": "val", "N": 24, "K": 10, "seed": 0, "rows": rows}
    (run / "baselines.json").write_text(json.dumps(payload, indent=2))
    return run / "metrics.json", run / "baselines.json"


def _value(method: str, key: str) -> float | None:
    return None if key == "FRRea" else DEMO[method][METRIC_KEYS.index(key)]


def _expected_best(key: str, digits: int) -> set[str]:
    """Methods whose value, rounded as shown, is the best in the metric's direction (GT excluded)."""
    shown = {m: round(v, digits) for m in METHODS if m != "GT" and (v := _value(m, key)) is not None}
    if not shown:
        return set()
    top = max(shown.values()) if metric(key).higher_is_better else min(shown.values())
    return {m for m, v in shown.items() if v == top}


def _compare(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(["compare", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_metric_names_and_directions_are_defined_once() -> None:
    assert METRIC_KEYS == ("FRC", "FRD", "FRDiv", "FRVar", "FRDvs", "FRSyn", "FRSyn_all", "FRRea")
    higher = {m.name for m in METRICS if m.higher_is_better}
    assert higher == {"FRC", "FRDiv", "FRVar", "FRDvs"}
    assert metric("FRD").arrow == "↓" and metric("FRC").arrow == "↑"
    assert parse_metrics("frd, FRC") == ("FRD", "FRC")
    assert parse_metrics(None) == METRIC_KEYS
    # the MARS metrics (editions.py): a name both tables hold has one direction
    from reactcli.editions import MARS_METRIC_INFO

    for m in MARS_METRIC_INFO:
        assert metric(m.name).higher_is_better == m.higher_is_better
        if m.name in METRIC_KEYS:
            assert next(x for x in METRICS if x.name == m.name).higher_is_better == m.higher_is_better
    mars_higher = {m.name for m in MARS_METRIC_INFO if m.higher_is_better}
    assert mars_higher == {"FRC", "FRDiv", "FRVar", "EEG_FRC", "EEG_FRDiv", "EEG_FRVar"}
    assert parse_metrics("mae,frsyn_fixed") == ("MAE", "FRSyn_fixed")
    with pytest.raises(ReactError, match="listed twice"):
        parse_metrics("FRC,frc")


def test_latex_structure_and_bold_best(demo_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    metrics_json, baselines_json = demo_files
    out = metrics_json.parent / "table.tex"
    code, _, err = _compare([str(metrics_json), str(baselines_json), "--out", str(out), "--bold-best"], capsys)
    assert code == 0, err
    tex = out.read_text()
    unescaped = re.sub(r"\\[{}]", "", tex)
    assert unescaped.count("{") == unescaped.count("}")
    depth = 0
    for ch in unescaped:  # balanced in order, not only in count
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    lines = tex.splitlines()
    assert lines[1] == "\\begin{tabular}{l" + "r" * len(METRIC_KEYS) + "}" and lines[-1] == "\\end{tabular}"
    top, mid, bottom = lines.index("\\toprule"), lines.index("\\midrule"), lines.index("\\bottomrule")
    assert top < mid < bottom
    header = [c.strip() for c in lines[top + 1].removesuffix("\\\\").split("&")]
    assert header[0] == "Method" and header[2] == r"FRD $\downarrow$" and header[1] == r"FRC $\uparrow$"
    assert header[METRIC_KEYS.index("FRSyn_all") + 1] == r"FRSyn\_all $\downarrow$"
    body = lines[mid + 1 : bottom]
    assert len(body) == len(METHODS)  # one row per method
    cells = {}
    for line in body:
        assert line.endswith(" \\\\")
        parts = [c.strip() for c in line.removesuffix("\\\\").split("&")]
        assert len(parts) == len(METRIC_KEYS) + 1
        cells[parts[0]] = dict(zip(METRIC_KEYS, parts[1:], strict=True))
    assert list(cells) == METHODS
    for key in METRIC_KEYS:
        digits = 2 if key in ("FRD", "FRSyn", "FRSyn_all") else 4
        bold = {m for m in METHODS if cells[m][key].startswith("\\textbf{")}
        assert bold == _expected_best(key, digits), key
        for m in METHODS:
            text = cells[m][key].removeprefix("\\textbf{").removesuffix("}")
            value = _value(m, key)
            assert text == ("-" if value is None else f"{value:.{digits}f}")
    assert cells["demo"]["FRD"] == "\\textbf{58.27}"  # lower is better: the model, not Random
    assert cells["Random"]["FRDiv"] == "\\textbf{0.1666}"  # higher is better
    assert cells["GT"]["FRC"] == "6.7500"  # the reference row is never bold
    assert all(cells[m]["FRRea"] == "-" for m in METHODS)  # null metric
    assert cells["MeanFr"]["FRSyn_all"] == "-"
    assert "wrote" in err and list(out.parent.glob(".table.tex.*")) == []  # atomic: no temp file left


def test_markdown_parses_with_expected_header(
    demo_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    metrics_json, baselines_json = demo_files
    code, stdout, err = _compare(
        [str(metrics_json), str(baselines_json), "--format", "markdown", "--bold-best", "--metrics", "FRD,FRC,FRRea"],
        capsys,
    )
    assert code == 0, err
    lines = stdout.strip().splitlines()
    table = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    assert table[0] == ["method", "FRD ↓", "FRC ↑", "FRRea ↓"]
    assert all(re.fullmatch(r":?-{3,}:?", c) for c in table[1])
    assert table[1][0].startswith(":") and all(c.endswith(":") for c in table[1][1:])
    rows = {r[0]: r[1:] for r in table[2:]}
    assert list(rows) == METHODS and all(len(r) == 3 for r in rows.values())
    assert rows["demo"] == ["**58.27**", "**0.7850**", "-"]
    assert rows["Random"] == ["211.52", "0.0320", "-"]
    assert rows["GT"][0] == "0.00"  # GT's FRD of 0 is shown, not bold


def test_csv_round_trips_through_pandas(demo_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    metrics_json, baselines_json = demo_files
    out = metrics_json.parent / "table.csv"
    code, _, err = _compare([str(metrics_json), str(baselines_json), "--out", str(out)], capsys)
    assert code == 0, err
    frame = pd.read_csv(out, index_col="method")
    assert list(frame.columns) == list(METRIC_KEYS) and list(frame.index) == METHODS
    for m in METHODS:
        for key in METRIC_KEYS:
            value = _value(m, key)
            got = frame.loc[m, key]
            assert math.isnan(got) if value is None else got == value, (m, key)
    rounded = metrics_json.parent / "rounded.csv"
    code, _, err = _compare([str(metrics_json), "--out", str(rounded), "--digits", "1", "--metrics", "FRC"], capsys)
    assert code == 0, err
    assert rounded.read_text() == "method,FRC\ndemo,0.8\n"


def test_terminal_table_and_digits(demo_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    metrics_json, baselines_json = demo_files
    code, stdout, err = _compare([str(metrics_json), str(baselines_json), "--digits", "3"], capsys)
    assert code == 0, err
    for m in METHODS:
        assert m in stdout
    assert "0.785" in stdout and "58.270" in stdout and "0.7850" not in stdout
    assert "FRD ↓" in stdout and "FRC ↑" in stdout
    out = metrics_json.parent / "table.txt"
    code, _, err = _compare([str(metrics_json), "--out", str(out), "--metrics", "FRD,FRC"], capsys)
    assert code == 0, err
    text = out.read_text()
    assert text.index("FRD ↓") < text.index("FRC ↑") and "58.27" in text and "\x1b[" not in text


def test_names_rename_rows_in_order(demo_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    metrics_json, baselines_json = demo_files
    names = "Ours & co,GT,Mime,Random,Mean_seq,Mean frame"
    code, stdout, err = _compare(
        [str(metrics_json), str(baselines_json), "--format", "latex", "--names", names, "--metrics", "FRC"], capsys
    )
    assert code == 0, err
    assert "Ours \\& co & 0.7850 \\\\" in stdout and "Mean\\_seq & 0.3310 \\\\" in stdout
    code, _, err = _compare([str(metrics_json), str(baselines_json), "--names", "a,b"], capsys)
    assert code == 1 and "--names gives 2 name(s) for 6 row(s)" in err
    code, _, err = _compare([str(metrics_json), "--names", " "], capsys)
    assert code == 1 and "--names has an empty name" in err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_unknown_metric_is_one_line(demo_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    metrics_json, _ = demo_files
    code, stdout, err = _compare([str(metrics_json), "--format", "markdown", "--metrics", "FRC,FRX"], capsys)
    assert code == 1 and stdout == ""
    line = _one_error_line(err)
    assert "unknown metric 'FRX'" in line and "FRSyn_all" in line


def test_format_from_extension_and_bad_inputs(
    demo_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    metrics_json, baselines_json = demo_files
    md = metrics_json.parent / "t.md"
    assert _compare([str(metrics_json), "--out", str(md)], capsys)[0] == 0
    assert md.read_text().startswith("| method | FRC ↑ | FRD ↓ |")
    code, _, err = _compare([str(metrics_json), "--out", str(metrics_json.parent / "t.docx")], capsys)
    assert code == 1 and "t.docx: cannot tell the table format from '.docx'" in _one_error_line(err)
    code, _, err = _compare([str(metrics_json), "--format", "csv", "--bold-best"], capsys)
    assert code == 1 and "--bold-best does not apply" in _one_error_line(err)
    data = json.loads(baselines_json.read_text())
    data["rows"]["Mime"]["FRD"] = "68.29"
    baselines_json.write_text(json.dumps(data))
    code, _, err = _compare([str(baselines_json), "--format", "csv"], capsys)
    line = _one_error_line(err)
    assert code == 1 and "baselines.json: row 'Mime': FRD is \"68.29\", expected a number or null" in line


def test_ties_are_all_bold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = {
        "a": {"FRC": 0.50004, "FRD": 10.0},
        "b": {"FRC": 0.5, "FRD": 10.001},
        "c": {"FRC": 0.4, "FRD": None},
    }
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps({"rows": rows}))
    code, stdout, err = _compare([str(path), "--format", "markdown", "--bold-best", "--metrics", "FRC,FRD"], capsys)
    assert code == 0, err
    body = {line.split("|")[1].strip(): line for line in stdout.splitlines()[2:]}
    assert "**0.5000**" in body["a"] and "**0.5000**" in body["b"] and "**" not in body["c"].split("|")[2]
    assert "**10.00**" in body["a"] and "**10.00**" in body["b"] and body["c"].split("|")[3].strip() == "-"
