"""One live connection's state: speaker frames in -> :class:`ReactionStream` -> listener frames out.

This is the per-frame loop without any web server, so a script can drive a robot or an avatar
with it directly::

    session = LiveSession(model, MicSource(model), samples=1, seed=0)
    for chunk in microphone_chunks():          # one frame's samples at 16 kHz: 640 at 25 fps
        out = session.step(chunk[None])        # StepResult; .reactions is (K, frames, 83): 58 3DMM + 25 emotion
        drive_avatar(out.reactions[0, -1, :58])

(a MARS model runs at 30 fps: ``MicSource(model, fps=30)``, rows of 534 slots holding a frame's 533
or 534 samples, ``protocol.frame_samples``; a personalised model takes ``personality=`` traits).

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
from pathlib import Path
from typing import Protocol

import numpy as np

from reactcli.data.mars_history import empty_history
from reactcli.errors import ReactError
from reactcli.generate import ReactionStream
from reactcli.live.mediapipe import BLENDSHAPE_DIM
from reactcli.live.protocol import FACE_INPUT, FRAME_VALUES, MIC_RATE, ProtocolError, chunk_width, frame_samples
from reactcli.models.checkpoint import ReactionModel
from reactcli.vocab import EMOTION_DIM, FACE_DIM, FPS


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
    3DMM and emotion — exactly the arrays ``react generate`` reads — and the listener's ground truth.
    A MARS clip also carries its listener's traits (``listener_personality``), which a personalised
    model gets as ``react generate`` gives them."""

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
    """Microphone chunks (one frame's samples at 16 kHz per row: 640 at 25 fps, 533 or 534 in 534
    slots at 30 fps) -> causal audio features at ``fps``; the speaker's face from the 52
    blendshapes + head pose the page sends (``face``), else the training mean.

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

    def __init__(self, model: ReactionModel, face: bool = False, fps: int = FPS) -> None:
        from reactcli.live.audio_stream import StreamingAudioFeatures
        from reactcli.live.emotion_source import speaker_emotion_fallback, speaker_emotion_from_blendshapes
        from reactcli.live.face_source import BlendshapeToFaceVerse, FaceStats, neutral_face
        from reactcli.live.mediapipe import matrix_from_mediapipe_data

        self.face = face
        self.fps = int(fps)
        self.width = chunk_width(self.fps)
        self.features = StreamingAudioFeatures(model.config.audio, input_rate=MIC_RATE, fps=self.fps)
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
        self._frames_in = 0  # rows received: the frame index of the next row

    def _speaker_row(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        w = self.width
        if self.mapper is None or row[w] < 0:
            return self.neutral, self.emotion
        blend = row[w : w + BLENDSHAPE_DIM].astype(np.float64)
        pose = self._matrix(row[w + BLENDSHAPE_DIM : w + FACE_INPUT])  # MediaPipe's column-major data
        emotion = None if self.emotion is None else self._emotion_from(blend, self.emotion)
        return self.mapper(blend, pose), emotion

    def feed(self, values: np.ndarray) -> SpeakerFrames:
        for row in values:
            self._rows.append(self._speaker_row(row))
        counts = frame_samples(self._frames_in, len(values), self.fps)  # each row's own samples, in order
        self._frames_in += len(values)
        samples = [row[:n] for row, n in zip(values, counts, strict=True)]
        audio = self.features.push(np.ascontiguousarray(np.concatenate(samples) if samples else values[:0, 0]))
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
    """The per-frame loop of one client: its own :class:`ReactionStream`, source and seed (and, for
    a personalised model, the listener's (5,) ``personality``; for a model with the history
    condition the listener's (H, 84) ``history``, all zero rows when none is given: a microphone
    user has no past recording, docs/live.md)."""

    def __init__(
        self, model: ReactionModel, source: FrameSource, samples: int, seed: int,
        personality: np.ndarray | None = None, history: np.ndarray | None = None,
    ) -> None:
        self.source = source
        self.seed = int(seed)
        self.samples = int(samples)
        history = _history_or_none(model, history)
        self.stream = ReactionStream(model, samples, seed=self.seed, personality=personality, history=history)
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
    """A session that replays one dataset clip (with its listener's traits for a personalised model)."""
    source = ReplaySource(clip, bool(model.predictor.cfg.speaker_emotion))
    traits = clip.get("listener_personality") if model.predictor.personality_proj is not None else None
    return LiveSession(model, source, samples, seed, traits, clip.get("listener_history"))


def _history_or_none(model: ReactionModel, history: np.ndarray | None) -> np.ndarray | None:
    """``history``, or for a model with the history condition and no history at hand all zero rows
    (``data/mars_history.py``: what training gives a listener's first session)."""
    if history is None and model.predictor.history_encoder is not None:
        return empty_history(model.predictor.cfg.history_frames)
    return history


def warm_up(model: ReactionModel, samples: int, mic: bool, fps: int = FPS) -> None:
    """Run a throwaway session over a few silent frames, so the first client's first frames do not
    pay for torch's lazy kernel setup and numpy's first FFT (measured: 5-6 late frames otherwise)."""
    frames = model.predictor.cfg.patch + 2
    traits = None if model.predictor.personality_proj is None else NEUTRAL_TRAITS
    stream = ReactionStream(model, samples, seed=0, personality=traits, history=_history_or_none(model, None))
    audio = np.zeros((1, model.predictor.audio_dim), np.float32)
    face = np.zeros((1, FACE_DIM), np.float32)
    emotion = np.zeros((1, EMOTION_DIM), np.float32) if model.predictor.cfg.speaker_emotion else None
    for _ in range(frames):
        stream.push(audio, face, emotion)
    if mic:
        MicSource(model, fps=fps).feed(np.zeros((frames, chunk_width(fps)), np.float32))


#: The middle of the 1-5 scale on every trait, ``(3 - 1) / 4``: a personalised model's listener in
#: microphone mode when no training statistics are at hand.
NEUTRAL_TRAITS = np.full(5, 0.5, np.float32)


def mic_personality(model: ReactionModel, root: str | Path | None = None) -> tuple[np.ndarray | None, str | None]:
    """The traits a personalised model gets in microphone mode, and how the page names them: the mean
    of the train split's listener traits of ``root`` (a preprocessed MARS root) when it has them,
    else :data:`NEUTRAL_TRAITS`. (None, None) for a model without ``predictor.personality``."""
    if model.predictor.personality_proj is None:
        return None, None
    if root is not None:
        from reactcli.data.cache import FeatureCache, load_mars_index

        try:
            index = load_mars_index(FeatureCache(Path(root), model.config), "train")
        except ReactError:
            index = None
        if index is not None:
            traits = [e.personality for e in index.entries.values()
                      if e.personality is not None and e.recording.role == "listener"]  # fmt: skip
            if traits:
                mean = np.asarray(traits, np.float64).mean(0).astype(np.float32)
                return mean, f"the mean traits of the {len(traits)} train listener recordings"
    return NEUTRAL_TRAITS, "neutral traits (0.5 each: the middle of the 1-5 scale)"
