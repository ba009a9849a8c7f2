"""--threads: the default follows the CPU affinity, never more; asking for more says why it is slow."""

from __future__ import annotations

import pytest
import torch

from reactcli import runtime
from reactcli.errors import ReactError
from reactcli.runtime import configure_threads, usable_cores


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_is_the_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 1)
    assert configure_threads(None) == (1, None)
    assert torch.get_num_threads() == 1


def test_explicit_threads_and_the_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    assert configure_threads(1) == (1, None)
    assert torch.get_num_threads() == 1
    threads, warning = configure_threads(3)
    assert threads == 3 and torch.get_num_threads() == 3
    assert warning is not None and "--threads 3 is more than the 2 usable core(s)" in warning


def test_omp_num_threads_above_the_cores_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "16")
    threads, warning = configure_threads(None)
    assert threads == 2 and torch.get_num_threads() == 2
    assert warning == "OMP_NUM_THREADS=16 is more than the 2 usable core(s): using 2"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert configure_threads(None) == (1, None)


def test_bad_thread_count_is_one_line() -> None:
    with pytest.raises(ReactError, match="--threads 0: expected a positive number"):
        configure_threads(0)


def test_usable_cores_reads_the_affinity() -> None:
    import os

    assert usable_cores() == len(os.sched_getaffinity(0))


def test_numba_pool_launch_does_not_undo_torch_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """numba's first thread call launches its OpenMP pool, which resets the count torch shares."""
    import numba  # noqa: F401  (loaded, as after any FRD)

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    configure_threads(1)
    assert torch.get_num_threads() == 1


COMPUTE_COMMANDS = ("preprocess", "train-tokenizer", "train-predictor", "generate", "evaluate", "baselines", "render",
                    "fid", "live")


def test_every_compute_command_takes_threads_and_warns_when_oversubscribed(tmp_path) -> None:
    import subprocess
    import sys

    from typer.main import get_command

    from reactcli.cli import app

    group = get_command(app)
    for name in COMPUTE_COMMANDS:
        options = {opt for param in group.commands[name].params for opt in getattr(param, "opts", [])}
        assert "--threads" in options, name
    too_many = usable_cores() + 3
    proc = subprocess.run(
        [sys.executable, "-m", "reactcli.cli", "fid", str(tmp_path), str(tmp_path), "--inception",
         str(tmp_path / "missing.pth"), "--threads", str(too_many)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert f"warning: --threads {too_many} is more than the {usable_cores()} usable core(s)" in proc.stderr
