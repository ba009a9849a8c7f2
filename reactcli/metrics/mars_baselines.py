"""The naive rows of the REACT 2026 baseline script (``baseline_reaction_metrics.py``), as library functions.

The script draws the GT sets (``data/mars_gt.py``), aligns them to each input's length with the
post-processor, builds K predictions per sample for four rows, in this order, and scores each with
FRC, FRD, TLCC, smse, FRVar and MAE:

* ``GT_identical``: the aligned ground-truth set itself (K = G). Its FRC is reported as K (10) once
  the predictions are checked equal to the ground truths: the CCC of a constant channel is 0, so the
  computed value would be below K.
* ``B_Random``: per sample, from torch's generator *after* the post-processor used it: AUs
  ``randint{0, 1}``, VA from N(0, 0.5) redrawn (whole tensor, masked keep) until inside [-1, 1],
  expressions U[0, 1) normalised to sum 1; shaped like the aligned ground-truth set.
* ``B_Mime``: the input's own attributes, K copies.
* ``B_MeanFr``: the per-dim mean over every frame of every *train* listener file (float64 sum, then
  float32), constant, K copies.

Expected on any data: B_MeanFr scores FRC 0, FRDiv 0 and FRVar 0; B_Mime FRDiv 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from reactcli.errors import ReactError
from reactcli.metrics.mars import MarsScores, score_mars

MARS_BASELINES = ("GT_identical", "B_Random", "B_Mime", "B_MeanFr")
AU_DIMS, VA_DIMS, EXPR_DIMS = 15, 2, 8


def train_mean_frame(listener_series: Iterable[np.ndarray]) -> np.ndarray:
    """(25,) float32: the mean over every frame of every train listener series, summed in float64."""
    total = np.zeros(AU_DIMS + VA_DIMS + EXPR_DIMS)
    frames = 0
    for series in listener_series:
        series = np.asarray(series, dtype=np.float32)
        total += series.astype(np.float64).sum(axis=0)
        frames += series.shape[0]
    if frames == 0:
        raise ReactError("B_MeanFr needs the train split's listener facial attributes, and found no frames")
    return (total / frames).astype(np.float32)


def _truncated_normal(shape: tuple[int, ...], generator) -> object:
    import torch

    samples = torch.empty(shape, dtype=torch.float32)
    redraw = torch.ones(shape, dtype=torch.bool)
    while bool(redraw.any()):
        new = torch.randn(shape, dtype=torch.float32, generator=generator) * 0.5 + 0.0
        samples[redraw] = new[redraw]
        redraw = (samples < -1.0) | (samples > 1.0)
    return samples


def b_random(aligned_targets: Sequence[np.ndarray], generator) -> list[np.ndarray]:
    """B_Random for every sample in order, drawing from ``generator`` (a ``torch.Generator``) as the script does."""
    import torch

    out = []
    for target in aligned_targets:
        rows, length = target.shape[0], target.shape[1]
        au = torch.randint(0, 2, (rows, length, AU_DIMS), dtype=torch.float32, generator=generator)
        va = _truncated_normal((rows, length, VA_DIMS), generator)
        raw = torch.rand((rows, length, EXPR_DIMS), generator=generator)
        out.append(torch.cat([au, va, raw / raw.sum(dim=-1, keepdim=True)], dim=-1).numpy())
    return out


def naive_predictions(
    speakers: Sequence[np.ndarray],
    aligned_targets: Sequence[np.ndarray],
    train_mean: np.ndarray,
    generator,
    k: int = 10,
) -> dict[str, list[np.ndarray]]:
    """The four rows' predictions, built in the script's order (B_Random consumes ``generator``)."""
    mean = np.asarray(train_mean, dtype=np.float32)
    return {
        "GT_identical": [np.array(t, dtype=np.float32) for t in aligned_targets],
        "B_Random": b_random(aligned_targets, generator),
        "B_Mime": [np.broadcast_to(np.asarray(s, np.float32)[None], (k, *np.shape(s))) for s in speakers],
        "B_MeanFr": [np.broadcast_to(mean, (k, np.shape(s)[0], mean.shape[0])) for s in speakers],
    }


def score_naive_baselines(
    speakers: Sequence[np.ndarray],
    aligned_targets: Sequence[np.ndarray],
    train_mean: np.ndarray,
    generator,
    k: int = 10,
    workers: int | None = None,
    names: Sequence[str] | None = None,
    fixed: bool = True,
) -> dict[str, MarsScores]:
    """Every row scored with FRC, FRD, FRSyn, FRDiv, FRVar and MAE (and FRSyn_fixed), GT_identical's FRC forced."""
    rows = naive_predictions(speakers, aligned_targets, train_mean, generator, k)
    return {
        name: score_mars(
            speakers,
            preds,
            aligned_targets,
            mae=True,
            fixed=fixed,
            force_identity_frc=(name == "GT_identical"),
            workers=workers,
            names=names,
        )  # fmt: skip
        for name, preds in rows.items()
    }
