"""Load predictions and the split's truth, validate them, and run the seven REACT 2024 metrics.

Every check here is one the official scripts skip (they index out of range, broadcast or crash
deep inside a worker); a user gets one line saying what was expected instead. Predictions are
read through ``reactcli.predictions`` (the one reader of generated reactions); a value outside its
sane range is refused before any metric runs, and a metric that still comes out NaN/inf is stored
as null with the reason in ``notes``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reactcli.data.layout import DatasetLayout, mirrored, read_pairs
from reactcli.data.loaders import load_emotion, load_neighbours
from reactcli.predictions import PredictionSet, sample_ids
from reactcli.vocab import EVAL_FRAMES, METRIC_KEYS


@dataclass
class SplitTruth:
    """Ground truth of one split in the mirrored order: listener G, speaker S (N, 750, 25), A (N, N)."""

    listener: np.ndarray
    speaker: np.ndarray
    neighbours: np.ndarray
    split: str
    ids: list[str] = field(default_factory=list)  # sample ids (``predictions.sample_id``), mirrored order


def load_truth(root: Path, split: str) -> SplitTruth:
    """Emotion of every clip once, arranged as listener and speaker series of each mirrored sample."""
    layout = DatasetLayout(root)
    samples = mirrored(read_pairs(layout.root, split))
    cache: dict[str, np.ndarray] = {}

    def emotion(clip: str) -> np.ndarray:
        if clip not in cache:
            cache[clip] = load_emotion(layout.emotion(split, clip), EVAL_FRAMES)
        return cache[clip]

    listener = np.stack([emotion(s.listener) for s in samples])
    speaker = np.stack([emotion(s.speaker) for s in samples])
    neighbours = load_neighbours(layout.neighbours(split), len(samples))
    return SplitTruth(listener, speaker, neighbours, split, sample_ids(samples))


def load_predictions(path: Path, truth: SplitTruth) -> np.ndarray:
    """The emotion of a prediction set (``reactcli.predictions.PredictionSet``: a react generate
    folder, or an (N, K, T, 25) .npy/.pt file) checked against the split — N and, when the set
    names them, the sample ids in the mirrored order, T >= 750, every value finite and within
    ``VALUE_LIMIT`` — and cut to the 750 scored frames, as a C-contiguous float32 array."""
    preds = PredictionSet.open(path)
    preds.require("emotion", "the metrics score emotion")
    rows = len(truth.ids) // 2
    source = f"the {truth.split} split: 2 x {rows} rows, mirrored order"
    preds.validate_against(truth.ids, EVAL_FRAMES, source, exact=False)
    preds.check_values("emotion", frames=EVAL_FRAMES)
    return np.ascontiguousarray(preds.dense_emotion()[:, :, :EVAL_FRAMES], dtype=np.float32)


def null_non_finite(result: dict[str, Any], keys: Iterable[str] = METRIC_KEYS) -> dict[str, Any]:
    """Metrics (``keys``) that came out NaN/inf become null with the reason in ``notes``: JSON has no
    NaN, and a bare ``NaN`` or ``Infinity`` makes the file unreadable to strict parsers
    (``atomic.save_json`` refuses it)."""
    notes = result.setdefault("notes", {})
    for key in keys:
        value = result.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            result[key] = None
            reason = f"came out {value} (not a finite number), stored as null"
            notes[key] = f"{reason}; {notes[key]}" if key in notes else reason
    return result


def evaluate_arrays(
    preds: np.ndarray,
    truth: SplitTruth,
    workers: int | None = None,
    on_frd_progress: Callable[[float], None] | None = None,
    frd_device: str | None = None,
) -> dict[str, Any]:
    """All metrics for validated predictions; the dict is the metrics.json content. ``frd_device``
    "cuda[:N]" computes FRD with the GPU wavefront (same values); None uses the CPU engine."""
    from reactcli.metrics.appropriateness import frc, frd_per_reaction, neighbour_lists
    from reactcli.metrics.diversity import frdiv, frdvs, frvar
    from reactcli.metrics.realism import frrea_unavailable_reason
    from reactcli.metrics.synchrony import frsyn

    n, k, t = preds.shape[:3]
    neighbours = neighbour_lists(truth.neighbours)
    timings: dict[str, float] = {}
    out: dict[str, Any] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - start, 4)
        return value

    out["FRC"] = timed("FRC", lambda: frc(preds, truth.listener, neighbours))
    per, search = timed(
        "FRD", lambda: frd_per_reaction(
            preds, truth.listener, neighbours, workers, on_progress=on_frd_progress, device=frd_device
        )
    )
    out["FRD"] = float(np.nansum(per) / n)
    out["FRDiv"] = timed("FRDiv", lambda: frdiv(preds))
    out["FRVar"] = timed("FRVar", lambda: frvar(preds))
    out["FRDvs"] = timed("FRDvs", lambda: frdvs(preds))
    syn = timed("FRSyn", lambda: frsyn(preds, truth.speaker))
    timings["FRSyn_all"] = 0.0  # computed in the same pass as FRSyn
    out["FRSyn"] = syn.frsyn
    out["FRSyn_all"] = syn.frsyn_all
    out["FRRea"] = None
    out.update(
        {
            "N": int(n),
            "K": int(k),
            "T": int(t),
            "split": truth.split,
            "timings": timings,
            "notes": {
                "FRRea": frrea_unavailable_reason(),
                "FRSyn": "official protocol: first reaction of each speaker only; a constant dim saturates it at 49",
                "FRSyn_all": (
                    f"all K reactions, constant dims ignored; {syn.excluded} reaction(s) with no usable dim left out, "
                    f"{syn.scored} scored"
                ),
                "FRD_search": (
                    f"{search['pairs']} (reaction, neighbour) DTWs, {search['abandoned']} abandoned early, "
                    f"{search['rows'] / max(search['full_rows'], 1):.1%} of their rows computed, {search['exact']} "
                    "recomputed in float64 (exact: an abandoned neighbour cannot hold the minimum)"
                ),
            },
            "FRSyn_all_excluded": syn.excluded,
            "speakers_without_neighbours": int(sum(1 for idx in neighbours if idx.size == 0)),
        }
    )
    return null_non_finite(out)
