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
    names = sorted(p.name for p in out.iterdir())  # the checkpoints, one log, no temp files
    assert names == ["tokenizer.ckpt", "tokenizer_curves.png", "tokenizer_last.ckpt", "tokenizer_log.csv"]
    lines = (out / "tokenizer_log.csv").read_text().splitlines()
    assert lines[0].startswith("step,") and [int(line.split(",")[0]) for line in lines[1:]] == [4, 7, 8, 10, 12]
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


@pytest.mark.slow
def test_two_process_stop_on_sigint(trained_run: Path, preprocessed_root: Path, tmp_path: Path) -> None:
    """Ctrl-C reaches torchrun, which forwards it to both workers: they stop after the same step
    (the flag is all-reduced after every step), rank 0 keeps the checkpoint of that step, rank 1 says it
    stopped, and neither hangs or leaves a temp file."""
    import re
    import signal
    import time

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "reactcli.cli", "train-predictor", "--config", str(TINY), "--data", str(preprocessed_root),
           "--tokenizer", str(trained_run / "tokenizer.ckpt"), "--out", str(out), "--device", "cpu", *set_args(),
           "--max-steps", "5000", "--set", "training.val_every=10000", "--set", "training.log_every=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = out / "predictor_log.csv"
    deadline = time.monotonic() + 240
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    kept = re.search(r"train predictor: stopped by SIGINT after step (\d+) of 5000; kept \S+predictor_last"
                     r"\.ckpt \(step \d+\)", err)
    assert kept, err[-3000:]
    step = int(kept[1])
    assert f"train predictor: rank 1 stopped by SIGINT after step {step} of 5000" in err
    assert torch.load(out / "predictor_last.ckpt", weights_only=True)["training_state"]["step"] == step
    assert [int(row.split(",")[0]) for row in log.read_text().splitlines()[1:]] == list(range(1, step + 1))
    assert sorted(p.name for p in out.iterdir()) == ["predictor_curves.png", "predictor_last.ckpt",
                                                     "predictor_log.csv"]
