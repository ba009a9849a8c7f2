# ruff: noqa: F811  (pytest fixtures imported from _model_fixtures are parameters by design)
"""torchrun: two CPU processes (gloo) train the predictor together; rank 0 writes the checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _model_fixtures import TINY, set_args, trained_run  # noqa: F401

from reactcli.models.checkpoint import load_reaction_model


@pytest.mark.slow
def test_two_process_gloo_training(trained_run: Path, preprocessed_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "reactcli.cli", "train-predictor", "--config", str(TINY), "--data", str(preprocessed_root),
        "--tokenizer", str(trained_run / "tokenizer.ckpt"), "--out", str(out), "--device", "cpu",
        "--seed", "1", *set_args(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
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
