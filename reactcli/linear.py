"""Causal least squares over lagged frames: the one closed-form fit two layers share.

The Ridge baseline (``metrics/ridge.py``) and the predictor's fixed linear emotion path
(``predictor.emotion_skip`` in ``models/predictor.py``) both regress a target at frame t on inputs
at frames ``t - lag``. The solver lives on the floor of the layers (numpy only, nothing from the
package) so that the model does not reach up into the metrics for it.
"""

from __future__ import annotations

import numpy as np


def lagged(frames: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """(T, F) -> (T, L * F): row t holds frames t - lag for each lag (zeros before frame 0).

    Only frames <= t are read, so a fit on these rows is online, like the model it stands beside.
    """
    t, f = frames.shape
    out = np.zeros((t, len(lags) * f), dtype=np.float64)
    for i, lag in enumerate(lags):
        out[lag:, i * f : (i + 1) * f] = frames[: t - lag] if lag else frames
    return out


def solve_lagged(
    inputs: list[np.ndarray], targets: list[np.ndarray], lags: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge from lagged (T, F) inputs to (T, D) targets: (L * F, D) weights, (D,) bias.

    The normal equations are accumulated clip by clip in float64, so a long corpus never has to be
    held as one design matrix. The bias is the targets' mean (inputs are standardised, so their
    lagged copies are near zero mean); the penalty is ``alpha * frames * |w|^2``, so one ``alpha``
    suits a small and a large corpus alike.
    """
    bias = np.concatenate(targets).astype(np.float64).mean(0)
    width = len(lags) * inputs[0].shape[1]
    xtx = np.zeros((width, width))
    xty = np.zeros((width, targets[0].shape[1]))
    frames = 0
    for x_frames, y in zip(inputs, targets, strict=True):
        x = lagged(np.asarray(x_frames, dtype=np.float64), lags)
        xtx += x.T @ x
        xty += x.T @ (np.asarray(y, dtype=np.float64) - bias)
        frames += len(x)
    return np.linalg.solve(xtx + alpha * frames * np.eye(width), xty), bias
