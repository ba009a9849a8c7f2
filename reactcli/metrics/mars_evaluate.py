"""``react evaluate`` on a REACT 2025/2026 (MARS) split: predictions in, the metrics JSON out.

The stage, in the order that fails fastest:

1. the alignment options are checked (a model mode needs the checkpoint, ``resample`` must not get
   one);
2. the split and its ground-truth sets (``metrics/mars_truth.py``: the naive-baseline script's rule
   with ``--gt-seed``, or ``--gt-list``);
3. the predictions: the organisers' test-stage ``results.pt`` (``PRED``, one (K, L, 25) tensor per
   sample in the sorted sample order; ``PRED_EEG``/``GT_EEG``/``EEG_MASK`` in 2026) or a
   ``PredictionSet`` (a ``react generate`` folder, ragged or dense, whose ids must be the split's
   sample ids in order). A prediction's length L may differ from the input's facial-attributes
   length by up to one second (:data:`LENGTH_TOLERANCE`): the official test loader takes L from the
   face-crop video, which can be a frame or two off. The ground truths are aligned to L, as the
   organisers do, and every such sample is listed in ``warnings``;
4. the alignment (post-processor) and the metrics (``metrics/mars.py``: FRC, FRD, FRSyn, FRDiv,
   FRVar, FRSyn_fixed; MAE in 2026; the EEG metrics of ``metrics/mars_eeg.py`` when ``results.pt``
   or the prediction set carries EEG predictions: a set's ground truth is the paired listener's
   EEG at each second's last frame, ``data/eeg_windows.py``).

The result is the metrics JSON (:func:`evaluate_mars`): edition, split, protocol, every GT id, the
alignment mode with its seed, stream and number of draws, the checkpoint's sha256, warnings,
timings; a metric that comes out NaN is null with the reason in ``notes``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reactcli.editions import (
    EEG_DIM,
    EEG_METRICS,
    MARS_FPS,
    MARS_METRIC_KEYS,
    OFFICIAL_METRIC_NAMES,
    Edition,
)
from reactcli.errors import file_error
from reactcli.metrics.evaluate import null_non_finite
from reactcli.metrics.mars import MarsScores, score_mars
from reactcli.metrics.mars_results import is_results, load_torch_object, read_results
from reactcli.metrics.mars_truth import (
    AlignedTruth,
    AlignmentJob,
    MarsTruth,
    ScoringOptions,
    align_truth,
)
from reactcli.predictions import PredictionSet

#: Frames a prediction may differ from its input's facial-attributes length (one second at 30 fps).
LENGTH_TOLERANCE = MARS_FPS
#: At most this many per-sample warnings of one kind are kept (the count of the rest is added).
MAX_WARNINGS = 50


@dataclass
class MarsPredictions:
    """Predictions of a MARS split in the sample order, with where they came from."""

    emotion: list[np.ndarray]  # (K, L_n, 25) float32
    record: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    eeg: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray] | None] | None = None  # PRED, GT, MASK

    @property
    def lengths(self) -> list[int]:
        return [int(p.shape[1]) for p in self.emotion]


def _length_warnings(lengths: list[int], truth: MarsTruth) -> list[str]:
    out = []
    for n, (have, want) in enumerate(zip(lengths, truth.lengths, strict=True)):
        if have != want:
            out.append(
                f"{truth.ids[n]}: the prediction has {have} frames, the input's facial attributes {want}; "
                f"the ground truths are aligned to {have}"
            )
    if len(out) > MAX_WARNINGS:
        out = [*out[:MAX_WARNINGS], f"... and {len(out) - MAX_WARNINGS} more predictions of another length"]
    return out


def load_mars_predictions(path: str | Path, truth: MarsTruth) -> MarsPredictions:
    """Read ``results.pt`` or a prediction set and check it against ``truth`` (module docstring)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in (".pt", ".pth"):
        data = load_torch_object(path, "predictions file")
        if is_results(data):
            results = read_results(path, truth.ids, truth.lengths, LENGTH_TOLERANCE, data=data)
            record = {"path": str(path), "source": "results.pt (the organisers' test stage)"}
            warnings = []
            if results.targets is not None:
                warnings.append(
                    "results.pt's GT (the organisers' unrecorded draw) is not used: the ground truths are "
                    "the sets listed under ground_truth"
                )
            eeg = None
            if results.eeg_predictions is not None:
                eeg = (results.eeg_predictions, results.eeg_targets, results.eeg_masks)
            out = MarsPredictions(results.predictions, record, warnings, eeg)
            out.warnings += _length_warnings(out.lengths, truth)
            return out
    preds = PredictionSet.open(path)
    preds.require("emotion", "the metrics score emotion")
    source = f"the {truth.split} split's samples in the sorted order ({len(truth.ids)})"
    preds.validate_against(truth.ids, None, source)
    for n, (have, want) in enumerate(zip(preds.lengths, truth.lengths, strict=True)):
        if abs(int(have) - int(want)) > LENGTH_TOLERANCE:
            raise file_error(
                preds.emotion_path or path,
                f"sample {n} ({truth.ids[n]}) has {int(have)} frames, the input has {int(want)} "
                f"(more than {LENGTH_TOLERANCE} frames apart)",
            )
    if preds.K < 2:
        raise file_error(preds.emotion_path or path, f"K = {preds.K} reaction per sample; FRDiv needs at least 2")
    preds.check_values("emotion")
    emotion = [np.array(preds.emotion(i), dtype=np.float32) for i in range(len(preds))]
    record = {"path": str(path), "source": f"prediction set ({preds.layout})", "named": preds.named}
    if preds.record:
        record["generation"] = {k: preds.record.get(k) for k in ("edition", "split", "seed", "checkpoint_sha256")}
    out = MarsPredictions(emotion, record, _length_warnings([int(v) for v in preds.lengths], truth))
    if preds.has_eeg:
        out.eeg, note = _set_eeg(preds, truth)
        out.warnings += [note] if note else []
    return out


def _set_eeg(preds: PredictionSet, truth: MarsTruth) -> tuple[tuple | None, str | None]:
    """A prediction set's EEG (one vector per second) with the paired listeners' EEG at the same
    frames as ground truth (``data/eeg_windows.py``), or a warning when the edition has no EEG."""
    from reactcli.data.eeg_windows import eeg_window_count, split_eeg_targets

    if not truth.edition.has_eeg:
        return None, f"the prediction set holds EEG; REACT {truth.edition.name} has no EEG metrics (not scored)"
    fps = truth.edition.fps
    for n, (have, frames) in enumerate(zip(preds.eeg_lengths or [], preds.lengths, strict=True)):
        if have != eeg_window_count(frames, fps):
            raise file_error(preds.eeg_path or preds.path, f"sample {n} ({truth.ids[n]}) has {have} EEG vectors, its "
                             f"{frames} frames make {eeg_window_count(frames, fps)} (one per second)")
    eeg = [np.array(preds.eeg(i), dtype=np.float32) for i in range(len(preds))]
    if eeg[0].shape[-1] != EEG_DIM:
        raise file_error(preds.eeg_path or preds.path,
                         f"EEG estimates have {eeg[0].shape[-1]} dims, expected {EEG_DIM}")
    preds.check_values("eeg")
    targets, masks = split_eeg_targets(truth.root, truth.split, truth.samples, preds.lengths, fps)
    return (eeg, targets, masks), None


def counter(report: Callable[[int, int], None] | None, truth: MarsTruth) -> Callable[[], None] | None:
    """``align_targets``' per-sample callback as (done, total) for a progress bar."""
    if report is None:
        return None
    done = [0]

    def tick() -> None:
        done[0] += 1
        report(done[0], len(truth.samples))

    return tick


def _k_of(predictions: list[np.ndarray]) -> int | list[int]:
    ks = sorted({int(p.shape[0]) for p in predictions})
    return ks[0] if len(ks) == 1 else ks


def metric_values(scores: MarsScores, eeg: dict[str, float] | None = None) -> dict[str, Any]:
    """The metrics of one row under our names, in display order (EEG renamed from the organisers' keys)."""
    out: dict[str, Any] = {key: scores.values[key] for key in MARS_METRIC_KEYS if key in scores.values}
    if eeg is not None:
        for name in EEG_METRICS:
            out[name] = eeg[OFFICIAL_METRIC_NAMES[name]]
    for key in ("FRSyn_fixed_scored", "FRSyn_fixed_excluded"):
        if key in scores.values:
            out[key] = scores.values[key]
    return out


def metric_notes(values: dict[str, Any], edition: Edition) -> dict[str, str]:
    """What a reader of the JSON must know about how each MARS metric was computed."""
    notes = {
        "FRC": "sum over K of the best CCC against the ground truths (at most K)",
        "FRD": "sum over K of the smallest full-DTW distance to the ground truths (exact)",
        "FRSyn": (
            "the official TLCC: prediction 0 only, lags -49..49 (2 s at 25 fps, although MARS is "
            f"{edition.fps} fps), the first NaN lag wins; constant dims saturate it at 49"
        ),
        "FRSyn_fixed": (
            f"all K predictions, lags of +-2 s at {edition.fps} fps, constant dims ignored; "
            f"{values.get('FRSyn_fixed_excluded', 0)} prediction(s) with no usable dim left out"
        ),
    }
    if "MAE" in values:
        notes["MAE"] = "the 2026 baseline script's MAE: valence, arousal and expressions, j over range(K)"
    if "EEG_FRC" in values:
        notes["EEG"] = ("EEG ground truth and mask from results.pt (GT_EEG, EEG_MASK), or for a prediction set "
                        "the paired listener's eeg_processed at each second's last frame; metrics as "
                        "compute_eeg_metrics")
    return notes


def protocol(truth: MarsTruth, aligned: AlignedTruth) -> dict[str, Any]:
    """The protocol in a few fields: enough to tell whether two results are comparable."""
    return {
        "edition": truth.edition.name,
        "dataset": truth.edition.dataset,
        "fps": truth.edition.fps,
        "direction": "both directions" if truth.bidirectional else "speaker -> listener",
        "bidirectional": truth.bidirectional,
        "gt_rule": truth.gt_record["rule"],
        "gt_seed": truth.gt_record.get("seed"),
        "alignment": aligned.record["mode"],
        "official": aligned.official,
    }


@dataclass
class MarsEvaluation:
    """A checked evaluation, ready to run: the split, the predictions and the loaded alignment."""

    truth: MarsTruth
    predictions: MarsPredictions
    alignment: AlignmentJob
    workers: int | None = None
    seconds: float = 0.0
    frd_device: str | None = None  # "cuda...": FRD on the GPU (the torch wavefront); None: the CPU engine


def prepare_mars_evaluation(
    root: str | Path,
    split: str,
    predictions: str | Path,
    *,
    edition: Edition,
    options: ScoringOptions | None = None,
    workers: int | None = None,
    frd_device: str | None = None,
) -> MarsEvaluation:
    """Every check that can fail, before any long computation: options, split, GT sets, predictions,
    every ground-truth file and length pair, the checkpoint (strictly). One ``ReactError`` line each."""
    start = time.perf_counter()
    options = options or ScoringOptions()
    truth = options.load_truth(root, split, edition)
    preds = load_mars_predictions(predictions, truth)
    job = options.prepare_alignment(truth, preds.lengths)
    return MarsEvaluation(truth, preds, job, workers, time.perf_counter() - start, frd_device)


def run_mars_evaluation(
    prepared: MarsEvaluation,
    on_stage: Callable[[str], None] | None = None,
    on_align: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Align and score a prepared evaluation; the dict is the metrics JSON (module docstring).

    ``on_stage(name)`` is called as each stage starts, ``on_align(done, total)`` after each aligned
    sample (progress bars).
    """
    stage = on_stage or (lambda _name: None)
    truth, preds, edition = prepared.truth, prepared.predictions, prepared.truth.edition
    timings: dict[str, float] = {"load": prepared.seconds}
    stage("aligning the ground truths")
    aligned = align_truth(truth, preds.lengths, prepared.alignment, on_sample=counter(on_align, truth))
    timings["alignment"] = aligned.seconds
    scores = score_mars(
        truth.speakers, preds.emotion, aligned.targets, mae=edition.name == "2026", fixed=True, fps=edition.fps,
        workers=prepared.workers, names=truth.ids, on_metric=stage, frd_device=prepared.frd_device,
    )  # fmt: skip
    timings.update(scores.seconds)
    warnings = [*preds.warnings, *aligned.warnings, *scores.warnings]
    eeg = None
    if preds.eeg is not None:
        if edition.has_eeg:
            from reactcli.metrics.mars_eeg import score_eeg

            stage("EEG metrics")
            t0 = time.perf_counter()
            eeg = score_eeg(*preds.eeg)
            timings["EEG"] = time.perf_counter() - t0
        else:
            warnings.append(f"results.pt holds EEG predictions; REACT {edition.name} has no EEG metrics (not scored)")
    values = metric_values(scores, eeg)
    out: dict[str, Any] = {
        "edition": edition.name,
        "split": truth.split,
        "official": aligned.official,
        "protocol": protocol(truth, aligned),
        **values,
        "N": len(truth.samples),
        "K": _k_of(preds.emotion),
        "frames": {"min": min(preds.lengths), "max": max(preds.lengths), "total": int(sum(preds.lengths))},
        "official_names": {k: OFFICIAL_METRIC_NAMES[k] for k in values if k in OFFICIAL_METRIC_NAMES},
        "predictions": preds.record,
        "ground_truth": truth.ground_truth_record(),
        "alignment": aligned.record,
        "unpaired": truth.unpaired,
        "junk_skipped": truth.junk,
        "warnings": warnings,
        "notes": metric_notes(values, edition),
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }
    return null_non_finite(out, MARS_METRIC_KEYS)


def evaluate_mars(
    root: str | Path,
    split: str,
    predictions: str | Path,
    *,
    edition: Edition,
    on_stage: Callable[[str], None] | None = None,
    on_align: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    frd_device: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """:func:`prepare_mars_evaluation` then :func:`run_mars_evaluation` (``options``: ``ScoringOptions``' fields)."""
    prepared = prepare_mars_evaluation(
        root, split, predictions, edition=edition, options=ScoringOptions(**options), workers=workers,
        frd_device=frd_device,
    )
    return run_mars_evaluation(prepared, on_stage, on_align)
