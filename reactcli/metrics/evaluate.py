"""Load predictions and the split's truth, validate them, and run the seven REACT 2024 metrics.

Every check here is one the official scripts skip (they index out of range, broadcast or crash
deep inside a worker); a user gets one line saying what was expected instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reactcli.data.layout import DatasetLayout, mirrored, read_pairs
from reactcli.data.loaders import load_emotion, load_neighbours, load_npy
from reactcli.errors import file_error
from reactcli.vocab import EMOTION_DIM, EMOTION_FILE, EVAL_FRAMES


@dataclass
class SplitTruth:
    """Ground truth of one split in the mirrored order: listener G, speaker S (N, 750, 25), A (N, N)."""

    listener: np.ndarray
    speaker: np.ndarray
    neighbours: np.ndarray
    split: str


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
    return SplitTruth(listener, speaker, neighbours, split)


def load_predictions(path: Path) -> np.ndarray:
    """An (N, K, T, 25) float32 array from .npy, .pt, or a `react generate` folder (emotion.npy)."""
    path = Path(path)
    if path.is_dir():
        inner = path / EMOTION_FILE
        if not inner.is_file():
            raise file_error(path, "prediction folder has no emotion.npy (expected a react generate output folder)")
        path = inner
    if not path.is_file():
        raise file_error(path, "predictions not found")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = load_npy(path, "predictions")
    elif suffix in (".pt", ".pth"):
        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a corrupt file
            raise file_error(path, f"not a readable torch tensor file ({exc})") from None
        if not isinstance(obj, torch.Tensor):
            raise file_error(path, f"expected a single tensor, found {type(obj).__name__}")
        array = obj.detach().to(torch.float32).numpy()
    else:
        raise file_error(path, "predictions must be a .npy or .pt file, or a folder holding emotion.npy")
    if not np.issubdtype(array.dtype, np.number):
        raise file_error(path, f"predictions have dtype {array.dtype}, expected numbers")
    return array


def validate_predictions(preds: np.ndarray, n_expected: int, rows: int, source: str | Path) -> np.ndarray:
    """Check shape, length and values; cut T to 750. Returns a C-contiguous float32 array."""
    if preds.ndim != 4 or preds.shape[-1] != EMOTION_DIM:
        raise file_error(source, f"predictions have shape {tuple(preds.shape)}, expected (N, K, T, {EMOTION_DIM})")
    n, k, t = preds.shape[:3]
    if n != n_expected:
        raise file_error(
            source,
            f"predictions hold {n} samples, expected N = {n_expected} (2 x {rows} rows of the split, mirrored order)",
        )
    if k < 1:
        raise file_error(source, "predictions hold K = 0 reactions per sample")
    if t < EVAL_FRAMES:
        raise file_error(source, f"predictions have T = {t} frames, expected at least {EVAL_FRAMES}")
    preds = np.ascontiguousarray(preds[:, :, :EVAL_FRAMES], dtype=np.float32)
    finite = np.isfinite(preds)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        raise file_error(
            source,
            f"predictions contain {int((~finite).sum())} NaN/inf values (first at sample {bad[0]}, "
            f"reaction {bad[1]}, frame {bad[2]}, dim {bad[3]})",
        )
    return preds


def evaluate_arrays(
    preds: np.ndarray,
    truth: SplitTruth,
    workers: int | None = None,
    on_frd_progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """All metrics for validated predictions; the dict is the metrics.json content."""
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
        "FRD", lambda: frd_per_reaction(preds, truth.listener, neighbours, workers, on_progress=on_frd_progress)
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
    return out
