"""One live connection's state: speaker frames in -> :class:`ReactionStream` -> listener frames out.

This is the per-frame loop without any web server, so a script can drive a robot or an avatar
with it directly::

    session = LiveSession(model, MicSource(model), samples=1, seed=0)
    for chunk in microphone_chunks():          # 640 float32 samples at 16 kHz each
        out = session.step(chunk[None])        # StepResult; .reactions is (K, frames, 83): 58 3DMM + 25 emotion
        drive_avatar(out.reactions[0, -1, :58])

A *source* turns what a client sends into speaker frames: :class:`ReplaySource` walks a dataset
clip (the client only says "next frame"), :class:`MicSource` computes the configured audio
features incrementally and takes the speaker's face from camera blendshapes or holds it at the
training mean. Every session has its own stream, source and seed, so connections never share
state; the model weights are shared read-only.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from reactcli.errors import ReactError
from reactcli.generate import ReactionStream
from reactcli.live.mediapipe import BLENDSHAPE_DIM
from reactcli.live.protocol import CHUNK, FACE_INPUT, FRAME_VALUES, MIC_RATE, ProtocolError
from reactcli.models.checkpoint import ReactionModel
from reactcli.vocab import EMOTION_DIM, FACE_DIM


@dataclass
class SpeakerFrames:
    """Speaker input of n frames, plus the ground-truth listener (n, 83) when the source has one."""

    audio: np.ndarray
    face3dmm: np.ndarray
    emotion: np.ndarray | None
    reference: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return int(self.audio.shape[0])


class FrameSource(Protocol):
    """Turns one client message's (frames, dim) values into speaker frames."""

    mode: str
    face: bool  # whether the client sends face values after the audio

    def feed(self, values: np.ndarray) -> SpeakerFrames: ...


class ReplaySource:
    """A dataset clip as the speaker: each tick releases the next frame(s) of its audio features,
    3DMM and emotion — exactly the arrays ``react generate`` reads — and the listener's ground truth."""

    mode = "replay"
    face = False

    def __init__(self, clip: dict[str, np.ndarray], needs_emotion: bool) -> None:
        self.clip = clip
        self.needs_emotion = needs_emotion
        self.total = int(len(clip["speaker_audio"]))
        self.cursor = 0
        listener = np.concatenate([clip["listener_3dmm"], clip["listener_emotion"]], 1)
        self._reference = listener.astype(np.float32)

    @property
    def finished(self) -> bool:
        return self.cursor >= self.total

    def feed(self, values: np.ndarray) -> SpeakerFrames:
        n = int(values.shape[0])
        if self.cursor + n > self.total:
            raise ProtocolError(f"the clip has {self.total} frames; a tick asked for frame {self.cursor + n - 1}")
        lo, hi = self.cursor, self.cursor + n
        self.cursor = hi
        emotion = self.clip["speaker_emotion"][lo:hi] if self.needs_emotion else None
        return SpeakerFrames(
            self.clip["speaker_audio"][lo:hi], self.clip["speaker_3dmm"][lo:hi], emotion, self._reference[lo:hi]
        )


class MicSource:
    """Microphone chunks (640 samples at 16 kHz per frame) -> causal audio features; the speaker's
    face from the 52 blendshapes + head pose the page sends (``face``), else the training mean.

    The features come from :class:`reactcli.live.audio_stream.StreamingAudioFeatures`, equal to the
    offline extractor frame for frame, so the model hears what it was trained on. The face map and
    the neutral face are :mod:`reactcli.live.face_source`'s, the speaker-emotion fallback
    :mod:`reactcli.live.emotion_source`'s (docs/live_inputs.md), both from this model's training
    statistics. A chunk completes one
    feature frame; face rows wait in a queue until their audio frame is out, which keeps the two
    aligned even if the extractor ever lags. A frame whose first blendshape score is negative
    means "no face detected yet": the speaker face is then held at the training mean.
    """

    mode = "mic"

    def __init__(self, model: ReactionModel, face: bool = False) -> None:
        from reactcli.live.audio_stream import StreamingAudioFeatures
        from reactcli.live.emotion_source import speaker_emotion_fallback, speaker_emotion_from_blendshapes
        from reactcli.live.face_source import BlendshapeToFaceVerse, FaceStats, neutral_face
        from reactcli.live.mediapipe import matrix_from_mediapipe_data

        self.face = face
        self.features = StreamingAudioFeatures(model.config.audio, input_rate=MIC_RATE)
        if self.features.dim != model.predictor.audio_dim:
            raise ReactError(
                f"{model.path}: live audio features are {self.features.dim}-d but the model expects "
                f"{model.predictor.audio_dim}"
            )
        stats = FaceStats.from_model(model)
        self.mapper = BlendshapeToFaceVerse(stats) if face else None
        self.neutral = np.asarray(neutral_face(stats), np.float32).reshape(FACE_DIM)
        fallback = speaker_emotion_fallback(model)  # None: the model takes no speaker emotion
        self.emotion = None if fallback is None else np.asarray(fallback, np.float32).reshape(EMOTION_DIM)
        self._emotion_from = speaker_emotion_from_blendshapes
        self._matrix = matrix_from_mediapipe_data
        self._rows: deque[tuple[np.ndarray, np.ndarray | None]] = deque()

    def _speaker_row(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.mapper is None or row[CHUNK] < 0:
            return self.neutral, self.emotion
        blend = row[CHUNK : CHUNK + BLENDSHAPE_DIM].astype(np.float64)
        pose = self._matrix(row[CHUNK + BLENDSHAPE_DIM : CHUNK + FACE_INPUT])  # MediaPipe's column-major data
        emotion = None if self.emotion is None else self._emotion_from(blend, self.emotion)
        return self.mapper(blend, pose), emotion

    def feed(self, values: np.ndarray) -> SpeakerFrames:
        for row in values:
            self._rows.append(self._speaker_row(row))
        audio = self.features.push(np.ascontiguousarray(values[:, :CHUNK]).reshape(-1))
        rows = [self._rows.popleft() for _ in range(len(audio))]
        face = np.stack([r[0] for r in rows]) if rows else np.zeros((0, FACE_DIM), np.float32)
        emotion = None
        if self.emotion is not None:
            emotion = np.stack([r[1] for r in rows]) if rows else np.zeros((0, EMOTION_DIM), np.float32)
        return SpeakerFrames(audio, face, emotion)


@dataclass
class StepResult:
    """The listener frames one step produced: ``reactions`` (K, m, 83), the first frame index, the
    ground-truth listener (m, 83) when the source has one, and the server time the step took."""

    reactions: np.ndarray
    start: int
    reference: np.ndarray | None
    server_ms: float

    @property
    def frames(self) -> int:
        return int(self.reactions.shape[1])

    def packed(self) -> np.ndarray:
        """(m, (K + G) * 83) rows as sent on the wire: reaction 0..K-1, then the ground truth."""
        k, m, _ = self.reactions.shape
        rows = self.reactions.transpose(1, 0, 2).reshape(m, k * FRAME_VALUES)
        if self.reference is not None:
            rows = np.concatenate([rows, self.reference[:m]], 1)
        return np.ascontiguousarray(rows, dtype=np.float32)


class LiveSession:
    """The per-frame loop of one client: its own :class:`ReactionStream`, source and seed."""

    def __init__(self, model: ReactionModel, source: FrameSource, samples: int, seed: int) -> None:
        self.source = source
        self.seed = int(seed)
        self.samples = int(samples)
        self.stream = ReactionStream(model, samples, seed=self.seed)
        self.frames_in = 0
        self.frames_out = 0
        self._server_ms_total = 0.0  # a running sum: a session may last hours
        self._pending_reference: deque[np.ndarray] = deque()

    @property
    def reference(self) -> bool:
        return isinstance(self.source, ReplaySource)

    @property
    def mean_server_ms(self) -> float:
        """Server time per listener frame so far (NaN before the first frame)."""
        return self._server_ms_total / self.frames_out if self.frames_out else float("nan")

    def step(self, values: np.ndarray) -> StepResult:
        """Feed one message's worth of client values; return every listener frame now computable."""
        t0 = time.perf_counter()
        speaker = self.source.feed(values)
        self.frames_in += int(values.shape[0])
        if speaker.reference is not None:
            self._pending_reference.extend(speaker.reference)
        out = self.stream.push(speaker.audio, speaker.face3dmm, speaker.emotion)
        reactions = np.concatenate([out.face3dmm.numpy(), out.emotion.numpy()], 2).astype(np.float32)
        m = reactions.shape[1]
        reference = None
        if self.reference:
            rows = [self._pending_reference.popleft() for _ in range(m)]
            reference = np.stack(rows) if rows else np.zeros((0, FRAME_VALUES), np.float32)
        self.frames_out += m
        ms = (time.perf_counter() - t0) * 1e3
        if m:
            self._server_ms_total += ms
        return StepResult(reactions, out.start, reference, ms)


def replay_session(model: ReactionModel, clip: dict[str, np.ndarray], samples: int, seed: int) -> LiveSession:
    """A session that replays one dataset clip."""
    return LiveSession(model, ReplaySource(clip, bool(model.predictor.cfg.speaker_emotion)), samples, seed)


def warm_up(model: ReactionModel, samples: int, mic: bool) -> None:
    """Run a throwaway session over a few silent frames, so the first client's first frames do not
    pay for torch's lazy kernel setup and numpy's first FFT (measured: 5-6 late frames otherwise)."""
    frames = model.predictor.cfg.patch + 2
    stream = ReactionStream(model, samples, seed=0)
    audio = np.zeros((1, model.predictor.audio_dim), np.float32)
    face = np.zeros((1, FACE_DIM), np.float32)
    emotion = np.zeros((1, EMOTION_DIM), np.float32) if model.predictor.cfg.speaker_emotion else None
    for _ in range(frames):
        stream.push(audio, face, emotion)
    if mic:
        MicSource(model).feed(np.zeros((frames, CHUNK), np.float32))
