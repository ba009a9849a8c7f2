"""wav2vec2 conv features computed incrementally, equal to the offline causal ones.

The offline features (:class:`reactcli.data.features.Wav2Vec2Features`) are the conv feature
encoder's output with the first layer's GroupNorm statistics accumulated over time (running mean
and variance up to each step), then max-pooled over the two 50 Hz frames that end in each video
frame. Every piece streams exactly: the convolutions have no padding, so output j of a layer with
kernel k and stride s reads inputs [j s, j s + k) only, and keeping the last few inputs of each
layer is enough to produce its new outputs; the running GroupNorm needs only the per-channel sum,
sum of squares and count so far; the LayerNorms (the "layer" layout and the final projection
norm) are per time step. Video frame t needs the 50 Hz frame 2t, whose receptive field ends
400 samples into the frame's 640, so a 640-sample push yields exactly one new frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reactcli.data.features import causal_norm_activation


class StreamingWav2Vec2:
    """Push 16 kHz float32 samples, get (n_new, dim) pooled conv features (float64, as offline)."""

    def __init__(self, model: Any, device: str = "cpu") -> None:
        import torch

        self.torch = torch
        self.model = model
        self.device = device
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
        self._prev50: np.ndarray | None = None  # the last 50 Hz frame, for the pooling of the next frame
        self._n50 = 0
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

    def _pool(self, feats: np.ndarray) -> np.ndarray:
        """New 50 Hz frames -> completed video frames: frame t = max(50 Hz frames 2t - 1, 2t)."""
        rows = []
        for f in feats:
            index = self._n50
            self._n50 += 1
            if index % 2 == 0:  # 50 Hz frame 2t completes video frame t
                prev = f if self._prev50 is None else self._prev50
                rows.append(np.maximum(f, prev))
                self._frames += 1
            self._prev50 = f
        return np.stack(rows) if rows else np.zeros((0, self.dim))
