"""FLOPs of one training step, counted from the architecture, and the ``mfu`` column of the logs.

MFU (model FLOPs utilisation) = the FLOPs the model needs per step x steps per second / the
device's peak. We count what every MFU figure counts: the matrix products (projections, MLPs,
heads, the attention's score and value products; a multiply-add is 2 FLOPs), forward and
backward, nothing elementwise. Backward is counted as it runs: a product's input gradient only
where its input needs one (not for the first projection of data), its weight gradient only for a
trained weight (not the fixed skip path, nor the frozen encoder of the tokenizer's emotion-only
phase). Attention counts the key pairs the window allows (causal, within ``context_frames`` or
the tokenizer's window) by default: the work a causal kernel must do. ``dense=True`` counts every
query against every key, as a masked kernel computes it and as
``torch.utils.flop_counter.FlopCounterMode`` counts it (``tests/test_training_flops.py`` checks
the two agree exactly on small models).

Peaks (:data:`PEAK_TFLOPS`) are the vendors' dense bf16 tensor-core figures (without sparsity),
matched on the CUDA device name; ``training.peak_tflops`` (``--peak-tflops``) sets any other. On a
CPU the column stays empty unless a peak is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reactcli.config import ReactConfig
from reactcli.vocab import EMOTION_DIM, FACE_DIM

#: Dense bf16 peak (TFLOPS, no sparsity) by a substring of ``torch.cuda.get_device_name``; the
#: first match wins, so the more specific names come first.
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H200", 989.0),
    ("H100", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 125.0),
    ("L4", 121.0),
)


@dataclass
class FlopCount:
    """Forward and backward FLOPs of a pass, accumulated product by product."""

    forward: int = 0
    backward: int = 0
    dense: bool = False  # attention over every key (True) or only the keys the window allows

    @property
    def total(self) -> int:
        return self.forward + self.backward

    def linear(self, rows: int, inputs: int, outputs: int, input_grad: bool = True, weight_grad: bool = True,
               grad: bool = True) -> None:
        """A (rows x inputs) @ (inputs x outputs) product; ``grad=False``: forward only (no_grad)."""
        flops = 2 * rows * inputs * outputs
        self.forward += flops
        if grad:
            self.backward += flops * (int(input_grad) + int(weight_grad))

    def attention(self, batch: int, frames: int, dim: int, window: int, block: int | None = None,
                  grad: bool = True) -> None:
        """Scores and values of ``frames`` queries over ``frames`` keys of width ``dim`` (all heads);
        backward is four products of the same size (gradients of queries, keys, values, scores)."""
        pairs = frames * frames if self.dense else causal_pairs(frames, window, block)
        flops = 2 * 2 * batch * pairs * dim
        self.forward += flops
        if grad:
            self.backward += 2 * flops


def causal_pairs(frames: int, window: int, block: int | None = None) -> int:
    """(query, key) pairs of frames 0..frames-1 that causal windowed attention allows: key k for
    query q when q - window < k <= q (and both in one block of ``block`` frames)."""
    total = 0
    for q in range(frames):
        seen = q + 1 if block is None else q % block + 1
        total += min(seen, window)
    return total


def _block(count: FlopCount, rows: int, batch: int, frames: int, dim: int, window: int, block: int | None,
           grad: bool, cross: bool = False) -> None:
    """One transformer block (:class:`~reactcli.models.layers.Block`, or a ``CrossBlock`` with a second
    attention over the other stream): q, kv and output projections, attention, the 4x MLP."""
    for _ in range(2 if cross else 1):
        count.linear(rows, dim, dim, grad=grad)          # to_q
        count.linear(rows, dim, 2 * dim, grad=grad)      # to_kv
        count.attention(batch, frames, dim, window, block, grad=grad)
        count.linear(rows, dim, dim, grad=grad)          # to_out
    count.linear(rows, dim, 4 * dim, grad=grad)
    count.linear(rows, 4 * dim, dim, grad=grad)


def predictor_forward(cfg: ReactConfig, audio_dim: int, batch: int, frames: int, dense: bool = False,
                      grad: bool = True) -> FlopCount:
    """One forward (and, with ``grad``, backward) pass of the predictor over (batch, frames) windows."""
    p = cfg.predictor
    count = FlopCount(dense=dense)
    rows, d, w = batch * frames, p.dim, p.context_frames
    levels = len(cfg.tokenizer.levels)
    vocab = 1
    for n in cfg.tokenizer.levels:
        vocab *= n
    vocab += 2  # PAD, MASK
    count.linear(rows, audio_dim, d, input_grad=False, grad=grad)
    if p.speaker_emotion:
        count.linear(rows, EMOTION_DIM, d, input_grad=False, grad=grad)
    for _ in range(2):  # speaker face tokens and listener tokens
        if p.code_embedding == "grid":
            count.linear(rows, levels, d, input_grad=False, grad=grad)
    for _ in range(2 * p.self_depth):  # face and audio streams
        _block(count, rows, batch, frames, d, w, None, grad)
    for _ in range(2 * p.cross_depth):
        _block(count, rows, batch, frames, d, w, None, grad, cross=True)
    if p.personality:
        count.linear(batch, 5, d, input_grad=False, grad=grad)
    if p.history_frames > 0:  # models/history.py: per history frame Linear(83 -> d), then one Linear(d -> d)
        count.linear(batch * p.history_frames, FACE_DIM + EMOTION_DIM, d, input_grad=False, grad=grad)
        count.linear(batch, d, d, grad=grad)
    for _ in range(p.self_depth):
        _block(count, rows, batch, frames, d, w, None, grad)
    for _ in range(p.cross_depth):
        _block(count, rows, batch, frames, d, w, None, grad, cross=True)
    count.linear(rows, d, vocab, grad=grad)
    if p.emotion_head:
        count.linear(rows, d, EMOTION_DIM, grad=grad)
        if p.emotion_skip > 0:  # the fixed causal linear path (a convolution): forward only
            inputs = audio_dim + (EMOTION_DIM if p.speaker_emotion else 0)
            count.linear(rows, inputs * p.emotion_skip, EMOTION_DIM, grad=False)
    return count


def predictor_step_flops(cfg: ReactConfig, audio_dim: int, dense: bool = False) -> int:
    """FLOPs of one predictor training step at the configured batch and crop (per process):
    the training pass, plus the no-grad pass of scheduled sampling when ``training.self_sampling``."""
    tc = cfg.training
    total = predictor_forward(cfg, audio_dim, tc.predictor_batch_size, tc.predictor_crop_frames, dense).total
    if tc.self_sampling > 0:
        total += predictor_forward(cfg, audio_dim, tc.predictor_batch_size, tc.predictor_crop_frames, dense,
                                   grad=False).total
    return total


def tokenizer_forward(cfg: ReactConfig, batch: int, frames: int, emotion_only: bool = False,
                      dense: bool = False) -> FlopCount:
    """One training pass of the tokenizer over (batch, frames) windows: encoder, FSQ projections and
    both decoders, or in the emotion-only phase the encoder without gradients and the emotion
    decoder alone."""
    t = cfg.tokenizer
    count = FlopCount(dense=dense)
    rows, d, w = batch * frames, t.dim, t.window_frames
    levels = len(t.levels)
    train_encoder = not emotion_only
    count.linear(rows, FACE_DIM, d, input_grad=False, grad=train_encoder)
    for _ in range(t.depth):
        _block(count, rows, batch, frames, d, w, w, train_encoder)
    count.linear(rows, d, levels, grad=train_encoder)         # FSQ project_in
    count.linear(rows, levels, d, grad=train_encoder)         # FSQ project_out
    decoders = ((EMOTION_DIM,) if emotion_only else (FACE_DIM, EMOTION_DIM))
    for out in decoders:
        for _ in range(t.decoder_depth):
            _block(count, rows, batch, frames, d, w, w, True)
        count.linear(rows, d, out)
    return count


def tokenizer_step_flops(cfg: ReactConfig, emotion_only: bool, dense: bool = False) -> int:
    """FLOPs of one tokenizer training step at the configured batch (windows of ``window_frames``)."""
    return tokenizer_forward(cfg, cfg.training.tokenizer_batch_size, cfg.tokenizer.window_frames, emotion_only,
                             dense).total


def peak_flops(device: torch.device, tflops: float | None = None) -> float | None:
    """The device's peak in FLOP/s: ``tflops`` when given (``training.peak_tflops``), else the table's
    entry for a CUDA device's name; None (no ``mfu``) for a CPU or an unknown device."""
    if tflops is not None:
        return tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_TFLOPS:
        if key in name:
            return value * 1e12
    return None
