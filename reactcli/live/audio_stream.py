"""Speaker audio features computed incrementally, equal to the offline features frame for frame.

The offline extractor (:class:`reactcli.data.features.FeatureExtractor`) is already causal: the
window of video frame t ends 2 ms before the frame's end, deltas look backwards only, and nothing
is normalised with clip statistics. So frame t's feature is fixed as soon as the audio up to
``(t + 1) / fps s - 2 ms`` has arrived, and a live stream can compute it then, from the same
samples with the same arithmetic (:func:`reactcli.data.features.windows_log_mel`). Frame ends are
the offline extractor's exact integers (:func:`reactcli.data.features.frame_ends`,
``floor((t + 1) rate / fps)``), so the stream runs at the model's edition's rate: 25 fps (REACT
2024; a 640-sample chunk at 16 kHz completes one frame) or 30 fps (MARS; frames of 533 or 534
samples at 16 kHz, a chunk of a frame's samples completes that frame), bit for bit as offline.

When the microphone rate differs from the model's ``audio.sample_rate``, samples go through
:class:`reactcli.live.resample.StreamingResampler`, which reproduces the offline whole-clip
polyphase resampler sample for sample (its look-ahead, under 1 ms, fits in the 2 ms guard).

wav2vec2 features stream too (:mod:`reactcli.live.wav2vec2_stream`): the conv encoder has no
padding and its first GroupNorm already uses running statistics offline, so each push runs the
convolutions on the new samples plus a few samples of history per layer.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from reactcli.config import AudioConfig
from reactcli.data.features import (
    MFCC_MELS,
    N_FFT,
    RELEASE_ENCODER,
    audio_feature_dim,
    backward_delta,
    frames_ready,
    mel_filterbank,
    mfcc_coefficients,
    windows_log_mel,
)
from reactcli.errors import ReactError
from reactcli.live.resample import StreamingResampler
from reactcli.vocab import FPS

#: Most samples one push may carry (10 s at 48 kHz): a bound for callers that take network input.
MAX_PUSH_SAMPLES = 480_000


def check_samples(samples: np.ndarray) -> np.ndarray:
    """Validate one chunk of mono audio and return it as float32 (one-line ReactErrors)."""
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ReactError(f"audio chunk must be 1-D mono samples, got shape {samples.shape}")
    if samples.dtype.kind != "f":
        raise ReactError(f"audio chunk must hold float samples in [-1, 1], got dtype {samples.dtype}")
    if len(samples) > MAX_PUSH_SAMPLES:
        raise ReactError(f"audio chunk has {len(samples)} samples, at most {MAX_PUSH_SAMPLES} per push")
    if not np.isfinite(samples).all():
        raise ReactError("audio chunk contains NaN or inf samples")
    return samples.astype(np.float32, copy=False)


@cache
def _shared_wav2vec2(folder: Path, device: str) -> Any:
    """One loaded wav2vec2 encoder per folder and device for the whole process (read-only; each
    stream keeps its own running statistics). ``react live`` builds a microphone source to probe,
    to warm up and for every connection; reloading the weights each time would stall the server's
    event loop and with it every other session. A failed load raises and is not cached."""
    from reactcli.data.features import Wav2Vec2Features

    return Wav2Vec2Features(folder, device).model


class StreamingAudioFeatures:
    """Push microphone samples, get the (n_new, D) float32 features of the video frames they complete.

    ``cfg`` is the model's audio configuration (``model.config.audio`` of a loaded checkpoint), so
    the live features are the ones the model was trained on, and ``fps`` its edition's video rate
    (25 for REACT 2024, 30 for MARS). ``input_rate`` is the rate of the pushed samples; ``device``
    is accepted for symmetry with the offline extractor (the features are computed with numpy on
    the CPU: one 1024-point FFT per frame).
    """

    def __init__(self, cfg: AudioConfig, input_rate: int = 16000, device: str = "cpu", fps: int = FPS) -> None:
        if cfg.encoder == RELEASE_ENCODER:
            raise ReactError(f"audio.encoder = '{RELEASE_ENCODER}': the release's audio-features are wav2vec2's "
                             "whole-recording features; they cannot be computed live")
        if cfg.encoder != "wav2vec2" and fps == FPS and cfg.sample_rate % FPS:
            raise ReactError(f"audio.sample_rate {cfg.sample_rate} must be a multiple of {FPS}")
        if int(fps) <= 0 or int(fps) != fps:
            raise ReactError(f"fps must be a positive whole number, got {fps}")
        if int(input_rate) <= 0 or int(input_rate) != input_rate:
            raise ReactError(f"input rate must be a positive whole number of Hz, got {input_rate}")
        self.cfg = cfg
        self.device = device
        self.fps = int(fps)
        self.input_rate = int(input_rate)
        self.rate = 16000 if cfg.encoder == "wav2vec2" else int(cfg.sample_rate)  # as FeatureExtractor
        self.dim = audio_feature_dim(cfg)
        self._w2v = None
        if cfg.encoder == "wav2vec2":
            from reactcli.data.features import _require_pretrained
            from reactcli.live.wav2vec2_stream import StreamingWav2Vec2

            encoder = _shared_wav2vec2(_require_pretrained(cfg).resolve(), device)
            self._w2v = StreamingWav2Vec2(encoder, device, self.fps)
        self.guard = self.rate // 500  # as causal_frames: windows end 2 ms before the frame boundary
        n_mels = MFCC_MELS if cfg.encoder == "mfcc" else cfg.n_mels
        self._filterbank = mel_filterbank(n_mels, self.rate)
        self._resampler = None if self.input_rate == self.rate else StreamingResampler(self.input_rate, self.rate)
        self.reset()

    @property
    def frames_done(self) -> int:
        """Video frames whose features have been returned so far."""
        return self._frames

    @property
    def samples_received(self) -> int:
        """Samples pushed so far, at the input rate."""
        return self._received

    def reset(self) -> None:
        """Start a new stream: frame 0 again, silence before the first sample (as offline)."""
        # Absolute sample index of _buf[0] at the model rate; the N_FFT zeros before the clip are
        # the offline padding, so frame 0's window reads them exactly as causal_frames does.
        self._buf = np.zeros(N_FFT, np.float32)
        self._buf_start = -N_FFT
        self._total = 0  # samples at the model rate
        self._received = 0
        self._frames = 0
        self._prev_coeffs: np.ndarray | None = None
        self._prev_delta: np.ndarray | None = None
        if self._resampler is not None:
            self._resampler.reset()
        if self._w2v is not None:
            self._w2v.reset()

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Append new mono samples at ``input_rate``; return the features of newly completed frames."""
        samples = check_samples(samples)
        self._received += len(samples)
        if self._resampler is not None:
            samples = self._resampler.push(samples)
        if self._w2v is not None:
            feats = self._w2v.push(samples)
            self._frames = self._w2v.frames_done
            return np.ascontiguousarray(feats, dtype=np.float32)
        if len(samples):
            self._buf = np.concatenate([self._buf, samples])
            self._total += len(samples)
        # Frame t's window is samples [end - N_FFT, end) with end = frame_end(t) - guard.
        ready = frames_ready(self._total + self.guard, self.rate, self.fps)  # windows fully arrived
        if ready <= self._frames:
            return np.zeros((0, self.dim), np.float32)
        ends = self._frame_end(np.arange(self._frames, ready)) - self.guard - self._buf_start
        windows = self._buf[ends[:, None] - N_FFT + np.arange(N_FFT)[None]]
        feats = self._features(windows_log_mel(windows, self._filterbank))
        self._frames = ready
        # First sample the next window reads; never past what has arrived (the window is shorter
        # than a frame at 44.1 kHz, so the next window may start after the last sample so far).
        next_start = min(int(self._frame_end(np.array([ready]))[0]) - self.guard - N_FFT, self._total)
        if next_start > self._buf_start:
            self._buf = self._buf[next_start - self._buf_start :]
            self._buf_start = next_start
        return np.ascontiguousarray(feats, dtype=np.float32)

    def _frame_end(self, frames: np.ndarray) -> np.ndarray:
        """Exclusive end sample of each video frame index: ``data.features.frame_ends``' integers."""
        return ((frames.astype(np.int64) + 1) * self.rate) // self.fps

    def _features(self, logmel: np.ndarray) -> np.ndarray:
        """Log mel rows of consecutive frames -> the configured features, carrying the delta state."""
        if self.cfg.encoder == "logmel":
            return logmel
        coeffs = mfcc_coefficients(logmel, self.cfg.n_mfcc)
        # the offline backward_delta, continued: the row before this block leads it (frame 0 leads
        # itself, so its delta is 0 as offline)
        prev = coeffs[:1] if self._prev_coeffs is None else self._prev_coeffs
        delta = backward_delta(np.concatenate([prev, coeffs]))[1:]
        prev_delta = delta[:1] if self._prev_delta is None else self._prev_delta
        delta2 = backward_delta(np.concatenate([prev_delta, delta]))[1:]
        self._prev_coeffs, self._prev_delta = coeffs[-1:], delta[-1:]
        return np.concatenate([coeffs, delta, delta2], axis=1)
