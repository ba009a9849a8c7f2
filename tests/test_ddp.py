# ruff: noqa: F811  (pytest fixtures imported from _model_fixtures are parameters by design)
"""torchrun: two CPU processes (gloo) train the tokenizer and the predictor together; rank 0 writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _model_fixtures import TINY, set_args, trained_run  # noqa: F401

from reactcli.models.checkpoint import load_reaction_model, load_tokenizer


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "reactcli.cli", *args, "--device", "cpu", *set_args()]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_two_process_gloo_tokenizer_training(trained_run: Path, preprocessed_root: Path, tmp_path: Path) -> None:
    """Gradients are averaged (the two shards see different windows, so the result differs from the
    one-process run of the same seed), only rank 0 reports and writes, and the checkpoint works."""
    out = tmp_path / "ddp"
    proc = _torchrun("train-tokenizer", "--config", str(TINY), "--data", str(preprocessed_root), "--out", str(out),
                     "--seed", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("tokenizer reconstruction") == 1  # only rank 0 reports
    names = sorted(p.name for p in out.iterdir())  # one checkpoint, one log, no temp files
    assert names == ["tokenizer.ckpt", "tokenizer_curves.png", "tokenizer_log.csv"]
    lines = (out / "tokenizer_log.csv").read_text().splitlines()
    assert lines[0].startswith("step,") and [int(line.split(",")[0]) for line in lines[1:]] == [4, 8, 10, 12]
    ddp, _, data = load_tokenizer(out / "tokenizer.ckpt")
    single, _, _ = load_tokenizer(trained_run / "tokenizer.ckpt")  # same config and seed, one process
    assert data["steps"] == 12 and all(torch.isfinite(p).all() for p in ddp.parameters())
    state, other = ddp.state_dict(), single.state_dict()
    assert any(not torch.equal(state[k], other[k]) for k in state)


@pytest.mark.slow
def test_two_process_gloo_training(trained_run: Path, preprocessed_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    proc = _torchrun("train-predictor", "--config", str(TINY), "--data", str(preprocessed_root),
                     "--tokenizer", str(trained_run / "tokenizer.ckpt"), "--out", str(out), "--seed", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("reaction predictor") == 1  # only rank 0 reports
    last = torch.load(out / "predictor_last.ckpt", weights_only=True)
    assert last["training_state"]["step"] == 8
    model, _ = load_reaction_model(out / "predictor.ckpt")
    assert all(torch.isfinite(p).all() for p in model.predictor.parameters())
    names = sorted(p.name for p in out.iterdir())  # no temp files, one log
    assert names == ["predictor.ckpt", "predictor_curves.png", "predictor_last.ckpt", "predictor_log.csv"]
    lines = (out / "predictor_log.csv").read_text().splitlines()
    assert lines[0].startswith("step,") and [int(line.split(",")[0]) for line in lines[1:]] == [4, 8]
