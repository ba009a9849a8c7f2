"""wav2vec2 conv features computed incrementally, equal to the offline causal ones.

The offline features (:class:`reactcli.data.features.Wav2Vec2Features`) are the conv feature
encoder's output with the first layer's GroupNorm statistics accumulated over time (running mean
and variance up to each step), then max-pooled over the two 50 Hz frames that end in each video
frame. Every piece streams exactly: the convolutions have no padding, so output j of a layer with
kernel k and stride s reads inputs [j s, j s + k) only, and keeping the last few inputs of each
layer is enough to produce its new outputs; the running GroupNorm needs only the per-channel sum,
sum of squares and count so far; the LayerNorms (the "layer" layout and the final projection
norm) are per time step. Video frame t pools the 50 Hz frames that end inside it
(:func:`reactcli.data.features.pooled_conv_frames`, at the edition's fps): at 25 fps frames 2t - 1
and 2t, the last ending 400 samples into the frame's 640, so a 640-sample push yields exactly one
new frame; at 30 fps one or two per 533- or 534-sample frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reactcli.data.features import W2V_HOP, W2V_RATE, W2V_WINDOW, causal_norm_activation
from reactcli.vocab import FPS


class StreamingWav2Vec2:
    """Push 16 kHz float32 samples, get (n_new, dim) pooled conv features (float64, as offline)."""

    def __init__(self, model: Any, device: str = "cpu", fps: int = FPS) -> None:
        import torch

        self.torch = torch
        self.model = model
        self.device = device
        self.fps = int(fps)
        if not 0 < self.fps <= W2V_RATE // W2V_HOP:  # every video frame must end at least one 50 Hz frame
            raise ValueError(f"wav2vec2 features stream at up to {W2V_RATE // W2V_HOP} fps, not {fps}")
        self.layers = list(model.feature_extractor.conv_layers)
        self.dim = int(model.config.conv_dim[-1])
        self.reset()

    def reset(self) -> None:
        """Start a new stream (zero state: nothing before the first sample, as offline)."""
        torch = self.torch
        self._bufs = [torch.zeros(1, 1, 0, device=self.device)] + [
            torch.zeros(1, layer.conv.in_channels, 0, device=self.device) for layer in self.layers[1:]
        ]
        self._starts = [0] * len(self.layers)  # absolute input index of each buffer's first column
        self._next = [0] * len(self.layers)  # next output index of each layer
        self._norm_state: list[Any] = [None] * len(self.layers)  # running GroupNorm statistics per layer
        self._pending: list[np.ndarray] = []  # 50 Hz frames from the next video frame's first pooled one on
        self._first50 = 0  # index of _pending[0]
        self._frames = 0

    @property
    def frames_done(self) -> int:
        return self._frames

    def push(self, wave16k: np.ndarray) -> np.ndarray:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(wave16k, dtype=np.float32))[None, None].to(self.device)
        with torch.inference_mode():
            for i, layer in enumerate(self.layers):
                x = self._conv_step(i, layer, x)
            feats = self.model.feature_projection.layer_norm(x.transpose(1, 2))[0].double().cpu().numpy()
        return self._pool(feats)

    def _conv_step(self, i: int, layer: Any, x: Any) -> Any:
        """Append x to layer i's input buffer and return the layer's newly computable outputs."""
        torch = self.torch
        k, s = layer.conv.kernel_size[0], layer.conv.stride[0]
        buf = torch.cat([self._bufs[i], x], dim=-1)
        start, first = self._starts[i], self._next[i]
        last = (start + buf.shape[-1] - k) // s  # last output whose inputs have all arrived
        if last < first:
            self._bufs[i] = buf
            return buf.new_zeros(1, layer.conv.out_channels, 0)
        y = layer.conv(buf[:, :, first * s - start : last * s + k - start])
        y, self._norm_state[i] = causal_norm_activation(layer, y, self._norm_state[i])
        self._next[i] = last + 1
        keep_from = (last + 1) * s  # first input the next output reads
        self._bufs[i] = buf[:, :, keep_from - start :]
        self._starts[i] = keep_from
        return y

    def _last50(self, frame: int) -> int:
        """The last 50 Hz frame ending inside video frame ``frame`` (``pooled_conv_frames``' rule)."""
        end = (frame + 1) * W2V_RATE // self.fps
        return max(0, (end - W2V_WINDOW) // W2V_HOP)

    def _pool(self, feats: np.ndarray) -> np.ndarray:
        """New 50 Hz frames -> completed video frames: frame t = the max over the 50 Hz frames from
        the one after frame t - 1's last up to its own last (at 25 fps: 2t - 1 and 2t)."""
        self._pending.extend(feats)
        rows = []
        while True:
            last = self._last50(self._frames)
            if last >= self._first50 + len(self._pending):
                break
            first = min(self._first50, last)
            window = self._pending[first - self._first50 : last - self._first50 + 1]
            rows.append(np.max(np.stack(window), axis=0))
            self._frames += 1
            drop = last + 1 - self._first50  # the next frame pools from last + 1 on
            self._pending = self._pending[drop:]
            self._first50 = last + 1
        return np.stack(rows) if rows else np.zeros((0, self.dim))
