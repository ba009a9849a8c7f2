"""Self-contained checkpoints: plain dicts of tensors and JSON-like values, loaded with weights_only.

A predictor checkpoint carries everything generation needs — the full config (audio front end
settings included, but never wav2vec2 weights), the tokenizer weights with the face statistics,
the predictor weights and the set of codes seen in training — so ``react generate`` needs no
other file. Storing configs as plain dicts lets ``torch.load(weights_only=True)`` read them, so a
checkpoint from elsewhere cannot run code on load. Every failure is a one-line ``ReactError``
naming the file.

Each checkpoint also carries ``tensor_sha256``, a digest of all its tensors taken when it was
written (``torch_files.tensor_digest``), checked on load: torch does not check its zip entries, so a
few flipped bytes would otherwise load as a silently wrong (or NaN) weight. Checkpoints written
before the digest existed still load; for every checkpoint a NaN or inf weight is refused, naming
the tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reactcli.atomic import save_torch
from reactcli.config import ReactConfig, config_from_dict, config_to_dict
from reactcli.errors import ReactError, file_error
from reactcli.models.predictor import ReactionPredictor
from reactcli.models.tokenizer import FaceTokenizer
from reactcli.torch_files import first_nonfinite, load_weights_only, tensor_digest

FORMAT = 1
TOKENIZER_KIND = "reactcli.tokenizer"
PREDICTOR_KIND = "reactcli.predictor"
_NAMES = {TOKENIZER_KIND: "a tokenizer checkpoint", PREDICTOR_KIND: "a predictor checkpoint"}
DIGEST_KEY = "tensor_sha256"


def save_checkpoint(path: str | Path, kind: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` tagged with ``kind`` and the digest of its tensors, atomically (temp file + rename)."""
    save_torch(path, {"kind": kind, "format": FORMAT, **payload, DIGEST_KEY: tensor_digest(payload)})


def read_checkpoint(path: str | Path, kind: str) -> dict[str, Any]:
    """Load a checkpoint of the given kind or raise a ReactError that says what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise file_error(path, f"checkpoint not found (expected {_NAMES[kind]})")
    data = load_weights_only(path, "a readable checkpoint", refused_what=f"a reactcli checkpoint ({_NAMES[kind]})")
    if not isinstance(data, dict) or "kind" not in data:
        raise file_error(path, f"not a reactcli checkpoint (expected {_NAMES[kind]})")
    if data["kind"] != kind:
        found = _NAMES.get(data["kind"], repr(data["kind"]))
        raise file_error(path, f"is {found}, expected {_NAMES[kind]}")
    if data.get("format") != FORMAT:
        raise file_error(path, f"checkpoint format {data.get('format')!r} is not supported (expected {FORMAT})")
    payload = {key: value for key, value in data.items() if key not in ("kind", "format", DIGEST_KEY)}
    stored = data.get(DIGEST_KEY)
    if stored is not None and stored != tensor_digest(payload):
        raise file_error(path, "the weights changed after the checkpoint was written (tensor checksum mismatch): "
                               "the file is corrupt")
    bad = first_nonfinite(payload)
    if bad is not None:
        raise file_error(path, f"weight '{bad}' holds NaN or inf: the checkpoint is unusable")
    return data


def stored_config(path: str | Path, data: dict[str, Any]) -> ReactConfig:
    try:
        return config_from_dict(data["config"])
    except (ReactError, KeyError, TypeError) as exc:
        raise file_error(path, f"stored configuration is invalid ({exc})") from None


def _load_state(path: str | Path, module: torch.nn.Module, state: Any, what: str) -> None:
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise file_error(path, f"{what} weights do not match the stored configuration ({first[:200]})") from None


def tokenizer_payload(cfg: ReactConfig, model: FaceTokenizer, **extra: Any) -> dict[str, Any]:
    return {"config": config_to_dict(cfg), "state": model.state_dict(), **extra}


def load_tokenizer(path: str | Path, device: torch.device | str = "cpu") -> tuple[FaceTokenizer, ReactConfig, dict]:
    """Rebuild the tokenizer (weights, face statistics) from ``tokenizer.ckpt``."""
    data = read_checkpoint(path, TOKENIZER_KIND)
    cfg = stored_config(path, data)
    model = FaceTokenizer(cfg.tokenizer)
    _load_state(path, model, data.get("state"), "tokenizer")
    return model.to(device).eval(), cfg, data


@dataclass
class ReactionModel:
    """Everything generation needs, rebuilt from one predictor checkpoint."""

    config: ReactConfig
    tokenizer: FaceTokenizer
    predictor: ReactionPredictor
    valid_codes: torch.Tensor  # (vocab,) bool: codes the predictor may sample
    path: Path

    def to(self, device: torch.device | str) -> ReactionModel:
        self.tokenizer.to(device)
        self.predictor.to(device)
        self.valid_codes = self.valid_codes.to(device)
        return self


def build_models(cfg: ReactConfig, audio_dim: int) -> tuple[FaceTokenizer, ReactionPredictor]:
    tokenizer = FaceTokenizer(cfg.tokenizer)
    return tokenizer, ReactionPredictor(cfg.predictor, audio_dim, cfg.tokenizer.levels)


def predictor_payload(
    cfg: ReactConfig,
    tokenizer: FaceTokenizer,
    predictor: ReactionPredictor,
    valid_codes: torch.Tensor,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "config": config_to_dict(cfg),
        "audio_dim": predictor.audio_dim,
        "tokenizer_state": tokenizer.state_dict(),
        "predictor_state": predictor.state_dict(),
        "valid_codes": valid_codes.cpu(),
        **extra,
    }


def load_reaction_model(
    path: str | Path, device: torch.device | str = "cpu", data: dict | None = None
) -> tuple[ReactionModel, dict]:
    """Rebuild tokenizer + predictor from ``predictor.ckpt`` (or ``predictor_last.ckpt``)."""
    data = read_checkpoint(path, PREDICTOR_KIND) if data is None else data
    cfg = stored_config(path, data)
    audio_dim = data.get("audio_dim")
    if not isinstance(audio_dim, int) or audio_dim <= 0:
        raise file_error(path, f"stored audio feature dimension {audio_dim!r} is invalid")
    tokenizer, predictor = build_models(cfg, audio_dim)
    _load_state(path, tokenizer, data.get("tokenizer_state"), "tokenizer")
    _load_state(path, predictor, data.get("predictor_state"), "predictor")
    valid = data.get("valid_codes")
    if not isinstance(valid, torch.Tensor) or valid.shape != (predictor.vocab_size,) or valid.dtype != torch.bool:
        raise file_error(path, f"stored valid-code mask must be a bool tensor of shape ({predictor.vocab_size},)")
    model = ReactionModel(cfg, tokenizer.eval(), predictor.eval(), valid, Path(path))
    return model.to(device), data
