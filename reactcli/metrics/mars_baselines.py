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

:func:`prepare_mars_baselines` / :func:`run_mars_baselines` are the stage behind ``react baselines``
on a MARS root: the same split, GT sets and alignment as ``react evaluate``, these four rows, then
Ridge and RidgeRes (``metrics/mars_ridge.py``), as one baselines JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reactcli.editions import MARS_GT_COUNT, MARS_METRIC_KEYS, Edition
from reactcli.errors import ReactError
from reactcli.metrics.mars import score_mars
from reactcli.metrics.mars_truth import AlignmentJob, MarsTruth, ScoringOptions, align_truth
from reactcli.metrics.ridge import DEFAULT_RESIDUAL_SCALE
from reactcli.vocab import ACTION_UNITS, EMOTION_DIM, EXPRESSIONS_8, VALENCE_AROUSAL

MARS_BASELINES = ("GT_identical", "B_Random", "B_Mime", "B_MeanFr")


def train_mean_frame(listener_series: Iterable[np.ndarray]) -> np.ndarray:
    """(25,) float32: the mean over every frame of every train listener series, summed in float64."""
    total = np.zeros(EMOTION_DIM)
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
        au = torch.randint(0, 2, (rows, length, len(ACTION_UNITS)), dtype=torch.float32, generator=generator)
        va = _truncated_normal((rows, length, len(VALENCE_AROUSAL)), generator)
        raw = torch.rand((rows, length, len(EXPRESSIONS_8)), generator=generator)
        out.append(torch.cat([au, va, raw / raw.sum(dim=-1, keepdim=True)], dim=-1).numpy())
    return out


def gt_identical(aligned_targets: Sequence[np.ndarray]) -> list[np.ndarray]:
    """GT_identical: float32 copies of the aligned ground-truth sets."""
    return [np.array(t, dtype=np.float32) for t in aligned_targets]


def b_mime(speakers: Sequence[np.ndarray], k: int = MARS_GT_COUNT) -> list[np.ndarray]:
    """B_Mime: each input's own attributes, K copies (read-only views)."""
    return [np.broadcast_to(np.asarray(s, np.float32)[None], (k, *np.shape(s))) for s in speakers]


def b_mean_fr(speakers: Sequence[np.ndarray], train_mean: np.ndarray, k: int = MARS_GT_COUNT) -> list[np.ndarray]:
    """B_MeanFr: the train mean frame at every frame of each input, K copies (read-only views)."""
    mean = np.asarray(train_mean, dtype=np.float32)
    return [np.broadcast_to(mean, (k, np.shape(s)[0], mean.shape[0])) for s in speakers]


def naive_rows(
    speakers: Sequence[np.ndarray],
    aligned_targets: Sequence[np.ndarray],
    generator,
    train_mean: np.ndarray | None,
    k: int = MARS_GT_COUNT,
) -> dict[str, Callable[[], list[np.ndarray]]]:
    """The naive rows in the script's order, each built when called (B_Random consumes ``generator``,
    so call them in order); B_MeanFr only with a ``train_mean``."""
    rows: dict[str, Callable[[], list[np.ndarray]]] = {
        "GT_identical": lambda: gt_identical(aligned_targets),
        "B_Random": lambda: b_random(aligned_targets, generator),
        "B_Mime": lambda: b_mime(speakers, k),
    }
    if train_mean is not None:
        rows["B_MeanFr"] = lambda: b_mean_fr(speakers, train_mean, k)
    return rows


# -- the stage behind `react baselines` on a MARS root ----------------------------------------------
def train_listener_mean(root: str | Path) -> np.ndarray:
    """B_MeanFr's frame: every train listener file's facial attributes (the script reads them all)."""
    from reactcli.data.mars import list_recordings
    from reactcli.data.mars_loaders import load_attributes

    listing = list_recordings(root, "train")
    listeners = [r for r in listing.recordings if r.role == "listener"]
    return train_mean_frame(load_attributes(listing.folder / f"{r.id}.npy") for r in listeners)


@dataclass
class MarsBaselines:
    """A checked baselines run, ready to go: the split, the loaded alignment and the row settings."""

    root: Path
    truth: MarsTruth
    alignment: AlignmentJob
    workers: int | None
    seed: int
    ridge: tuple[int, int, float] | None
    residual_scale: float


def prepare_mars_baselines(
    root: str | Path,
    split: str,
    *,
    edition: Edition,
    options: ScoringOptions | None = None,
    workers: int | None = None,
    seed: int = 0,
    ridge: tuple[int, int, float] | None = None,
    residual_scale: float = DEFAULT_RESIDUAL_SCALE,
) -> MarsBaselines:
    """The checks of ``react evaluate`` on a MARS split (options, split, GT sets and files, length pairs,
    the checkpoint), before any row is built; the predictions have the inputs' lengths."""
    options = options or ScoringOptions()
    truth = options.load_truth(root, split, edition)
    job = options.prepare_alignment(truth, truth.lengths)
    return MarsBaselines(Path(root), truth, job, workers, seed, ridge, residual_scale)


def run_mars_baselines(
    prepared: MarsBaselines,
    on_stage: Callable[[str], None] | None = None,
    on_align: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Every row of a MARS split scored as ``react evaluate`` scores a model; the dict is baselines.json.

    The naive rows follow the 2026 script: the ground truths are aligned first, B_Random continues
    the torch stream the alignment used (on CPU with ``--alignment official``, the script's exact
    stream; otherwise the script's stream as it is after the post-processor's construction),
    GT_identical's FRC is forced to K after the equality check. ``ridge`` = (lookback, step, alpha)
    adds Ridge and RidgeRes (``metrics/mars_ridge.py``; ``seed`` draws RidgeRes's residuals). A row
    whose inputs are missing (no train split) is left out with the reason.
    """
    from reactcli.metrics.evaluate import null_non_finite
    from reactcli.metrics.mars_evaluate import counter, metric_values, protocol
    from reactcli.models.post_processor import baseline_script_generator

    stage = on_stage or (lambda _name: None)
    root, truth, edition = prepared.root, prepared.truth, prepared.truth.edition
    split, seed, residual_scale = truth.split, prepared.seed, prepared.residual_scale
    stage("aligning the ground truths")
    aligned = align_truth(truth, truth.lengths, prepared.alignment, on_sample=counter(on_align, truth))
    generator = aligned.generator
    if generator is None:  # the script's stream after the post-processor's construction, no eps drawn
        generator = baseline_script_generator(prepared.alignment.seed)
    k = MARS_GT_COUNT
    skipped: dict[str, str] = {}
    try:
        mean = train_listener_mean(root)
    except ReactError as exc:
        mean = None
        skipped["B_MeanFr"] = f"needs the train split's listener facial attributes: {exc}"
    rows_preds = naive_rows(truth.speakers, aligned.targets, generator, mean, k)
    ridge_record = None
    if prepared.ridge is not None:
        from reactcli.metrics.mars_ridge import fit_mars_ridge, mars_ridge_predictions, mars_ridge_res_predictions

        stage("fitting Ridge on the train split")
        try:
            fitted = fit_mars_ridge(root, truth.bidirectional, *prepared.ridge)
        except ReactError as exc:
            skipped["Ridge"] = skipped["RidgeRes"] = f"needs the train split: {exc}"
        else:
            ridge_record = {**fitted.record(), "residual_scale": residual_scale, "seed": seed}
            rows_preds["Ridge"] = lambda: mars_ridge_predictions(fitted, split, truth.samples, truth.lengths, k)
            rows_preds["RidgeRes"] = lambda: mars_ridge_res_predictions(
                fitted, split, truth.samples, truth.lengths, k, residual_scale, seed
            )
    rows: dict[str, dict[str, Any]] = {}
    warnings = list(aligned.warnings)
    for name, make in rows_preds.items():
        stage(name)
        try:
            preds = make()
        except ReactError as exc:
            skipped[name] = str(exc)
            continue
        scores = score_mars(
            truth.speakers, preds, aligned.targets, mae=edition.name == "2026", fixed=True, fps=edition.fps,
            force_identity_frc=(name == "GT_identical"), workers=prepared.workers, names=truth.ids,
        )  # fmt: skip
        warnings += [f"{name}: {w}" for w in scores.warnings]
        values = {**metric_values(scores), "timings": {m: round(v, 4) for m, v in scores.seconds.items()}}
        rows[name] = null_non_finite(values, MARS_METRIC_KEYS)
    payload: dict[str, Any] = {
        "edition": edition.name,
        "split": split,
        "official": aligned.official,
        "protocol": protocol(truth, aligned),
        "N": len(truth.samples),
        "K": k,
        "rows": rows,
        "ground_truth": truth.ground_truth_record(),
        "alignment": aligned.record,
        "warnings": warnings,
    }
    if mean is not None:
        payload["train_mean_fr"] = [float(v) for v in mean]
    if ridge_record is not None:
        payload["ridge"] = ridge_record
    if skipped:
        payload["skipped"] = skipped
    return payload
