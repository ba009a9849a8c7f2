"""What the MARS command tests share: a small post-processor in the official layout (the post-processor
tests write theirs with it too), results.pt files, and the naive-baseline script's sample order and GT
rule written again from the spec.

The released post-processor is 46.79 M numbers (187 MB) and takes seconds per segment on a CPU, so
the command tests load a small random-weight network of the same design, saved exactly as the
organisers save theirs (``{epoch, best_loss, state_dict, optimizer}``), through
:func:`patch_loader` (``metrics.mars_truth.load_alignment_model``). Strict loading of the released
size is tested through the command once (``test_mars_cli_errors.py``) and in
``test_mars_post_processor.py``.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import reactcli.metrics.mars_truth as mars_truth
from reactcli.models.post_processor import EmotionVAE, load_into

#: One segment holds up to 1000 frames (the official clip length), so the position table has 1000 rows.
SMALL = dict(
    feature_dim=32, heads=4, encoder_layers=2, decoder_layers=2, feedforward=48, latent_tokens=3, max_positions=1000
)
RELEASED_LOADER = mars_truth.load_alignment_model


def small_checkpoint(path: Path, seed: int = 3, sizes: dict | None = None) -> Path:
    """Random weights (spread wider than at init, so the outputs vary) in the official checkpoint layout.

    ``sizes``: the network's sizes (default :data:`SMALL`)."""
    torch.manual_seed(seed)
    model = EmotionVAE(**(SMALL if sizes is None else sizes))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0.0, 0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    torch.save({"epoch": 7, "best_loss": 0.25, "state_dict": model.state_dict(), "optimizer": optimizer.state_dict()},
               path)  # fmt: skip
    return path


def small_loader(path: str | Path, device: object) -> EmotionVAE:
    return load_into(path, EmotionVAE(**SMALL)).to(device)


def patch_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mars_truth, "load_alignment_model", small_loader)


def _is_sample_file(path: Path) -> bool:
    return path.suffix == ".npy" and not path.name.startswith(".")


def script_inputs(facial: Path, role: str = "speaker") -> list[str]:
    """The baseline script's listing of one role: sessions sorted as strings (hidden ones skipped),
    files sorted, ``.npy`` not starting with a dot; ids ``role/session/stem``."""
    out = []
    base = facial / role
    for session in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(session.iterdir()):
            if path.is_file() and _is_sample_file(path):
                out.append(f"{role}/{session.name}/{path.stem}")
    return out


def script_gt_sets(facial: Path, seed: int = 1234, num: int = 10) -> list[dict]:
    """The naive-baseline script's GT rule (speaker inputs), written from the spec: one Random(seed)."""
    rng = random.Random(seed)
    listeners = set(script_inputs(facial, "listener"))
    pools: dict[str, list[str]] = {}
    for rid in script_inputs(facial, "listener"):
        pools.setdefault(rid.split("/")[1], []).append(rid)
    out = []
    for rid in script_inputs(facial, "speaker"):
        _, session, stem = rid.split("/")
        target = f"listener/{session}/{stem}"
        if target not in listeners:
            continue
        others = [r for r in pools[session] if r != target]
        if len(others) >= num - 1:
            gts = [target, *rng.sample(others, num - 1)]
        elif others:
            gts = [target, *rng.choices(others, k=num - 1)]
        else:
            gts = [target] * num
        out.append({"input": rid, "target": target, "gts": gts})
    return out


def emotion_predictions(rng: np.random.Generator, k: int, length: int) -> np.ndarray:
    """(K, L, 25) as a test stage writes them: AUs rounded, valence/arousal in [-1, 1], expression probabilities."""
    x = np.zeros((k, length, 25), np.float32)
    x[..., :15] = np.round(rng.random((k, length, 15)))
    x[..., 15:17] = np.tanh(np.cumsum(rng.normal(0, 0.1, (k, length, 2)), axis=1))
    e = np.exp(rng.normal(0, 1, (k, length, 8)))
    x[..., 17:] = e / e.sum(-1, keepdims=True)
    return x


def write_results(
    path: Path, root: Path, split: str = "val", seed: int = 0, k: int = 10, **extra: object
) -> list[np.ndarray]:
    """A results.pt for the split's speaker samples in the script's order; returns the predictions."""
    facial = root / split / "facial-attributes"
    rng = np.random.default_rng(seed)
    preds = [
        emotion_predictions(rng, k, np.load(facial / f"{s['input']}.npy").shape[0]) for s in script_gt_sets(facial)
    ]
    torch.save({"PRED": [torch.from_numpy(p) for p in preds], **extra}, path)
    return preds
