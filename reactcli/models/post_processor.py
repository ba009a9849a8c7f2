"""The REACT 2025/2026 post-processor: re-decode each ground truth to the prediction's length.

MARS recordings have different lengths, so the organisers align every ground-truth reaction to the
length P of the prediction it is scored against with a learned autoencoder (``EmotionVAE``,
checkpoint ``pretrained_models/post_processor/checkpoint.pth``) driven by the segment arithmetic of
their ``Processor.forward``. This module rebuilds both in plain torch:

* :func:`plan_segments` is that arithmetic as a pure function (testable without a model): a target of
  T frames is cut into n segments, each encoded into 64 latent tokens and decoded to a given number
  of output frames, and the kept frames are concatenated. T == P passes the target through
  unchanged. When the decoded segments do not add up to P (e.g. P = 58, T = 30 000 keeps 60 frames),
  the organisers' code crashes (``torch.stack`` of unequal lengths, or later in FRC);
  :attr:`SegmentPlan.output_total` shows it.
* :class:`EmotionVAE` has the checkpoint's exact ``state_dict`` (190 entries, 46.79 M numbers with
  the positional table ``PE.pe``); :func:`load_post_processor` loads it strictly with
  ``weights_only=True``.
* :func:`align_targets` runs a split in one of three modes. ``official``: the organisers' stochastic
  latent ``mu + eps * exp(logvar) ** 0.5``, eps drawn from a seeded ``torch.Generator`` once per
  aligned target in list order, as their call draws from torch's global generator. ``mean``: the
  latent is ``mu`` (deterministic; their ``reparameterization="deterministic"``). ``resample``: no
  checkpoint; linear interpolation in time (a labelled non-official fallback).

The attention layers run torch's plain ("slow") path: the organisers call the model with gradients
on, which rules out torch's fused inference path, and that path rounds differently (an AU logit
near 0 would then flip its 0/1 output).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reactcli.editions import POST_PROCESSOR_CLIP
from reactcli.errors import ReactError, file_error
from reactcli.torch_files import load_weights_only
from reactcli.vocab import ACTION_UNITS, AU_DIMS, EMOTION_DIM, EXPRESSIONS_8, VALENCE_AROUSAL

ALIGNMENT_MODES = ("official", "mean", "resample")


class SegmentError(ValueError):
    """A length pair the organisers' arithmetic refuses (their ``assert``): too few frames per segment."""


@dataclass(frozen=True)
class SegmentPlan:
    """How ``Processor.forward`` aligns one target of ``target_len`` frames to ``pred_len`` frames.

    ``direction``: ``"same"`` (pass-through), ``"up"`` (P > T) or ``"down"`` (P < T). ``segment`` is
    the number of target frames per segment before padding to ``clip`` (s = ceil(T/n) up, ``clip``
    down). ``input_lengths`` / ``output_lengths`` are the encoder's and decoder's valid frames per
    segment (the organisers' end indices + 1; every start is 0); each segment keeps its first
    ``output_lengths[i]`` decoded frames.
    """

    pred_len: int
    target_len: int
    clip: int
    direction: str
    segment: int
    input_lengths: tuple[int, ...]
    output_lengths: tuple[int, ...]

    @property
    def segments(self) -> int:
        return len(self.input_lengths)

    @property
    def output_total(self) -> int:
        """Frames the aligned target has: P except in the organisers' crashing "down" cases."""
        return self.pred_len if self.direction == "same" else sum(self.output_lengths)

    @property
    def fits(self) -> bool:
        return self.output_total == self.pred_len


def _pieces(total: int, piece: int, n: int) -> tuple[int, ...]:
    """The organisers' end-index rule as lengths: [total] if n == 1, else n pieces, the last the remainder."""
    if n == 1:
        return (total,)
    if total % piece == 0:
        return (piece,) * n
    return (piece,) * (n - 1) + (total % piece,)


def plan_segments(pred_len: int, target_len: int, clip: int = POST_PROCESSOR_CLIP) -> SegmentPlan:
    """The segment arithmetic of ``Processor.forward`` for one (P, T) pair; :class:`SegmentError` where it asserts."""
    p, t = int(pred_len), int(target_len)
    if p < 1 or t < 1:
        raise SegmentError(f"lengths must be positive (prediction {p}, target {t})")
    if p == t:
        return SegmentPlan(p, t, clip, "same", 0, (), ())
    if p > t:
        n = math.ceil(p / clip)
        if t < n:
            raise SegmentError(f"a {t}-frame target cannot fill the {n} segments a {p}-frame prediction needs")
        s = math.ceil(t / n)
        return SegmentPlan(p, t, clip, "up", s, _pieces(t, s, n), _pieces(p, clip, n))
    n = math.ceil(t / clip)
    if p < n:
        raise SegmentError(f"a {p}-frame prediction cannot take the {n} segments a {t}-frame target needs")
    m = math.ceil(p / n)
    return SegmentPlan(p, t, clip, "down", clip, _pieces(t, clip, n), _pieces(p, m, n))


def segment_inputs(target: np.ndarray, plan: SegmentPlan) -> np.ndarray:
    """(n, clip, D) encoder inputs: the target zero-padded to n * segment frames, cut, each padded to clip."""
    n, seg, clip = plan.segments, plan.segment, plan.clip
    target = np.asarray(target, dtype=np.float32)
    dims = target.shape[1]
    padded = np.zeros((n * seg, dims), dtype=np.float32)
    padded[: plan.target_len] = target
    out = np.zeros((n, clip, dims), dtype=np.float32)
    out[:, :seg] = padded.reshape(n, seg, dims)
    return out


# -------------------------------------------------------------------------------- the network
class _Positions(nn.Module):
    """The sinusoidal table ``pe`` (max_positions, 1, d), stored in the checkpoint."""

    def __init__(self, d_model: int, max_positions: int):
        super().__init__()
        position = torch.arange(max_positions, dtype=torch.float32)[:, None]
        rate = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_positions, d_model)
        table[:, 0::2] = torch.sin(position * rate)
        table[:, 1::2] = torch.cos(position * rate)
        self.register_buffer("pe", table[:, None, :])

    def window(self, lengths: torch.Tensor, clip: int) -> torch.Tensor:
        """(B, clip, d): positions 0..len-1 of each row, zeros from its length on (every start is 0)."""
        valid = torch.arange(clip, device=lengths.device)[None, :] < lengths[:, None]
        return self.pe[:clip, 0, :][None] * valid[..., None]


class _LatentEncoder(nn.Module):
    """Learned global tokens prepended to the segment; their encoded states are (mu, logvar)."""

    def __init__(self, d_model: int, heads: int, layers: int, feedforward: int, tokens: int):
        super().__init__()
        self.global_tokens = nn.Parameter(torch.zeros(1, tokens, d_model))
        nn.init.normal_(self.global_tokens, mean=0.0, std=0.04)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=feedforward, batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        tokens = self.global_tokens.shape[1]
        x = torch.cat((self.global_tokens.expand(x.shape[0], -1, -1), x), dim=1)
        keep = torch.zeros(x.shape[0], tokens, dtype=torch.bool, device=x.device)
        x = self.transformer_encoder(x, src_key_padding_mask=torch.cat((keep, padding), dim=1))
        return x[:, :tokens]


class _QueryDecoder(nn.Module):
    """Zero queries plus positions, cross-attending to the latent tokens."""

    def __init__(self, d_model: int, heads: int, layers: int, feedforward: int):
        super().__init__()
        layer = nn.TransformerDecoderLayer(d_model, heads, dim_feedforward=feedforward, batch_first=True)
        self.transformer_decoder = nn.TransformerDecoder(layer, layers)

    def forward(self, queries: torch.Tensor, latent: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        return self.transformer_decoder(queries, latent, tgt_key_padding_mask=padding)


class EmotionVAE(nn.Module):
    """The organisers' post-processor network with their parameter names (so their checkpoint loads strictly).

    Defaults are the released configuration (``emotion_autoencoder.yaml``): d = 512, 8 heads, 6 + 6
    post-norm ReLU layers with 2048-wide feed-forward, 2 x 64 global tokens, a 5000-row position
    table, linear input projection and separate AU / VA / expression heads. Submodules are created
    in the organisers' order, so construction draws from torch's generator exactly as theirs does
    (:func:`baseline_script_generator` relies on it). The smaller sizes exist for tests.
    """

    def __init__(
        self,
        feature_dim: int = 512,
        heads: int = 8,
        encoder_layers: int = 6,
        decoder_layers: int = 6,
        feedforward: int = 2048,
        latent_tokens: int = 64,
        max_positions: int = 5000,
        in_channels: int = EMOTION_DIM,
    ):
        super().__init__()
        self.latent_tokens = latent_tokens
        self.PE = _Positions(feature_dim, max_positions)
        self.in_proj = nn.Linear(in_channels, feature_dim)
        self.au_out_proj = nn.Linear(feature_dim, len(ACTION_UNITS))
        self.va_out_proj = nn.Linear(feature_dim, len(VALENCE_AROUSAL))
        self.emo_out_proj = nn.Linear(feature_dim, len(EXPRESSIONS_8))
        self.encoder = _LatentEncoder(feature_dim, heads, encoder_layers, feedforward, 2 * latent_tokens)
        self.decoder = _QueryDecoder(feature_dim, heads, decoder_layers, feedforward)

    def forward(
        self,
        segments: torch.Tensor,
        input_lengths: torch.Tensor,
        output_lengths: torch.Tensor,
        eps: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, clip, 25) segments -> AU logits, VA, expression logits, each (B, clip, .), zero past the output length.

        ``eps`` (B, latent_tokens, d) gives the stochastic latent ``mu + eps * exp(logvar) ** 0.5``;
        None uses ``mu``.
        """
        clip = segments.shape[1]
        steps = torch.arange(clip, device=segments.device)[None, :]
        x = self.in_proj(segments) + self.PE.window(input_lengths, clip)
        z = self.encoder(x, steps >= input_lengths[:, None])
        mu, logvar = z[:, : self.latent_tokens], z[:, self.latent_tokens :]
        latent = mu if eps is None else mu + eps * logvar.exp().pow(0.5)
        out_padding = steps >= output_lengths[:, None]
        h = self.decoder(self.PE.window(output_lengths, clip), latent, out_padding)
        keep = (~out_padding).float()[..., None]
        return self.au_out_proj(h) * keep, self.va_out_proj(h) * keep, self.emo_out_proj(h) * keep


@contextlib.contextmanager
def _plain_attention() -> Iterator[None]:
    """No autograd, and torch's fused attention fast path off (the organisers' calls never take it)."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def decode_segments(
    model: EmotionVAE, inputs: np.ndarray, plan: SegmentPlan, eps: torch.Tensor | None = None
) -> np.ndarray:
    """Run one target's segments (one batch, as the organisers do) and keep the planned frames: (output_total, 25).

    AUs become ``sigmoid(logit) >= 0.5`` as 0/1, VA stays raw, expressions are a softmax.
    """
    device = next(model.parameters()).device
    with _plain_attention():
        au, va, expr = model(
            torch.from_numpy(inputs).to(device),
            torch.tensor(plan.input_lengths, device=device),
            torch.tensor(plan.output_lengths, device=device),
            None if eps is None else eps.to(device),
        )
        frames = torch.cat(((torch.sigmoid(au) >= 0.5).float(), va, torch.softmax(expr, dim=-1)), dim=-1)
    kept = [frames[i, :length] for i, length in enumerate(plan.output_lengths)]
    return torch.cat(kept, dim=0).cpu().numpy()


# -------------------------------------------------------------------------------- loading
def load_post_processor(path: str | Path, device: str | torch.device = "cpu") -> EmotionVAE:
    """The organisers' ``checkpoint.pth`` loaded strictly into the released :class:`EmotionVAE`, eval mode."""
    with torch.device("meta"):  # shapes only: no memory, and torch's generator is left alone
        model = EmotionVAE()
    return load_into(path, model).to(device)


def load_into(path: str | Path, model: EmotionVAE) -> EmotionVAE:
    """Load ``ckpt['state_dict']`` of a file in the official layout into ``model`` strictly; eval mode.

    ``weights_only=True`` keeps a downloaded file from running code. A missing or unexpected key, a
    wrong shape, a non-tensor entry or a non-finite weight is one ``ReactError`` line naming the
    file and the first offending key. ``model`` may live on the meta device (its tensors are then
    replaced by the file's).
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(
            path, "no such file (the post-processor weights, pretrained_models/post_processor/checkpoint.pth)"
        )
    checkpoint = load_weights_only(path, "a PyTorch checkpoint", "the organisers' post-processor checkpoint")
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise file_error(
            path, "has no 'state_dict' entry (the official file is a dict with state_dict, epoch, best_loss, optimizer)"
        )
    state = checkpoint["state_dict"]
    if not isinstance(state, Mapping):
        raise file_error(path, f"'state_dict' is a {type(state).__name__}, expected a mapping of tensors")
    expected = model.state_dict()
    what = f"not the post-processor EmotionVAE ({len(expected)} entries)"
    for key in expected:
        if key not in state:
            raise file_error(path, f"missing key '{key}' ({what})")
    for key, value in state.items():
        if key not in expected:
            raise file_error(path, f"unexpected key '{key}' ({what})")
        if not isinstance(value, torch.Tensor):
            raise file_error(path, f"'{key}' is a {type(value).__name__}, not a tensor")
        if value.shape != expected[key].shape:
            raise file_error(path, f"'{key}' has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}")
        if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
            raise file_error(path, f"'{key}' holds non-finite or non-float values")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    return model.eval()


def baseline_script_generator(seed: int) -> torch.Generator:
    """A CPU generator in the state the naive-baseline script's CPU stream has when alignment starts.

    The script calls ``torch.manual_seed(seed)`` and then builds the post-processor, whose random
    initialisation (overwritten by the checkpoint) consumes the CPU stream; on a CPU run its eps
    draws, and in every run its B_Random draws, continue from there. Building an
    :class:`EmotionVAE` (same construction order) from the same seed reproduces that state. On a GPU
    run the script's eps come from the CUDA stream, untouched by the CPU construction: use
    ``torch.Generator("cuda").manual_seed(seed)`` for the alignment there.
    """
    saved = torch.get_rng_state()
    try:
        torch.random.default_generator.manual_seed(int(seed))
        EmotionVAE()
        state = torch.get_rng_state()
    finally:
        torch.set_rng_state(saved)
    generator = torch.Generator()
    generator.set_state(state)
    return generator


# -------------------------------------------------------------------------------- alignment
def resample_target(target: np.ndarray, length: int) -> np.ndarray:
    """The non-official fallback: linear interpolation in time to ``length`` frames, ends on ends.

    Frame i reads position ``i * (T - 1) / (length - 1)``; AUs are re-binarised at 0.5 (the
    post-processor's outputs are 0/1 too), VA and expression probabilities stay interpolated (a
    convex mix of probability vectors is one).
    """
    target = np.asarray(target, dtype=np.float32)
    t_len = target.shape[0]
    if t_len == length:
        return target
    if length == 1 or t_len == 1:
        return np.repeat(target[:1], length, axis=0)
    where = np.arange(length, dtype=np.float64) * ((t_len - 1) / (length - 1))
    low = np.minimum(np.floor(where).astype(np.int64), t_len - 2)
    frac = (where - low)[:, None]
    out = (target[low].astype(np.float64) * (1.0 - frac) + target[low + 1].astype(np.float64) * frac).astype(np.float32)
    out[:, AU_DIMS] = (out[:, AU_DIMS] >= 0.5).astype(np.float32)
    return out


@dataclass
class Alignment:
    """Aligned ground truths, (G, P_n, 25) float32 per sample, and the warnings of a non-official fix."""

    targets: list[np.ndarray]
    mode: str
    warnings: list[str] = field(default_factory=list)
    draws: int = 0  # eps draws taken from the generator (official mode)


def align_targets(
    pred_lengths: Sequence[int],
    targets: Sequence[Sequence[np.ndarray]],
    mode: str,
    model: EmotionVAE | None = None,
    generator: torch.Generator | None = None,
    clip: int = POST_PROCESSOR_CLIP,
    names: Sequence[str] | None = None,
    on_sample: Callable[[], None] | None = None,
) -> Alignment:
    """Align every sample's ground truths (each (T_j, 25)) to its prediction length P_n.

    ``official`` needs ``model`` and ``generator``: eps of shape (segments, latent tokens, d) is
    drawn from ``generator`` (on its device) for each aligned target in list order, pass-through
    targets draw nothing: on CPU, a generator seeded with s equals the organisers' call right after
    ``torch.manual_seed(s)``. ``mean`` needs ``model``; ``resample`` neither. A length pair whose
    decoded segments do not add up to P (the organisers' code crashes) is a one-line ``ReactError``
    naming the sample in ``official`` mode; ``mean`` cuts the decoded frames to the first P (they
    never add up to fewer) and records a warning. A pair the organisers' arithmetic refuses outright
    (fewer frames than segments) is an error in both model modes. ``names`` (sample ids) make the
    messages name the sample; ``on_sample`` is called after each sample (progress).
    """
    if mode not in ALIGNMENT_MODES:
        raise ReactError(f"unknown alignment mode '{mode}' (expected one of {', '.join(ALIGNMENT_MODES)})")
    if mode != "resample" and model is None:
        raise ReactError(f"alignment '{mode}' needs the post-processor checkpoint")
    if mode == "official" and generator is None:
        raise ReactError("alignment 'official' needs a seeded generator")
    if len(pred_lengths) != len(targets):
        raise ReactError(f"{len(pred_lengths)} prediction lengths for {len(targets)} ground-truth sets")
    result = Alignment([], mode)
    for n, (p_len, gts) in enumerate(zip(pred_lengths, targets, strict=True)):
        label = names[n] if names is not None else f"sample {n}"
        aligned = []
        for j, gt in enumerate(gts):
            gt = np.asarray(gt, dtype=np.float32)
            if mode == "resample":
                aligned.append(resample_target(gt, int(p_len)))
                continue
            try:
                plan = plan_segments(int(p_len), gt.shape[0], clip)
            except SegmentError as exc:
                raise ReactError(f"{label}, ground truth {j}: the post-processor cannot align it: {exc}") from None
            if plan.direction == "same":
                aligned.append(gt)
                continue
            if not plan.fits and mode == "official":
                raise ReactError(
                    f"{label}, ground truth {j}: the official post-processor decodes {plan.output_total} frames "
                    f"for a {plan.pred_len}-frame prediction from {plan.target_len} frames (the organisers' code "
                    "crashes here); use alignment 'mean' or 'resample'"
                )
            eps = None
            if mode == "official":
                width = model.PE.pe.shape[-1]
                eps = torch.empty((plan.segments, model.latent_tokens, width), device=generator.device)
                eps.normal_(generator=generator)
                result.draws += 1
            frames = decode_segments(model, segment_inputs(gt, plan), plan, eps)
            if not plan.fits:
                result.warnings.append(
                    f"{label}, ground truth {j}: the post-processor's segments give {plan.output_total} frames for "
                    f"a {plan.pred_len}-frame prediction (T = {plan.target_len}); kept the first {plan.pred_len}"
                )
                frames = frames[: plan.pred_len]
            aligned.append(frames)
        empty = np.zeros((0, int(p_len), EMOTION_DIM), dtype=np.float32)
        result.targets.append(np.stack(aligned) if aligned else empty)
        if on_sample is not None:
            on_sample()
    return result
