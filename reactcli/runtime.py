"""Seeds and devices: the two things every command needs to be reproducible and portable."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import numpy as np

from reactcli.errors import ReactError

if TYPE_CHECKING:
    import torch


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
