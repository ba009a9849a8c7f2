"""Streaming polyphase resampling that reproduces ``scipy.signal.resample_poly`` sample for sample.

The offline path (:func:`reactcli.data.loaders.resample`) resamples a whole clip at once with
scipy's default linear-phase FIR (Kaiser window, beta 5, ``10 * max(up, down)`` taps each side).
Every output sample of that filter is a finite dot product of the filter with input samples
around it, the signal being zero before its start. So the same outputs can be produced
incrementally: keep the last few input samples, run ``upfirdn`` on that short buffer, and emit
only the outputs whose whole filter support has arrived. The buffer always starts at an input
index that is a multiple of ``down``, which keeps the polyphase phase of the buffer's outputs
aligned with the whole-clip outputs. The price is a delay of ``half_len / up`` input samples
(0.6 ms from 48 kHz to 16 kHz), well inside the 2 ms guard that the causal feature windows keep
before each frame boundary (:func:`reactcli.data.features.causal_frames`).
"""

from __future__ import annotations

from math import gcd

import numpy as np


class StreamingResampler:
    """Resample float32 samples from ``rate_in`` to ``rate_out`` in pushes of any size."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        from scipy.signal import firwin

        g = gcd(int(rate_in), int(rate_out))
        self.up, self.down = int(rate_out) // g, int(rate_in) // g
        max_rate = max(self.up, self.down)
        half_len = 10 * max_rate
        # The filter exactly as resample_poly builds it for float32 input (same taps, same dtype).
        taps = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)).astype(np.float32)
        taps *= self.up
        n_pre_pad = self.down - half_len % self.down
        self._taps = np.concatenate([np.zeros(n_pre_pad, np.float32), taps])
        self._skip = (half_len + n_pre_pad) // self.down  # upfirdn outputs resample_poly drops at the start
        self.delay_in = half_len // self.up + 1  # input samples an output waits for, at most
        self.reset()

    def reset(self) -> None:
        """Forget all input: the next push starts a new signal (zeros before it, as offline)."""
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # absolute input index of _buf[0], a multiple of down
        self._n_in = 0
        self._next = 0  # next upfirdn output index to emit

    def push(self, samples: np.ndarray) -> np.ndarray:
        """New float32 input samples -> the output samples that are now final (maybe none)."""
        from scipy.signal import upfirdn

        self._buf = np.concatenate([self._buf, np.asarray(samples, np.float32)])
        self._n_in += len(samples)
        # upfirdn output k reads inputs i with 0 <= k * down - i * up < len(taps): final once
        # i = floor(k * down / up) has arrived, i.e. k * down < n_in * up.
        last = (self._n_in * self.up - 1) // self.down if self._n_in else -1
        if last < self._next:
            return np.zeros(0, np.float32)
        offset = self._buf_start * self.up // self.down  # upfirdn index of the buffer's output 0
        out = upfirdn(self._taps, self._buf, self.up, self.down)[self._next - offset : last + 1 - offset]
        first_kept = max(self._next, self._skip)
        out = out[first_kept - self._next :]
        self._next = last + 1
        self._trim()
        return np.ascontiguousarray(out, np.float32)

    def _trim(self) -> None:
        """Drop input no future output reads, keeping the buffer start on a multiple of down."""
        lowest = -(-(self._next * self.down - len(self._taps) + 1) // self.up)  # ceil division
        keep_from = max(0, lowest) // self.down * self.down
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from
