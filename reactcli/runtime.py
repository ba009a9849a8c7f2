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
