"""Random weight files in the official layouts, and small geometry helpers, shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def save_random_inception(path: Path) -> Path:
    """Random FID Inception weights whose BatchNorm statistics come from one batch.

    Raw random weights give activations that explode through 90-odd layers; one training-mode
    batch with a cumulative BatchNorm average keeps every activation O(1), so FID values are finite
    and distinguish folders.
    """
    from reactcli.metrics.inception import FIDInceptionV3

    torch.manual_seed(0)
    model = FIDInceptionV3()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average: one batch sets the running stats
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, 64, 64))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def rotation_zyx(x: float, y: float, z: float) -> np.ndarray:
    """Rz @ Ry @ Rx, written independently of the renderer's rotation_matrix."""
    cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx
