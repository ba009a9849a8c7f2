"""`react evaluate` and `react baselines` on the synthetic dataset: outputs, and every input error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_dataset

from reactcli.cli import main
from reactcli.data.layout import mirrored, read_pairs
from reactcli.metrics.evaluate import load_truth
from reactcli.vocab import METRIC_KEYS


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def truth(synth_root: Path):
    return load_truth(synth_root, "val")


def gt_predictions(truth, k: int = 2, frames: int = 751) -> np.ndarray:
    preds = np.repeat(truth.listener[:, None], k, axis=1)
    return np.concatenate([preds, preds[:, :, -1:].repeat(frames - 750, axis=2)], axis=2)


def test_truth_is_in_mirrored_order(synth_root: Path, truth) -> None:
    samples = mirrored(read_pairs(synth_root, "val"))
    assert truth.listener.shape == (len(samples), 750, 25)
    m = len(samples) // 2
    # the swapped half: listener of sample m + i is the speaker of sample i
    np.testing.assert_array_equal(truth.listener[m:], truth.speaker[:m])
    assert truth.neighbours.shape == (len(samples), len(samples))


def test_evaluate_writes_every_key_and_ground_truth_scores_zero_frd(
    synth_root: Path, truth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred = tmp_path / "pred.npy"
    np.save(pred, gt_predictions(truth))
    out = tmp_path / "m" / "metrics.json"
    args = ["evaluate", "--data", str(synth_root), "--predictions", str(pred), "--out", str(out)]
    code, stdout, err = run(args, capsys)
    assert code == 0, err
    result = json.loads(out.read_text())
    for key in (*METRIC_KEYS, "N", "K", "T", "split", "timings"):
        assert key in result
    assert (result["N"], result["K"], result["T"], result["split"]) == (truth.listener.shape[0], 2, 750, "val")
    assert result["FRD"] == 0.0 and result["FRDiv"] == 0.0
    assert result["FRRea"] is None and "FRRea" in result["notes"]
    assert set(result["timings"]) >= {"FRC", "FRD", "FRDiv", "FRVar", "FRDvs", "FRSyn"}
    assert "FRD" in stdout and "FRSyn_all" in stdout
    assert "FRRea" in err  # says why it is null


def test_evaluate_reads_torch_files_and_generate_folders(
    synth_root: Path, truth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    rng = np.random.default_rng(0)
    preds = rng.random((truth.listener.shape[0], 2, 750, 25), dtype=np.float32)
    torch.save(torch.from_numpy(preds), tmp_path / "p.pt")
    (tmp_path / "gen").mkdir()
    np.save(tmp_path / "gen" / "emotion.npy", preds)
    results = []
    for source in (tmp_path / "p.pt", tmp_path / "gen"):
        out = tmp_path / f"{source.stem}.json"
        args = ["evaluate", "--data", str(synth_root), "--predictions", str(source), "--out", str(out)]
        code, _, err = run(args, capsys)
        assert code == 0, err
        results.append(json.loads(out.read_text()))
    for key in METRIC_KEYS:
        assert results[0][key] == results[1][key]


def bad_prediction_cases(n: int) -> dict[str, tuple[np.ndarray, str]]:
    ok = np.zeros((n, 2, 750, 25), dtype=np.float32)
    nan = ok.copy()
    nan[1, 0, 3, 4] = np.nan
    inf = ok.copy()
    inf[0, 1, 0, 0] = np.inf
    huge = ok.copy()
    huge[2, 1, 5, 0] = 1e30  # the input: it passed, and metrics.json held a bare Infinity
    return {
        "huge": (huge, "sample 2 reaction 1 has |x| up to 1e+30 (first at frame 5, dim 0), outside the sane range"),
        "short": (ok[:, :, :700], "expected at least 750"),
        "wrong_n": (ok[:-2], f"expected N = {n}"),
        "nan": (nan, "NaN/inf"),
        "inf": (inf, "NaN/inf"),
        "ndim": (ok[:, 0], "expected (N, K, T, 25)"),
        "dims": (ok[..., :24], "expected (N, K, T, 25)"),
    }


@pytest.mark.parametrize("case", ["short", "wrong_n", "nan", "inf", "huge", "ndim", "dims"])
def test_evaluate_rejects_bad_predictions_in_one_line(
    case: str, synth_root: Path, truth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    array, expected = bad_prediction_cases(truth.listener.shape[0])[case]
    pred = tmp_path / "bad.npy"
    np.save(pred, array)
    out = tmp_path / "metrics.json"
    out.write_text("previous results")
    code, _, err = run(["evaluate", "--data", str(synth_root), "--predictions", str(pred), "--out", str(out)], capsys)
    assert code == 1
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(pred) in lines[0]
    assert expected in lines[0]
    assert out.read_text() == "previous results"  # nothing written over


def test_non_finite_metrics_are_null_with_a_reason(tmp_path: Path) -> None:
    from reactcli.atomic import save_json
    from reactcli.metrics.evaluate import null_non_finite

    result = null_non_finite({"FRC": float("nan"), "FRD": float("inf"), "FRDiv": 0.5, "notes": {"FRD": "search"}})
    assert result["FRC"] is None and result["FRD"] is None and result["FRDiv"] == 0.5
    assert result["notes"]["FRC"] == "came out nan (not a finite number), stored as null"
    assert result["notes"]["FRD"].startswith("came out inf") and result["notes"]["FRD"].endswith("; search")
    save_json(tmp_path / "m.json", result)
    assert "NaN" not in (tmp_path / "m.json").read_text() and json.loads((tmp_path / "m.json").read_text())


def test_evaluate_checks_sample_ids_of_a_generate_folder(
    synth_root: Path, truth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A generate folder names its samples: one made for another split or order is refused, naming both."""
    from reactcli.predictions import PredictionWriter, sample_ids

    ids = sample_ids(mirrored(read_pairs(synth_root, "val")))
    with PredictionWriter(tmp_path / "gen", 1, {"split": "val"}, kinds=("emotion",)) as writer:
        for name in [ids[1], ids[0], *ids[2:]]:
            writer.add(name, np.zeros((1, 750, 25), np.float32))
        writer.commit()
    code, _, err = run(["evaluate", "--data", str(synth_root), "--predictions", str(tmp_path / "gen")], capsys)
    assert code == 1 and f"generation.json: sample 0 is '{ids[1]}' but the val split" in err


def test_evaluate_rejects_unreadable_inputs(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "p.txt").write_text("1 2 3")
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    for source, expected in [
        (tmp_path / "empty", "no emotion.npy"),
        (tmp_path / "p.txt", ".npy or .pt"),
        (tmp_path / "broken.npy", "not a readable"),
        (tmp_path / "missing.npy", "not found"),
    ]:
        code, _, err = run(["evaluate", "--data", str(synth_root), "--predictions", str(source)], capsys)
        assert code == 1 and expected in err, err



def test_mars_options_on_a_2024_root_are_refused_by_name(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both commands name every MARS-only flag given, in one line, before reading any prediction."""
    mars_flags = ["--alignment", "mean", "--gt-seed", "3", "--no-bidirectional"]
    code, _, err = run(["evaluate", "--data", str(synth_root), "--predictions", str(tmp_path / "x.npy"), *mars_flags],
                       capsys)  # fmt: skip
    want = "--alignment, --gt-seed, --bidirectional/--no-bidirectional: for MARS datasets (REACT 2025/2026) only"
    assert code == 1 and want in err and err.count("\n") == 1, err
    code, _, err = run(["baselines", "--data", str(synth_root), "--gt-list", "g.json", "--device", "cpu"], capsys)
    assert code == 1 and f"--gt-list, --device: for MARS datasets (REACT 2025/2026) only; {synth_root}" in err, err

def test_evaluate_rejects_a_neighbour_matrix_of_the_wrong_size(
    synth_root: Path, truth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_dataset(synth_root, tmp_path / "data")
    n = truth.listener.shape[0]
    np.save(root / "neighbour_emotion_val.npy", np.eye(n + 2, dtype=np.int64))
    pred = tmp_path / "pred.npy"
    np.save(pred, np.zeros((n, 1, 750, 25), dtype=np.float32))
    code, _, err = run(["evaluate", "--data", str(root), "--predictions", str(pred)], capsys)
    assert code == 1
    assert f"{n + 2} x {n + 2}" in err and f"{n} mirrored samples" in err


@pytest.mark.slow  # seven rows, twice (the second run checks the seeds)
def test_baselines_table_and_json(
    preprocessed_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    synth_root = preprocessed_root  # Ridge reads the cached audio features
    out = tmp_path / "baselines.json"
    code, stdout, err = run(["baselines", "--data", str(synth_root), "--out", str(out), "--seed", "3"], capsys)
    assert code == 0, err
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    assert list(rows) == ["GT", "Mime", "Random", "MeanSeq", "MeanFr", "Ridge", "RidgeRes"]
    assert payload["ridge"] == {"lookback": 40, "step": 2, "alpha": 0.01, "audio": "mfcc", "residual_scale": 0.5}
    assert rows["Ridge"]["FRDiv"] == 0.0 and rows["Ridge"]["FRC"] > rows["Random"]["FRC"]
    assert rows["RidgeRes"]["FRDiv"] > 0.0 and rows["RidgeRes"]["FRC"] > rows["Random"]["FRC"]
    assert rows["GT"]["FRD"] == 0.0 and rows["GT"]["FRDiv"] == 0.0
    assert rows["GT"]["FRC"] > rows["Random"]["FRC"]
    assert rows["Random"]["FRDiv"] == pytest.approx(1 / 6, abs=0.01)
    assert rows["MeanFr"]["FRVar"] == 0.0 and rows["MeanFr"]["FRSyn_all"] is None  # constant: no usable dim
    assert rows["Mime"]["FRSyn_all"] == 0.0  # a copy of the speaker is in sync at lag 0
    for name in rows:
        assert name in stdout
    # same seed, same numbers
    out2 = tmp_path / "again.json"
    run(["baselines", "--data", str(synth_root), "--out", str(out2), "--seed", "3"], capsys)
    again = json.loads(out2.read_text())["rows"]
    assert again["Random"]["FRD"] == rows["Random"]["FRD"] and again["RidgeRes"]["FRD"] == rows["RidgeRes"]["FRD"]


def test_baselines_say_when_train_has_no_emotion(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_dataset(synth_root, tmp_path / "data")
    shutil.rmtree(root / "train" / "Emotion")
    out = tmp_path / "b.json"
    code, stdout, err = run(["baselines", "--data", str(root), "--out", str(out), "--samples", "2"], capsys)
    assert code == 0, err
    payload = json.loads(out.read_text())
    assert list(payload["rows"]) == ["GT", "Mime", "Random"]
    assert "train" in payload["skipped"]["MeanSeq"] and "left out" in err
    assert "react preprocess" in payload["skipped"]["Ridge"] and "Ridge left out" in err
    assert payload["skipped"]["RidgeRes"] == payload["skipped"]["Ridge"]
    assert payload["K"] == 2
    # K lives in generation.samples: --samples only overrides it
    code, _, err = run(["baselines", "--data", str(root), "--out", str(out), "--set", "generation.samples=3"], capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["K"] == 3


def test_an_unwritable_out_fails_before_any_metric(
    synth_root: Path, truth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's read-only --out gave a traceback after computing everything; now one line, first."""
    import os

    import reactcli.metrics.evaluate as evaluate_module

    pred = tmp_path / "pred.npy"
    np.save(pred, gt_predictions(truth))
    locked = tmp_path / "locked"  # as if mounted read-only (root may write into a chmod 555 folder)
    locked.mkdir()
    out = locked / "metrics.json"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    monkeypatch.setattr(evaluate_module, "evaluate_arrays", lambda *a, **k: pytest.fail("metrics ran"))
    code, _, err = run(["evaluate", "--data", str(synth_root), "--predictions", str(pred), "--out", str(out)], capsys)
    assert code == 1 and err.strip() == f"error: {out}: cannot write there ({locked} is not writable)"
