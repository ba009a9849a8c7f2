"""Per-frame speaker audio features at the data's frame rate (25 fps REACT 2024, 30 fps MARS), strictly causal.

The online contract says listener frame t may use speaker input up to frame t only, so every
feature here for frame t is computed from audio samples before the end of frame t,
``(t + 1) / fps`` s: analysis windows end at the frame boundary, deltas are backward differences,
and nothing is normalised with whole-clip statistics (the released code did: defect 7 in docs/model.md).

Frame boundaries are exact integers at any rate: frame t ends at sample ``frame_end(t) =
floor((t + 1) * rate / fps)`` (exclusive), so every sample counted in frame t lies before
``(t + 1) / fps`` s. At 25 fps with a rate that is a multiple of 25 (16 kHz: 640 samples per frame)
this is the fixed hop of the 2024 features, which stay bit for bit what they were; at 30 fps and
16 kHz frames are 533 or 534 samples long (533.3 on average) and never drift.

- ``mfcc``: 26 MFCC + delta + delta-delta = 78-D, the REACT baselines' audio feature.
- ``logmel``: log mel energies.
- ``wav2vec2``: the convolutional ``extract_features`` (512-d at 50 Hz) of a local wav2vec2
  checkpoint, max-pooled over the 50 Hz frames that end inside each video frame (two at 25 fps,
  one or two at 30 fps). Its first
  conv layer uses GroupNorm over *time* in the base models (whole-clip statistics); we replace
  those statistics by running (cumulative) ones so that the features stay causal.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reactcli.data.loaders import resample
from reactcli.editions import AUDIO_FEATURE_DIM
from reactcli.errors import ReactError, file_error
from reactcli.vocab import CLIP_FRAMES, FPS

if TYPE_CHECKING:
    import torch

    from reactcli.config import AudioConfig

N_FFT = 1024
_HANN = np.hanning(N_FFT).astype(np.float32)  # the analysis window, built once (live mode calls per frame)
MFCC_MELS = 40


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, rate: int, n_fft: int = N_FFT) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular HTK-style mel filters."""
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(20.0), _hz_to_mel(rate / 2), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def frame_ends(frames: int, rate: int, fps: int = FPS) -> np.ndarray:
    """(frames,) int64: the exclusive end sample of each video frame, ``floor((t + 1) * rate / fps)``.

    Exact integer arithmetic, so sample n belongs to frame t only if ``n / rate < (t + 1) / fps``.
    """
    return (np.arange(1, frames + 1, dtype=np.int64) * rate) // fps


def frames_ready(samples: int, rate: int, fps: int = FPS) -> int:
    """How many video frames have ended within the first ``samples`` samples: the number of t with
    ``frame_ends(.)[t] <= samples`` (what a live stream that has received ``samples`` can emit)."""
    return max(0, ((int(samples) + 1) * fps - 1) // rate)


def causal_frames(
    wave: np.ndarray, rate: int, frames: int = CLIP_FRAMES, n_fft: int = N_FFT, fps: int = FPS
) -> np.ndarray:
    """(frames, n_fft) windows, window t ending 2 ms before the end of video frame t.

    The 2 ms guard covers the look-ahead of the polyphase resampler's FIR filter (under 1 ms),
    so that audio after frame t cannot leak into frame t's feature even through resampling.
    """
    guard = rate // 500
    ends = frame_ends(frames, rate, fps)
    padded = np.concatenate(
        [np.zeros(n_fft, np.float32), wave.astype(np.float32), np.zeros(int(ends[-1]) if frames else 0, np.float32)]
    )
    idx = (n_fft + ends - guard)[:, None] - n_fft + np.arange(n_fft)[None]
    return padded[idx]


def log_mel(wave: np.ndarray, rate: int, n_mels: int, frames: int = CLIP_FRAMES, fps: int = FPS) -> np.ndarray:
    return windows_log_mel(causal_frames(wave, rate, frames, fps=fps), mel_filterbank(n_mels, rate))


def windows_log_mel(windows: np.ndarray, filterbank: np.ndarray) -> np.ndarray:
    """(n, N_FFT) raw float32 windows -> (n, n_mels) log mel energies.

    Shared by the offline extractor and the live one (``reactcli.live.audio_stream``), so that both
    run the very same arithmetic on a window and agree frame for frame.
    """
    windows = windows * _HANN
    power = np.abs(np.fft.rfft(windows, axis=1)) ** 2
    return np.log(power @ filterbank.T + 1e-10)


def mfcc_coefficients(logmel: np.ndarray, n_mfcc: int) -> np.ndarray:
    """(n, MFCC_MELS) log mel -> (n, n_mfcc) MFCC (orthonormal DCT-II), without deltas."""
    from scipy.fft import dct

    return dct(logmel, type=2, norm="ortho", axis=1)[:, :n_mfcc]


def backward_delta(x: np.ndarray) -> np.ndarray:
    """x[t] - x[t-1] (0 at t = 0): a delta that never looks ahead."""
    out = np.zeros_like(x)
    out[1:] = x[1:] - x[:-1]
    return out


def mfcc(wave: np.ndarray, rate: int, n_mfcc: int, frames: int = CLIP_FRAMES, fps: int = FPS) -> np.ndarray:
    coeffs = mfcc_coefficients(log_mel(wave, rate, MFCC_MELS, frames, fps), n_mfcc)
    delta = backward_delta(coeffs)
    return np.concatenate([coeffs, delta, backward_delta(delta)], axis=1)


class Wav2Vec2Features:
    """Causal conv features of a local wav2vec2 model (no download, ``local_files_only=True``)."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        import torch
        from transformers import Wav2Vec2Model

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise file_error(folder, "not a wav2vec2 model folder (no config.json; save one with save_pretrained)")
        try:
            model = Wav2Vec2Model.from_pretrained(folder, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure here means the user's folder is unusable
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise file_error(folder, f"cannot load wav2vec2 weights ({reason})") from None
        stride = int(np.prod(model.config.conv_stride))
        if stride != 320:
            raise file_error(folder, f"wav2vec2 conv stride is {stride} samples, expected 320 (50 Hz at 16 kHz)")
        self.model = model.eval().to(device)
        self.device = device
        self.dim = int(model.config.conv_dim[-1])
        self.torch = torch

    def conv_features(self, wave16k: np.ndarray) -> np.ndarray:
        """(T50, dim) extract_features with GroupNorm statistics accumulated causally."""
        torch = self.torch
        x = torch.from_numpy(wave16k.astype(np.float32))[None, None].to(self.device)
        with torch.inference_mode():
            for layer in self.model.feature_extractor.conv_layers:
                x, _ = causal_norm_activation(layer, layer.conv(x))
            feats = self.model.feature_projection.layer_norm(x.transpose(1, 2))
        return feats[0].double().cpu().numpy()

    def __call__(self, wave16k: np.ndarray, frames: int = CLIP_FRAMES, fps: int = FPS) -> np.ndarray:
        ends = frame_ends(frames, W2V_RATE, fps)
        needed = int(ends[-1]) if frames else 0
        wave16k = np.concatenate([wave16k, np.zeros(max(0, needed - len(wave16k)), np.float32)])[:needed]
        feats = self.conv_features(wave16k)
        last, first = pooled_conv_frames(ends, len(feats))
        out = feats[last]
        for back in range(1, int((last - first).max(initial=0)) + 1):
            out = np.maximum(out, feats[np.maximum(last - back, first)])
        return out


W2V_RATE = 16000
W2V_HOP, W2V_WINDOW = 320, 400  # wav2vec2's conv encoder: one frame per 320 samples, each seeing 400


def pooled_conv_frames(ends: np.ndarray, available: int) -> tuple[np.ndarray, np.ndarray]:
    """(last, first) 50 Hz frame indices pooled into each video frame: those that end inside it.

    50 Hz frame i covers samples [320 i, 320 i + 400), so the last one ending by video frame t's end
    e_t is ``floor((e_t - 400) / 320)``; frame t pools from the one after frame t - 1's last (at
    25 fps: 2t - 1 and 2t). Clipped to the frames computed (and to 0 at the start).
    """
    last = np.clip((ends - W2V_WINDOW) // W2V_HOP, 0, available - 1)
    first = np.concatenate([[0], last[:-1] + 1])
    return last, np.minimum(first, last)


#: Running GroupNorm statistics carried from one pushed block to the next: per-channel sums of x
#: and x^2 (float64, shape (1, C, 1)) and the number of samples they cover.
GroupNormState = tuple["torch.Tensor", "torch.Tensor", int]


def running_group_norm(
    x: torch.Tensor, norm: torch.nn.GroupNorm, carried: GroupNormState | None = None
) -> tuple[torch.Tensor, GroupNormState]:
    """GroupNorm with one channel per group, using statistics of samples up to t only.

    ``carried`` continues the statistics of the samples before ``x`` (the live extractor pushes a
    clip in pieces); offline it is None, and both paths run the same arithmetic.
    """
    import torch

    if norm.num_groups != norm.num_channels:
        raise ReactError("wav2vec2 GroupNorm with several channels per group is not supported")
    xd = x.double()
    done = 0 if carried is None else carried[2]
    count = done + torch.arange(1, x.shape[-1] + 1, dtype=torch.float64, device=x.device)
    total, total_sq = xd.cumsum(-1), (xd * xd).cumsum(-1)
    if carried is not None:
        total, total_sq = total + carried[0], total_sq + carried[1]
    mean = total / count
    var = total_sq / count - mean * mean
    out = (xd - mean) / torch.sqrt(var.clamp_min(0) + norm.eps)
    out = (out * norm.weight[:, None].double() + norm.bias[:, None].double()).to(x.dtype)
    return out, (total[..., -1:], total_sq[..., -1:], done + x.shape[-1])


def causal_norm_activation(
    layer: torch.nn.Module, y: torch.Tensor, carried: GroupNormState | None = None
) -> tuple[torch.Tensor, GroupNormState | None]:
    """The rest of a wav2vec2 feature-extractor layer after its conv: GroupNorm made causal (see
    :func:`running_group_norm`), or LayerNorm (per frame, causal already), then the activation."""
    import torch

    norm = getattr(layer, "layer_norm", None)
    if isinstance(norm, torch.nn.GroupNorm):
        y, carried = running_group_norm(y, norm, carried)
    elif isinstance(norm, torch.nn.LayerNorm):
        y = norm(y.transpose(-2, -1)).transpose(-2, -1)
    return layer.activation(y), carried


def _folder_tag(folder: Path) -> str:
    digest = hashlib.sha1((folder / "config.json").read_bytes()).hexdigest()[:8] if folder.is_dir() else "missing"
    return f"wav2vec2-{folder.name}-{digest}"


#: ``audio.encoder`` value that reads a MARS release's own 768-d ``audio-features`` (wav2vec2-base-960h's
#: last hidden state: its transformer sees the whole recording, so these features are NOT causal and a
#: model trained on them is an offline model).
RELEASE_ENCODER = "release"


def is_causal(cfg: AudioConfig) -> bool:
    """Whether frame t's features depend on audio up to frame t only (every encoder but the release's)."""
    return cfg.encoder != RELEASE_ENCODER


def audio_feature_dim(cfg: AudioConfig) -> int:
    if cfg.encoder == RELEASE_ENCODER:
        return AUDIO_FEATURE_DIM
    if cfg.encoder == "mfcc":
        return 3 * cfg.n_mfcc
    if cfg.encoder == "logmel":
        return cfg.n_mels
    folder = _require_pretrained(cfg)
    import json

    return int(json.loads((folder / "config.json").read_text())["conv_dim"][-1])


def feature_tag(cfg: AudioConfig) -> str:
    """A cache folder name that changes whenever the features would."""
    if cfg.encoder == RELEASE_ENCODER:
        return RELEASE_ENCODER
    if cfg.encoder == "mfcc":
        return f"mfcc{cfg.n_mfcc}-sr{cfg.sample_rate}"
    if cfg.encoder == "logmel":
        return f"logmel{cfg.n_mels}-sr{cfg.sample_rate}"
    return _folder_tag(_require_pretrained(cfg))


def _require_pretrained(cfg: AudioConfig) -> Path:
    if cfg.pretrained is None:
        raise ReactError("audio.encoder = 'wav2vec2' needs audio.pretrained = <local wav2vec2 folder>")
    folder = Path(cfg.pretrained)
    if not (folder / "config.json").is_file():
        raise file_error(folder, "not a wav2vec2 model folder (no config.json; save one with save_pretrained)")
    return folder


class FeatureExtractor:
    """Turn a waveform at any rate into (frames, D) causal features at ``fps`` frames per second.

    ``fps`` is the data's video rate: 25 for REACT 2024 (the default), 30 for MARS.
    """

    def __init__(self, cfg: AudioConfig, device: str = "cpu", fps: int = FPS) -> None:
        if cfg.encoder == RELEASE_ENCODER:
            raise ReactError(
                f"audio.encoder = '{RELEASE_ENCODER}' reads a MARS release's audio-features folder; "
                "they cannot be computed from a wav (choose mfcc, logmel or wav2vec2)"
            )
        self.cfg = cfg
        self.fps = fps
        self.dim = audio_feature_dim(cfg)
        self.tag = feature_tag(cfg)
        rate = W2V_RATE if cfg.encoder == "wav2vec2" else cfg.sample_rate
        if fps == FPS and rate % FPS:
            raise ReactError(f"audio.sample_rate {rate} must be a multiple of {FPS}")
        self.rate = rate
        self._w2v = Wav2Vec2Features(_require_pretrained(cfg), device) if cfg.encoder == "wav2vec2" else None

    def __call__(self, wave: np.ndarray, rate: int, frames: int = CLIP_FRAMES) -> np.ndarray:
        wave = resample(wave, rate, self.rate)
        if self._w2v is not None:
            feats = self._w2v(wave, frames, self.fps)
        elif self.cfg.encoder == "mfcc":
            feats = mfcc(wave, self.rate, self.cfg.n_mfcc, frames, self.fps)
        else:
            feats = log_mel(wave, self.rate, self.cfg.n_mels, frames, self.fps)
        return np.ascontiguousarray(feats, dtype=np.float32)
