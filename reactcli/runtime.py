"""Seeds and devices: the two things every command needs to be reproducible and portable."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import numpy as np

from reactcli.errors import ReactError

if TYPE_CHECKING:
    import torch


def derive_seed(*parts: int | str) -> int:
    """One seed in [0, 2**63) from several parts, e.g. ``derive_seed("frame", stream_seed, t)``.

    Every stream of random numbers that is a function of several things (the run's seed, a step, a
    rank, a sample, a frame) gets its seed here, from :class:`numpy.random.SeedSequence`, whose
    hashing spreads nearby inputs apart and accepts integers of any size; hand-rolled mixers
    (``seed * prime + step``) collide (seed 1 step 0 against seed 0 step 1_000_003) and overflow.
    Integers may be negative (mapped one-to-one onto the non-negative ones), strings name the use so
    that two uses with the same numbers draw different streams. The result fits every consumer:
    torch generators, ``numpy.random.default_rng`` and int64 tensors.
    """
    entropy = []
    for part in parts:
        if isinstance(part, str):
            entropy.append(int.from_bytes(part.encode(), "little"))
        else:
            number = int(part)
            entropy.append(2 * number if number >= 0 else -2 * number - 1)
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that the same seed gives the same output."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def resolve_device(name: str) -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N`` to a torch device; ``auto`` prefers CUDA when present."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ReactError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ReactError(f"--device {name}: not a device name ({exc})") from None


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. under ``taskset`` or a
    container's cpuset), which can be fewer than the machine has."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        return max(1, os.cpu_count() or 1)


def configure_threads(threads: int | None) -> tuple[int, str | None]:
    """Set torch's (and numba's, when loaded) CPU threads; return ``(threads, warning or None)``.

    ``None`` means the cores this process may use (:func:`usable_cores`), never more. Torch's own
    default is the machine's cores, so on a machine shared with another job, or under ``taskset``,
    its threads wait for each other at every barrier: on 2 cores with one taken, 30 training steps
    took 7x longer with 2 threads than with 1. The warning says so when more threads than usable
    cores are asked for (by ``--threads`` or by ``OMP_NUM_THREADS``).
    """
    import sys

    import torch

    cores = usable_cores()
    if threads is not None and threads < 1:
        raise ReactError(f"--threads {threads}: expected a positive number of threads")
    warning = None
    if threads is not None:
        wanted = threads
        if wanted > cores:
            warning = (f"--threads {threads} is more than the {cores} usable core(s): threads will wait for each "
                       f"other; use --threads {cores} or fewer")
    else:
        wanted = cores
        omp = os.environ.get("OMP_NUM_THREADS", "")
        if omp.isdigit() and int(omp) >= 1:
            wanted = min(cores, int(omp))
            if int(omp) > cores:
                warning = f"OMP_NUM_THREADS={omp} is more than the {cores} usable core(s): using {cores}"
    if "numba" in sys.modules:
        import numba

        # First: numba's first call launches its OpenMP pool, which resets the OpenMP thread count
        # that torch shares with it (seen: torch back at 2 threads after set_num_threads(1)).
        numba.set_num_threads(min(wanted, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(wanted)
    return wanted, warning
