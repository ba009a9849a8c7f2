"""Bad input to ``react evaluate`` / ``react baselines`` on a MARS root: one line, exit 1, no traceback,
and nothing written, each refused before the alignment or any metric runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _mars_cli_helpers import (
    RELEASED_LOADER,
    patch_loader,
    script_gt_sets,
    small_checkpoint,
    write_results,
)
from _mars_fixtures import write_mars_val
from conftest import run_cli

import reactcli.metrics.mars_truth as mars_truth


@pytest.fixture(scope="module")
def mars(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("marsbad")
    root = tmp / "mars"
    write_mars_val(root)
    ckpt = small_checkpoint(tmp / "pp" / "checkpoint.pth")
    results = tmp / "results.pt"
    preds = write_results(results, root)
    return SimpleNamespace(tmp=tmp, root=root, ckpt=ckpt, results=results, preds=preds)


@pytest.fixture(autouse=True)
def small_post_processor(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_loader(monkeypatch)


def _results(mars: SimpleNamespace, name: str, change: Callable[[list[torch.Tensor]], list[torch.Tensor]]) -> Path:
    path = mars.tmp / name
    torch.save({"PRED": change([torch.from_numpy(p.copy()) for p in mars.preds])}, path)
    return path


def _with_nan(preds: list[torch.Tensor]) -> list[torch.Tensor]:
    preds[3][2, 10, 16] = float("nan")
    return preds


def _longer(preds: list[torch.Tensor]) -> list[torch.Tensor]:
    preds[2] = torch.cat([preds[2], preds[2][:, :40]], dim=1)  # 40 frames more than the input: > 1 s
    return preds


CASES = {
    "missing post-processor": (lambda m: ["--post-processor", str(m.tmp / "nope" / "checkpoint.pth"),
                                          "--alignment", "mean"], "checkpoint.pth: no such file"),
    "extra key": (lambda m: ["--post-processor", str(extra_key(m)), "--alignment", "mean"],
                  "unexpected key 'extra.weight'"),
    "wrong sample count": (lambda m: ["--predictions", str(_results(m, "short.pt", lambda p: p[:-1])),
                                      "--alignment", "resample"], "'PRED' has 8 entries, the split has 9 samples"),
    "wrong length": (lambda m: ["--predictions", str(_results(m, "long.pt", _longer)), "--alignment", "resample"],
                     "(more than 30 frames apart)"),
    "nan": (lambda m: ["--predictions", str(_results(m, "nan.pt", _with_nan)), "--alignment", "resample"],
            "holds NaN or infinite values"),
    "unknown GT": (lambda m: ["--gt-list", str(bad_gt_list(m)), "--alignment", "resample"],
                   "GT 3 listener/session1/Camera-2030-01-01-000000-000000 does not exist in the val split"),
    "no split": (lambda m: ["--split", "test", "--alignment", "resample"],
                 "test/facial-attributes: MARS facial-attributes folder not found"),
    "edition 2024": (lambda m: ["--edition", "2024", "--alignment", "resample"],
                     "is a MARS dataset (REACT 2025/2026), not REACT 2024 (--edition 2024)"),
    "2025 is bidirectional": (lambda m: ["--edition", "2025", "--alignment", "resample"],
                              "'PRED' has 9 entries, the split has 18 samples"),
    "unwritable out": (lambda m: ["--out", str(blocked_out(m)), "--alignment", "resample"], "cannot be written"),
    "model mode without checkpoint": (lambda m: ["--alignment", "mean"], "--alignment mean needs --post-processor"),
    "resample with checkpoint": (lambda m: ["--alignment", "resample", "--post-processor", str(m.ckpt)],
                                 "drop --post-processor"),
    "frrea without inception": (lambda m: ["--pirender", str(m.ckpt), "--alignment", "resample"],
                                "--pirender is for FRRea, which needs --inception too"),
    "2024 frrea protocol on mars": (lambda m: ["--realism-protocol", "all", "--alignment", "resample"],
                                    "--realism-protocol: MARS has one FRRea protocol"),
    "unknown mode": (lambda m: ["--alignment", "nearest"], "--alignment nearest: expected one of"),
}  # fmt: skip


def extra_key(mars: SimpleNamespace) -> Path:
    ckpt = torch.load(mars.ckpt, weights_only=True)
    ckpt["state_dict"]["extra.weight"] = torch.zeros(3)
    path = mars.tmp / "extra" / "checkpoint.pth"
    path.parent.mkdir(exist_ok=True)
    torch.save(ckpt, path)
    return path


def bad_gt_list(mars: SimpleNamespace) -> Path:
    sets = script_gt_sets(mars.root / "val" / "facial-attributes")
    sets[2]["gts"][3] = "listener/session1/Camera-2030-01-01-000000-000000"
    path = mars.tmp / "bad_gts.json"
    path.write_text(json.dumps({"samples": sets}))
    return path


def blocked_out(mars: SimpleNamespace) -> Path:
    (mars.tmp / "a_file").write_text("not a folder")
    return mars.tmp / "a_file" / "metrics.json"


def _run(mars: SimpleNamespace, capsys: pytest.CaptureFixture[str], command: str, extra: list[str]) -> tuple[int, str]:
    out = mars.tmp / "out" / "metrics.json"
    base = {"--predictions": str(mars.results), "--out": str(out), "--split": "val"}
    i = 0
    while i < len(extra):  # a case's own --predictions / --out / --split replace the defaults
        if extra[i] in base:
            base[extra[i]] = extra[i + 1]
            extra = extra[:i] + extra[i + 2 :]
        else:
            i += 1
    if command == "baselines":
        base.pop("--predictions")
    args = [command, "--data", str(mars.root), *(x for kv in base.items() for x in kv), "--device", "cpu", *extra]
    code = run_cli(args)
    captured = capsys.readouterr()
    assert not out.exists()
    return code, captured.err


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line(mars: SimpleNamespace, capsys: pytest.CaptureFixture[str], case: str) -> None:
    make, needle = CASES[case]
    code, err = _run(mars, capsys, "evaluate", make(mars))
    assert code == 1
    assert needle in _one_line(err), err


@pytest.mark.parametrize("case", ["missing post-processor", "unknown GT", "edition 2024", "unwritable out"])
def test_baselines_refuse_the_same_input(mars: SimpleNamespace, capsys: pytest.CaptureFixture[str], case: str) -> None:
    make, needle = CASES[case]
    code, err = _run(mars, capsys, "baselines", make(mars))
    assert code == 1
    assert needle in _one_line(err), err


def test_released_size_checkpoint_missing_a_key(
    mars: SimpleNamespace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real loader (the released architecture, 46.79 M numbers) refuses a checkpoint without one key."""
    from reactcli.models.post_processor import EmotionVAE

    monkeypatch.setattr(mars_truth, "load_alignment_model", RELEASED_LOADER)
    torch.manual_seed(0)
    state = EmotionVAE().state_dict()
    del state["decoder.transformer_decoder.layers.5.norm3.bias"]
    path = mars.tmp / "released" / "checkpoint.pth"
    path.parent.mkdir(exist_ok=True)
    torch.save({"epoch": 1, "best_loss": 0.1, "state_dict": state, "optimizer": None}, path)
    code, err = _run(mars, capsys, "evaluate", ["--post-processor", str(path), "--alignment", "mean"])
    assert code == 1
    line = _one_line(err)
    assert str(path) in line and "missing key 'decoder.transformer_decoder.layers.5.norm3.bias'" in line
    path.unlink()


def test_official_mode_refuses_a_length_pair_the_organisers_code_crashes_on_and_mean_cuts_it(
    mars: SimpleNamespace, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """P = 58 against a 10 500-frame ground truth: 11 segments of ceil(58/11) = 6 frames decode 64 frames."""
    import shutil

    root = Path(shutil.copytree(mars.root, tmp_path / "mars"))
    facial = root / "val" / "facial-attributes"
    first = script_gt_sets(facial)[0]
    assert np.load(facial / f"{first['input']}.npy").shape[0] == 58
    long = first["gts"][1]
    np.save(facial / f"{long}.npy", np.zeros((10_500, 25), np.float32))
    args = ["evaluate", "--data", str(root), "--predictions", str(mars.results), "--post-processor", str(mars.ckpt),
            "--device", "cpu"]  # fmt: skip
    assert run_cli([*args, "--alignment", "official"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"{first['input']}, ground truth" in line and "decodes 64 frames for a 58-frame prediction" in line
    # --alignment mean decodes it, keeps the first 58 frames and says so, naming the GT in the set
    out = tmp_path / "metrics.json"
    assert run_cli([*args, "--alignment", "mean", "--out", str(out)]) == 0
    warnings = json.loads(out.read_text())["warnings"]
    positions = [j for j, g in enumerate(first["gts"]) if g == long]
    text = "\n".join(warnings)
    for j in positions:
        assert f"{first['input']}, ground truth {j} ({long}): the post-processor's segments give 64 frames" in text
    assert sum("give 64 frames" in w for w in warnings) >= len(positions) > 0
