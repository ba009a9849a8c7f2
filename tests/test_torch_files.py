"""Checkpoints that changed after they were written, or that ask to run code, are refused by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _model_fixtures import random_model

from reactcli.errors import ReactError
from reactcli.models.checkpoint import (
    DIGEST_KEY,
    PREDICTOR_KIND,
    load_reaction_model,
    predictor_payload,
    save_checkpoint,
)
from reactcli.torch_files import first_nonfinite, tensor_digest


def _save_predictor(path: Path) -> dict:
    model = random_model()
    payload = predictor_payload(model.config, model.tokenizer, model.predictor, model.valid_codes)
    save_checkpoint(path, PREDICTOR_KIND, payload)
    return payload


def _overwrite_weight_bytes(path: Path, weight: torch.Tensor, value: bytes) -> None:
    """Overwrite the first bytes of ``weight``'s data where the file stores it (torch keeps tensors raw)."""
    raw = bytearray(path.read_bytes())
    needle = weight.detach().contiguous().numpy().tobytes()[:64]
    at = raw.find(needle)
    assert at >= 0, "the weight's bytes were not found in the file"
    raw[at : at + len(value)] = value
    path.write_bytes(bytes(raw))


def test_digest_sees_one_changed_value() -> None:
    state = {"a": torch.zeros(4), "b": {"c": torch.ones(2, 3)}}
    before = tensor_digest(state)
    state["b"]["c"][1, 2] = 1.0000001
    assert tensor_digest(state) != before
    assert tensor_digest({"x": torch.zeros(3)}) != tensor_digest({"y": torch.zeros(3)})  # names count too


def test_flipped_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "predictor.ckpt"
    payload = _save_predictor(path)
    load_reaction_model(path)  # intact: loads
    weight = next(v for v in payload["predictor_state"].values() if v.is_floating_point() and v.numel() >= 16)
    _overwrite_weight_bytes(path, weight, np.array([np.nan, 0.5], dtype=np.float32).tobytes())
    with pytest.raises(ReactError, match=r"predictor\.ckpt: the weights changed .*checksum mismatch"):
        load_reaction_model(path)


def test_nonfinite_weight_refused_without_digest(tmp_path: Path) -> None:
    """A checkpoint from before the digest (or a run that diverged) with a NaN weight names the tensor."""
    path = tmp_path / "old.ckpt"
    payload = _save_predictor(path)
    data = torch.load(path, weights_only=True)
    del data[DIGEST_KEY]
    name, weight = next((k, v) for k, v in data["predictor_state"].items() if v.is_floating_point())
    weight.view(-1)[0] = float("nan")
    torch.save(data, path)
    assert first_nonfinite(payload) is None
    with pytest.raises(ReactError, match=rf"old\.ckpt: weight 'predictor_state\.{name}' holds NaN"):
        load_reaction_model(path)


class _RunsCode:
    def __reduce__(self):  # what a malicious pickle does: call os.system on load
        return (os.system, ("touch owned",))


def test_malicious_checkpoint_names_the_refused_global(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"kind": PREDICTOR_KIND, "format": 1, "payload": _RunsCode()}, path)
    with pytest.raises(ReactError) as info:
        load_reaction_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a reactcli checkpoint")
    assert "'posix.system'" in message and "weights_only=False" not in message
    proc = subprocess.run(
        [sys.executable, "-m", "reactcli.cli", "generate", "--checkpoint", str(path), "--data", str(tmp_path),
         "--split", "val", "--out", str(tmp_path / "p")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {message}"
    assert not (tmp_path / "owned").exists()
