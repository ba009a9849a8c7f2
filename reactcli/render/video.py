"""Video in and out through imageio-ffmpeg's bundled ffmpeg: no system ffmpeg, no PyAV, no OpenCV.

Frames are streamed (a 30 s clip of four 224 x 224 panels is ~450 MB as raw RGB, so nothing holds
a whole clip), the speaker's wav is muxed in by the same ffmpeg call, and every mp4 is written to
a temp name and renamed. ``probe`` reads the container back with ``ffmpeg -i`` so tests and
``package-submission`` can check fps, size, frame count and the audio stream; ``decode_audio``
decodes a file's audio stream, so a test can measure its duration and where a sound lands.

**Audio and video in step.** The raw frames enter ffmpeg at an exact rate (``-r 30`` gives frame
``t`` the time ``t / 30``) and the wav's samples carry their own times, both from 0; the mp4 muxer's
edit list hides the AAC encoder's priming samples, so the two streams start together and cannot
drift apart however long the clip. What can differ is their *length*: a MARS wav is often a
fraction of a second longer or shorter than its video. With ``audio_seconds`` the audio is resampled to
48 kHz (AAC takes only a fixed set of rates, a MARS wav may have any), padded with silence and cut
to exactly that duration, so both streams end together too.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reactcli.errors import file_error


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class Mp4Writer:
    """H.264 mp4 at a fixed fps, fed (T, H, W, 3) uint8 chunks; optional AAC audio from a wav."""

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: int = 25,
        audio: Path | None = None,
        audio_seconds: float | None = None,
    ) -> None:
        import imageio_ffmpeg

        self.path = Path(path)
        self.audio = audio
        self.size = (width, height)
        self.frames = 0
        self._gen = imageio_ffmpeg.write_frames(
            str(self.path),
            (width, height),
            fps=fps,
            codec="libx264",
            quality=None,
            macro_block_size=2,
            ffmpeg_log_level="error",
            audio_path=None if audio is None else str(audio),
            audio_codec=None if audio is None else "aac",
            output_params=[
                "-preset", "veryfast", "-crf", "23", "-movflags", "+faststart", "-threads", "2",
                *([] if audio is None or audio_seconds is None else ["-af", fit_audio_filter(audio_seconds)]),
            ],
        )  # fmt: skip
        self._gen.send(None)

    def write(self, frames: np.ndarray) -> None:
        if frames.ndim != 4 or frames.shape[1:] != (self.size[1], self.size[0], 3) or frames.dtype != np.uint8:
            raise ValueError(f"frames {frames.shape} {frames.dtype} do not match the video size {self.size}")
        try:
            self._gen.send(np.ascontiguousarray(frames).tobytes())
        except (OSError, RuntimeError, StopIteration) as exc:
            self._gen = None
            detail = str(exc).partition("FFMPEG STDERR OUTPUT:")[2].strip().replace("\n", " / ")[-300:]
            hint = f"; is {self.audio} a readable wav?" if self.audio is not None else ""
            raise file_error(
                self.path, f"ffmpeg stopped while writing the video ({detail or 'see above'}{hint})"
            ) from None
        self.frames += len(frames)

    def close(self) -> None:
        if self._gen is None:
            return
        try:
            self._gen.close()
        except (RuntimeError, OSError) as exc:
            raise file_error(self.path, f"ffmpeg failed to write the video ({str(exc).strip()[-300:]})") from None


#: The rate audio is resampled to when its length is fitted (one of AAC's rates; see the module docstring).
FITTED_AUDIO_RATE = 48000


def fit_audio_filter(seconds: float) -> str:
    """The ffmpeg audio filter that makes a stream exactly ``seconds`` long at :data:`FITTED_AUDIO_RATE`."""
    if not seconds > 0:
        raise ValueError(f"audio duration must be positive, got {seconds}")
    return f"aresample={FITTED_AUDIO_RATE},apad=whole_dur={seconds:.6f},atrim=duration={seconds:.6f}"


def decode_audio(path: str | Path, rate: int = FITTED_AUDIO_RATE) -> np.ndarray:
    """The first audio stream of ``path`` as mono float32 samples at ``rate`` (decoded by ffmpeg,
    edit lists applied, so sample 0 is the video's time 0); an error naming the file when it has none."""
    path = Path(path)
    if not path.is_file():
        raise file_error(path, "video not found")
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
         "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"],
        capture_output=True,
    )  # fmt: skip
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().replace("\n", " / ")[-200:]
        raise file_error(path, f"no decodable audio stream ({detail})")
    return np.frombuffer(proc.stdout, dtype="<f4").copy()


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg reports about a file: video stream, frame count and audio stream (if any)."""

    width: int
    height: int
    fps: float
    frames: int
    duration: float
    video_codec: str
    audio_codec: str | None
    audio_rate: int | None


def probe(path: str | Path) -> VideoInfo:
    """Parse ``ffmpeg -i`` and count frames; a file without a video stream is an error naming it."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise file_error(path, "video not found")
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, errors="replace"
    )
    text = proc.stderr
    video = re.search(r"Stream #\S+.*?: Video: (\w+).*?, (\d+)x(\d+)[ ,].*?([\d.]+) fps", text)
    if video is None:
        raise file_error(path, "no video stream (not a playable video file?)")
    audio = re.search(r"Stream #\S+.*?: Audio: (\w+)(?:.*?(\d+) Hz)?", text)
    dur = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else float("nan")
    try:
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError) as exc:
        raise file_error(path, f"frames could not be counted ({str(exc).strip()[-200:]})") from None
    return VideoInfo(
        width=int(video.group(2)),
        height=int(video.group(3)),
        fps=float(video.group(4)),
        frames=int(frames),
        duration=duration,
        video_codec=video.group(1),
        audio_codec=audio.group(1) if audio else None,
        audio_rate=int(audio.group(2)) if audio and audio.group(2) else None,
    )
