# ruff: noqa: F811  (pytest fixtures imported from _model_fixtures are parameters by design)
"""What a CUDA training run does differently, tested through the code paths that also run on the CPU:
batches cut from a device corpus with left truncations moved to the front and mask-free attention
(the same losses and gradients as the CPU steps), steps that read nothing back from the device, a
loop that reads once per log row, the deferred non-finite check, fused AdamW and torch.compile."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _model_fixtures import TINY, random_model, run_cli, set_args

from reactcli.errors import ReactError
from reactcli.training.corpus import WindowBatches
from reactcli.training.ddp import DistContext
from reactcli.training.loop import LoopConfig, run_loop
from reactcli.training.predictor_stage import WINDOW_KEYS, emotion_weights, predictor_steps

CPU = DistContext(0, 1, 0, torch.device("cpu"))
READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__")


class ReadSpy:
    """Counts Tensor reads (item, tolist, bool(), float(), int()) made by reactcli's own code."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        root = str(Path(__file__).resolve().parents[1] / "reactcli")
        for name in READS:
            real = getattr(torch.Tensor, name)

            def spy(tensor, *args, _real=real, **kwargs):  # noqa: ANN001, ANN202
                if sys._getframe(1).f_code.co_filename.startswith(root):
                    self.count += 1
                return _real(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, spy)


def _corpus(n: int = 6, lengths: tuple[int, ...] | None = None, audio_dim: int = 10) -> dict[str, list[np.ndarray]]:
    """Random recordings (``lengths``: ragged, some shorter than the crop) with every window key."""
    rng = np.random.default_rng(0)
    lengths = lengths or (60,) * n
    out: dict[str, list[np.ndarray]] = {k: [] for k in WINDOW_KEYS}
    for t in lengths:
        out["speaker_audio"].append(rng.normal(size=(t, audio_dim)).astype(np.float32))
        out["speaker_emotion"].append(rng.random((t, 25), dtype=np.float32))
        out["listener_emotion"].append(rng.random((t, 25), dtype=np.float32))
        out["speaker_tokens"].append(rng.integers(0, 1000, t))
        out["listener_tokens"].append(rng.integers(0, 1000, t))
    return out


def _small(cfg):  # noqa: ANN001, ANN202
    """Crops of 24 frames (the model's window is 16: the sliding tail is in play), truncations and
    dropped inputs often."""
    return cfg.model_copy(update={"training": cfg.training.model_copy(update={
        "predictor_crop_frames": 24, "predictor_batch_size": 4, "truncate_prob": 0.7, "listener_dropout": 0.3})})


def _steps(model, corpus, cfg, aligned: bool, device_corpus: bool):  # noqa: ANN001, ANN202
    windows = WindowBatches(corpus, cfg.training.predictor_crop_frames, cfg.training.predictor_batch_size, 3,
                            device="cpu" if device_corpus else None)
    valid = torch.ones(model.vocab_size, dtype=torch.bool)
    return predictor_steps(model, model, windows, cfg, torch.device("cpu"), valid, emotion_weights(2.0), aligned)


@pytest.mark.parametrize("lengths", [None, (60, 14, 40, 9, 60, 33)])
def test_the_cuda_steps_give_the_cpu_steps_losses_and_gradients(lengths: tuple[int, ...] | None) -> None:
    """The CUDA form of a predictor step (device corpus, truncated rows moved to the front, no key
    padding, mask-free attention with a sliding window longer than the attention's) has the CPU
    step's loss, parts and gradients up to float rounding, with truncations, dropped listener inputs,
    short recordings and the skip path in play."""
    bundle = random_model(context=16, patch=4, emotion_skip=3)
    model, cfg = bundle.predictor.train(), _small(bundle.config)
    corpus = _corpus(lengths=lengths)
    cpu, cuda = _steps(model, corpus, cfg, False, False), _steps(model, corpus, cfg, True, True)
    for step in range(6):
        results = []
        for loss_at in (cpu, cuda):
            model.zero_grad()
            loss, parts = loss_at(step)
            loss.backward()
            results.append((loss.detach(), parts, [p.grad.clone() for p in model.parameters() if p.grad is not None]))
        (a, pa, ga), (b, pb, gb) = results
        torch.testing.assert_close(b, a, rtol=2e-5, atol=1e-6)
        assert set(pa) == set(pb) == {"ce", "emotion_mse"}
        for key in pa:
            torch.testing.assert_close(pb[key], pa[key], rtol=2e-5, atol=1e-6)
        assert len(ga) == len(gb)
        for x, y in zip(ga, gb, strict=True):
            torch.testing.assert_close(y, x, rtol=1e-3, atol=1e-6)


def test_steps_read_nothing_back_from_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step of either stage, in either form, reads no tensor back to the host (what would make the
    host wait for a CUDA device every step)."""
    from reactcli.training.tokenizer_stage import tokenizer_steps

    bundle = random_model(context=16, patch=4, emotion_skip=3)
    model, cfg = bundle.predictor.train(), _small(bundle.config)
    corpus = _corpus(lengths=(60, 14, 40, 9, 60, 33))
    steps = [_steps(model, corpus, cfg, aligned, aligned) for aligned in (False, True)]
    faces = {"listener_3dmm": [np.random.default_rng(i).normal(size=(n, 58)).astype(np.float32) * 0.1
                               for i, n in enumerate((20, 5, 30))],
             "listener_emotion": [np.random.default_rng(i).random((n, 25), dtype=np.float32)
                                  for i, n in enumerate((20, 5, 30))]}
    tokenizer = bundle.tokenizer.train()
    for aligned in (False, True):
        batches = WindowBatches(faces, 8, 4, 0, device="cpu" if aligned else None)
        steps.append(tokenizer_steps(tokenizer, batches, torch.device("cpu"), 2, aligned))
    spy = ReadSpy(monkeypatch)
    for loss_at in steps:
        for step in range(4):
            loss, _ = loss_at(step)
            loss.backward()
    assert spy.count == 0
    from reactcli.training.predictor_stage import make_batch

    batch, rngs = WindowBatches(corpus, 24, 4, 3).batch(0)
    make_batch(batch, rngs, model, 0.5)  # without the rows' real lengths it reads the padding mask back
    assert spy.count == 1


def _toy(steps_nan: dict[int, float] | None = None):  # noqa: ANN202
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    data = torch.randn(16, 3)
    steps_nan = steps_nan or {}

    def loss_at(step: int):  # noqa: ANN202
        loss = (model(data[step % 4 :: 4]) ** 2).mean()
        if step in steps_nan:
            loss = loss * steps_nan[step]
        return loss, {"part": loss.detach() * 0.5}

    return model, loss_at


class _Log:
    """Stands in for TrainingLog: keeps the rows."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict]] = []

    def write(self, step: int, values: dict) -> None:
        self.rows.append((step, dict(values)))


def test_the_loop_reads_the_device_once_per_log_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """12 steps, a row every 5 and at the end: reads happen in steps 5, 10 and 12 only, and each row
    holds the exact mean of its steps' losses (float64 sums of the float32 losses) and parts."""
    from reactcli.training.schedule import make_optimizer, make_scheduler

    model, loss_at = _toy()
    losses: dict[int, float] = {}

    def recording(step: int):  # noqa: ANN202
        loss, parts = loss_at(step)
        losses[step] = loss.detach().clone()
        return loss, parts

    opt = make_optimizer(model, 1e-2, 0.0, (0.9, 0.95))
    sched = make_scheduler(opt, 1, 12)
    spy = ReadSpy(monkeypatch)
    seen: list[int] = []
    log = _Log()
    cfg = LoopConfig("toy", 12, 0, 1.0, 100, 5, 0, frames_per_step=4, flops=lambda s: 1e6, peak_flops=1e9)
    run_loop(cfg, CPU, model, opt, sched, recording, on_step=lambda done: seen.append(spy.count), log=log)
    reads = [b - a for a, b in zip([0, *seen], seen, strict=False)]
    assert [i + 1 for i, r in enumerate(reads) if r] == [5, 10, 12]
    assert [step for step, _ in log.rows] == [5, 10, 12]
    for (step, row), first in zip(log.rows, (0, 5, 10), strict=True):
        window = [float(losses[s]) for s in range(first, step)]
        assert row["loss"] == sum(window) / len(window)
        assert row["part"] == sum(0.5 * v for v in window) / len(window)
        assert row["mfu"] > 0 and row["frames_per_s"] > 0 and math.isfinite(row["grad_norm"])


@pytest.mark.parametrize("bad", [{3: float("nan")}, {2: float("inf"), 3: float("nan")}])
def test_a_non_finite_loss_stops_at_the_next_row_naming_its_step(bad: dict[int, float]) -> None:
    from reactcli.training.schedule import make_optimizer, make_scheduler

    model, loss_at = _toy(bad)
    opt = make_optimizer(model, 1e-2, 0.0, (0.9, 0.95))
    evals: list[int] = []
    log = _Log()
    cfg = LoopConfig("toy", 12, 0, 1.0, 5, 5, 0)
    first = min(bad)
    with pytest.raises(ReactError, match=rf"toy: loss became {bad[first]} at step {first}; lower the LR"):
        run_loop(cfg, CPU, model, opt, make_scheduler(opt, 1, 12), loss_at,
                 on_eval=lambda step, loss: evals.append(step) or {}, log=log)
    assert evals == [] and log.rows == []  # nothing validated or written after the bad step


def test_fused_adamw_on_cuda_only() -> None:
    from reactcli.training.schedule import make_optimizer

    model = torch.nn.Linear(3, 3)
    assert not make_optimizer(model, 1e-3, 0.1, (0.9, 0.95), torch.device("cpu")).defaults.get("fused")
    assert not make_optimizer(model, 1e-3, 0.1, (0.9, 0.95)).defaults.get("fused")
    if torch.cuda.is_available():
        assert make_optimizer(model.cuda(), 1e-3, 0.1, (0.9, 0.95), torch.device("cuda")).defaults["fused"]


def test_training_compile_wraps_the_trained_model(preprocessed_root: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``training.compile = true`` trains both stages through torch.compile (recorded here; the real
    compile is the slow test below) and checkpoints the model itself; off by default."""
    compiled: list[str] = []

    def fake_compile(model, *args, **kwargs):  # noqa: ANN001, ANN202
        compiled.append(type(model).__name__)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    out = tmp_path / "run"
    common = ("--config", TINY, "--data", preprocessed_root, "--out", out, "--device", "cpu", *set_args(),
              "--set", "training.tokenizer_max_steps=2", "--set", "training.predictor_max_steps=2")
    run_cli("train-tokenizer", *common)
    run_cli("train-predictor", *common, "--tokenizer", out / "tokenizer.ckpt")
    assert compiled == []
    run_cli("train-tokenizer", *common, "--set", "training.compile=true", "--peak-tflops", "0.5")
    run_cli("train-predictor", *common, "--tokenizer", out / "tokenizer.ckpt", "--set", "training.compile=true")
    assert compiled == ["FaceTokenizer", "ReactionPredictor"]
    import pandas as pd

    log = pd.read_csv(out / "tokenizer_log.csv")
    assert (log["mfu"] > 0).all()  # --peak-tflops gives the CPU a peak


@pytest.mark.slow
def test_a_compiled_tokenizer_trains_like_the_eager_one(tmp_path: Path) -> None:
    """torch.compile on the CPU (inductor): the same losses as eager steps within float rounding
    (about a minute of compiling on 2 cores)."""
    from reactcli.training.loop import compiled

    bundle = random_model()
    faces = {"listener_3dmm": [np.random.default_rng(i).normal(size=(30, 58)).astype(np.float32) * 0.1
                               for i in range(4)],
             "listener_emotion": [np.random.default_rng(i).random((30, 25), dtype=np.float32) for i in range(4)]}
    from reactcli.training.tokenizer_stage import tokenizer_steps

    batches = WindowBatches(faces, 8, 4, 0)
    eager = tokenizer_steps(bundle.tokenizer.train(), batches, torch.device("cpu"), 100)
    fast = tokenizer_steps(compiled(bundle.tokenizer.train(), True), batches, torch.device("cpu"), 100)
    for step in range(3):
        a, _ = eager(step)
        b, _ = fast(step)
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
