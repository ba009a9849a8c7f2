"""``react baselines`` and ``react compare`` on a MARS root: the 2026 script's rows, Ridge and RidgeRes."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from _mars_cli_helpers import patch_loader, script_gt_sets, script_inputs, small_checkpoint
from _mars_fixtures import write_mars_val
from conftest import run_cli

from reactcli.data.mars import Recording, list_recordings


@pytest.fixture(scope="module")
def mars(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("marsbase")
    root = tmp / "mars"
    write_mars_val(root)
    write_mars_val(root, seed=1, split="train")
    return SimpleNamespace(tmp=tmp, root=root, ckpt=small_checkpoint(tmp / "pp" / "checkpoint.pth"))


@pytest.fixture(autouse=True)
def small_post_processor(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_loader(monkeypatch)


def test_rows_ridge_and_compare(mars: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    out = mars.tmp / "run" / "baselines.json"
    code = run_cli(["baselines", "--data", str(mars.root), "--post-processor", str(mars.ckpt), "--alignment", "mean",
                    "--seed", "3", "--out", str(out), "--device", "cpu", "--workers", "2"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    assert list(rows) == ["GT_identical", "B_Random", "B_Mime", "B_MeanFr", "Ridge", "RidgeRes"]
    assert payload["edition"] == "2026" and payload["K"] == 10 and payload["N"] == 9
    assert payload["ground_truth"]["samples"] == script_gt_sets(mars.root / "val" / "facial-attributes")
    gt = rows["GT_identical"]
    assert gt["FRC"] == 10.0 and gt["FRD"] == pytest.approx(0.0, abs=1e-9)  # forced to K after the check
    meanfr = rows["B_MeanFr"]
    assert meanfr["FRC"] == pytest.approx(0.0, abs=1e-12) and meanfr["FRDiv"] == 0.0 and meanfr["FRVar"] == 0.0
    assert rows["B_Mime"]["FRDiv"] == 0.0 and rows["B_Mime"]["FRSyn_fixed"] == 0.0  # in sync with itself
    assert rows["B_Random"]["FRDiv"] > 0.1
    assert rows["Ridge"]["FRDiv"] == 0.0 and rows["RidgeRes"]["FRDiv"] > 0.0
    assert all("MAE" in row for row in rows.values())
    train = mars.root / "train" / "facial-attributes"
    frames = np.concatenate([np.load(train / f"{r}.npy") for r in script_inputs(train, "listener")]).astype(np.float64)
    np.testing.assert_allclose(payload["train_mean_fr"], frames.mean(0), rtol=1e-6)
    ridge = payload["ridge"]
    assert "audio-features (first 32 principal components)" in ridge["inputs"]
    assert ridge["residual_scale"] == 0.5 and ridge["seed"] == 3 and ridge["train_samples"] == 9
    for name in rows:
        assert name in captured.out
    assert "REACT 2026 baselines (MARS), val (N=9, K=10), alignment mean" in captured.out

    code = run_cli(["compare", str(out), "--format", "markdown", "--bold-best"])
    table = capsys.readouterr().out
    assert code == 0
    lines = table.splitlines()
    assert lines[0] == "| method | FRC ↑ | FRD ↓ | FRSyn ↓ | FRSyn_fixed ↓ | FRDiv ↑ | FRVar ↑ | MAE ↓ |"
    gt_line = next(line for line in lines if line.startswith("| GT_identical |"))
    assert "**" not in gt_line  # the reference is never "best"
    assert any("**" in line for line in lines[2:])

    legacy = mars.tmp / "metrics_2024.json"
    legacy.write_text(json.dumps({"FRC": 1.0, "FRD": 50.0, "split": "val"}))
    code = run_cli(["compare", str(out), str(legacy)])
    err = capsys.readouterr().err
    assert code == 1 and "holds REACT 2024 results" in err and "REACT 2026" in err


def test_rows_that_need_the_train_split_are_left_out_with_the_reason(
    mars: SimpleNamespace, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = tmp_path / "val_only"
    shutil.copytree(mars.root / "val", root / "val")
    out = tmp_path / "b.json"
    code = run_cli(["baselines", "--data", str(root), "--alignment", "resample", "--out", str(out), "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 0, err
    payload = json.loads(out.read_text())
    assert list(payload["rows"]) == ["GT_identical", "B_Random", "B_Mime"]
    assert set(payload["skipped"]) == {"B_MeanFr", "Ridge", "RidgeRes"}
    assert "train/facial-attributes" in payload["skipped"]["Ridge"] and "RidgeRes left out" in err
    assert payload["official"] is False and payload["alignment"]["mode"] == "resample"
    code = run_cli(["baselines", "--data", str(root), "--alignment", "resample", "--samples", "4"])
    assert code == 1 and "K = 10" in capsys.readouterr().err


def test_mars_ridge_res_is_online_and_deterministic(mars: SimpleNamespace, tmp_path: Path) -> None:
    from reactcli.metrics.mars_ridge import fit_mars_ridge, mars_ridge_predictions, mars_ridge_res_predictions
    from reactcli.metrics.ridge import residual_plan

    ridge = fit_mars_ridge(mars.root, False, 12, 2, 0.01)
    assert ridge.uses_audio and ridge.audio_basis.shape == (768, 32)
    samples = list_recordings(mars.root, "val").samples(False)
    sample = max(samples, key=lambda s: np.load(mars.root / "val" / "facial-attributes" / f"{s.input.id}.npy").shape[0])
    length = np.load(mars.root / "val" / "facial-attributes" / f"{sample.input.id}.npy").shape[0]
    plan = residual_plan(ridge.train_lengths, [length], 5, 3)[0]
    assert any(len(pieces) > 1 for pieces in plan)  # some reactions are covered by two or more residuals

    def res(model, seed: int = 3) -> np.ndarray:
        return mars_ridge_res_predictions(model, "val", [sample], [length], 5, 0.5, seed)[0]

    ref = res(ridge)
    assert ref.shape == (5, length, 25)
    assert np.array_equal(ref, res(ridge)) and not np.allclose(ref, res(ridge, seed=4))
    base = mars_ridge_predictions(ridge, "val", [sample], [length], 5)[0]
    assert np.abs(ref - base).max() > 0.01 and np.array_equal(base[0], base[4])

    # the same speaker changed after frame t, in a copy of the split (train shared)
    perturbed = tmp_path / "perturbed"
    (perturbed / "train").parent.mkdir(parents=True)
    (perturbed / "train").symlink_to(mars.root / "train", target_is_directory=True)
    for folder in ("facial-attributes", "audio-features"):
        shutil.copytree(mars.root / "val" / folder, perturbed / "val" / folder)
    other = dataclasses.replace(ridge, root=perturbed)
    rec: Recording = sample.input
    for t in (0, 100, length - 2):
        attrs = np.load(mars.root / "val" / "facial-attributes" / f"{rec.id}.npy")
        audio = np.load(mars.root / "val" / "audio-features" / f"{rec.id}.npy")
        attrs[t + 1 :] = 1.0 - attrs[t + 1 :]
        audio[t + 1 :] *= -3.0
        np.save(perturbed / "val" / "facial-attributes" / f"{rec.id}.npy", attrs)
        np.save(perturbed / "val" / "audio-features" / f"{rec.id}.npy", audio)
        out = res(other)
        assert np.array_equal(out[:, : t + 1], ref[:, : t + 1])  # nothing after t reaches frames <= t
        assert not np.allclose(out[:, t + 1 :], ref[:, t + 1 :])
