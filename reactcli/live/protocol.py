"""The ``react live`` wire format: small binary frames for the 25 or 30 fps streams, JSON for control.

Why binary and not JSON for the streams: a microphone chunk is 640 float32 samples every 40 ms and
an outgoing frame K x 83 floats; as JSON text that is 5-10x the bytes and a parse per number. Why
not pickle: a WebSocket is an input from whoever can reach the port, and unpickling runs code.

Every binary message is a fixed 32-byte little-endian header followed by ``frames x dim`` float32
values, also little-endian::

    offset size  field
    0      4     magic  b"RLV1"
    4      1     version (1)
    5      1     type   (MsgType)
    6      2     flags  (0; reserved)
    8      4     seq    message number on this connection: 0, 1, 2, ... (per direction)
    12     4     frame  index of the first video frame the message carries (at the model's fps)
    16     2     frames how many frames follow
    18     2     dim    float32 values per frame
    20     8     t_ms   float64: client clock when the input was captured (echoed back in output)
    28     4     aux    float32: server milliseconds spent on the frames (output); 0 in input

Client -> server: ``AUDIO`` (microphone mode: per frame the frame's samples at 16 kHz in [-1, 1],
in a slot of :func:`chunk_width` values, optionally followed by the 52 MediaPipe blendshape scores
and the 16 values of its 4 x 4 head-pose matrix in MediaPipe's own column-major order; a negative
first score means "no face detected")
and ``TICK`` (replay mode: ``dim`` 0, "advance the clip by ``frames``"). Server -> client:
``FRAMES``, per frame the K generated reactions (58 raw 3DMM + 25 emotion each) and, in replay
mode, the ground-truth listener after them. Control messages (``start``, ``ready``,
``error``, ``end``) are JSON text frames validated by pydantic models that forbid unknown keys.

The frame rate is the model's edition's (:attr:`reactcli.editions.Edition.fps`): 25 for REACT 2024,
30 for MARS. Frame t holds the microphone samples ``[floor(t r / fps), floor((t + 1) r / fps))``
at r = 16 kHz (:func:`frame_samples`), the boundaries of the offline features
(``data/features.py``: ``frame_ends``): 640 samples per frame at 25 fps, 533 or 534 at 30 fps.
Every audio row has :func:`chunk_width` slots (640, or 534 at 30 fps); a frame with fewer samples
fills the first ones and leaves zeros after them, which the server checks, so client and server
cannot drift apart by a sample.

A message that breaks any rule raises :class:`ProtocolError`; the server answers that client with
an ``error`` message and closes only its connection with the error's close code.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reactcli.live.mediapipe import BLENDSHAPE_DIM, POSE_VALUES
from reactcli.vocab import EMOTION_DIM, FACE_DIM, FPS

MAGIC = b"RLV1"
VERSION = 1
HEADER = struct.Struct("<4sBBHIIHHdf")
#: The page's capture rate (what speech features use), not the dataset's 44.1 kHz AUDIO_RATE.
MIC_RATE = 16_000
CHUNK = MIC_RATE // FPS  # 640 samples per 25 fps frame (REACT 2024)
#: Face values after the audio with the webcam: MediaPipe's blendshape scores, then its 4 x 4
#: facial transformation matrix, column-major as MediaPipe gives it (reactcli.live.mediapipe).
FACE_INPUT = BLENDSHAPE_DIM + POSE_VALUES
FRAME_VALUES = FACE_DIM + EMOTION_DIM  # one reaction frame on the wire: 58 3DMM + 25 emotion
#: At most this many frames in one input message: a late client may catch up, not dump a clip.
MAX_FRAMES_PER_MESSAGE = 8
MAX_MESSAGE_BYTES = HEADER.size + MAX_FRAMES_PER_MESSAGE * (CHUNK + FACE_INPUT) * 4
MAX_TEXT_BYTES = 4096
#: A float PCM sample is in [-1, 1]; a little slack for resampler overshoot.
MAX_SAMPLE = 1.5

# WebSocket close codes (RFC 6455 and the IANA registry): 1003 unsupported data, 1008 policy
# violation, 1009 too big, 1013 try again later (the server is full, or this session was shed).
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013


class MsgType(IntEnum):
    AUDIO = 1
    TICK = 2
    FRAMES = 16


class ProtocolError(Exception):
    """A client broke the protocol: ``reason`` is sent to it, ``code`` closes its connection."""

    def __init__(self, reason: str, code: int = CLOSE_POLICY) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass
class Message:
    """One decoded binary message; ``values`` is (frames, dim) float32."""

    type: MsgType
    seq: int
    frame: int
    t_ms: float
    values: np.ndarray
    aux: float = 0.0

    @property
    def frames(self) -> int:
        return int(self.values.shape[0])


def encode(msg: Message) -> bytes:
    """Header + little-endian float32 payload."""
    values = np.ascontiguousarray(msg.values, dtype="<f4")
    if values.ndim != 2:
        raise ValueError(f"message values must be (frames, dim), got {values.shape}")
    frames, dim = values.shape
    header = HEADER.pack(MAGIC, VERSION, int(msg.type), 0, msg.seq, msg.frame, frames, dim, msg.t_ms, msg.aux)
    return header + values.tobytes()


def decode(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Parse one binary message, checking size, magic, version, type and payload length.

    Content rules that depend on the session (which type, which ``dim``, which ``seq``) are
    :func:`check_input`'s job.
    """
    if len(data) > max_bytes:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}", CLOSE_TOO_BIG)
    if len(data) < HEADER.size:
        raise ProtocolError(f"message of {len(data)} bytes is shorter than the {HEADER.size}-byte header")
    magic, version, kind, flags, seq, frame, frames, dim, t_ms, aux = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic!r} (expected {MAGIC!r})", CLOSE_UNSUPPORTED)
    if version != VERSION:
        raise ProtocolError(f"protocol version {version} is not supported (server speaks {VERSION})", CLOSE_UNSUPPORTED)
    try:
        kind = MsgType(kind)
    except ValueError:
        raise ProtocolError(f"unknown message type {kind}", CLOSE_UNSUPPORTED) from None
    if flags:
        raise ProtocolError(f"reserved flags must be 0, got {flags}")
    expected = HEADER.size + frames * dim * 4
    if len(data) != expected:
        raise ProtocolError(
            f"header announces {frames} x {dim} float32 ({expected} bytes in all) but the message has {len(data)}"
        )
    if not np.isfinite(t_ms):
        raise ProtocolError("timestamp is not finite")
    values = np.frombuffer(data, dtype="<f4", offset=HEADER.size).reshape(frames, dim).astype(np.float32)
    return Message(kind, seq, frame, float(t_ms), values, float(aux))


def chunk_width(fps: int = FPS) -> int:
    """Audio slots per microphone row at ``fps``: the most samples a frame has (640 at 25 fps, 534 at 30)."""
    return -(-MIC_RATE // int(fps))


def frame_samples(first: int, frames: int, fps: int = FPS) -> np.ndarray:
    """(frames,) samples at 16 kHz of video frames ``first .. first + frames - 1``: the differences
    of ``floor((t + 1) * 16000 / fps)``, the offline features' frame ends."""
    t = np.arange(first, first + frames + 1, dtype=np.int64)
    ends = (t * MIC_RATE) // int(fps)
    return np.diff(ends)


def check_input(msg: Message, mode: str, seq: int, frame: int, face: bool, fps: int = FPS) -> None:
    """Session rules for one client message: the right type and width for ``mode`` (and the
    session's ``fps``), the next sequence number and frame index, 1..MAX_FRAMES_PER_MESSAGE frames,
    finite samples in range, zeros in the slots after a frame's own samples."""
    if msg.seq != seq:
        raise ProtocolError(f"out-of-order message: sequence number {msg.seq}, expected {seq}")
    if msg.frame != frame:
        raise ProtocolError(f"message starts at frame {msg.frame}, expected {frame}")
    if not 1 <= msg.frames <= MAX_FRAMES_PER_MESSAGE:
        raise ProtocolError(f"a message carries 1 to {MAX_FRAMES_PER_MESSAGE} frames, got {msg.frames}")
    dim = msg.values.shape[1]
    if mode == "replay":
        if msg.type != MsgType.TICK or dim != 0:
            raise ProtocolError(f"replay mode takes TICK messages with dim 0, got {msg.type.name} with dim {dim}")
        return
    width = chunk_width(fps)
    want = width + (FACE_INPUT if face else 0)
    if msg.type != MsgType.AUDIO or dim != want:
        raise ProtocolError(
            f"microphone mode takes AUDIO messages of {want} values per frame "
            f"({width} sample slots at {MIC_RATE} Hz and {fps} fps{' + 52 blendshapes + 4x4 pose' if face else ''}), "
            f"got {msg.type.name} with {dim}"
        )
    if not np.isfinite(msg.values).all():
        raise ProtocolError("audio or face values contain NaN or inf")
    peak = float(np.abs(msg.values[:, :width]).max())
    if peak > MAX_SAMPLE:
        raise ProtocolError(f"audio sample {peak:.3g} is outside [-1, 1]: send float PCM, not int16")
    counts = frame_samples(msg.frame, msg.frames, fps)
    unused = np.arange(width)[None, :] >= counts[:, None]
    if (msg.values[:, :width][unused] != 0).any():
        row = int(np.argmax((unused & (msg.values[:, :width] != 0)).any(1)))
        raise ProtocolError(
            f"frame {msg.frame + row} has {int(counts[row])} samples at {fps} fps: the slots after them must be 0 "
            f"(samples [floor(t {MIC_RATE} / {fps}), floor((t + 1) {MIC_RATE} / {fps})) belong to frame t)"
        )


# -- control messages (JSON text) ---------------------------------------------------------------
class Start(BaseModel):
    """The client's first message: which mode, which clip (replay), whether face values follow."""

    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["start"]
    mode: Literal["mic", "replay"]
    clip: int = Field(0, ge=0)
    face: bool = False
    sample_rate: int = MIC_RATE
    seed: int | None = Field(None, ge=0, le=2**31 - 1)


def parse_start(text: str) -> Start:
    """The ``start`` message, or a :class:`ProtocolError` naming the first problem."""
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise ProtocolError(f"control message longer than {MAX_TEXT_BYTES} bytes", CLOSE_TOO_BIG)
    try:
        start = Start.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"control message is not JSON ({exc.msg})") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "message"
        raise ProtocolError(f"start message: {where}: {err['msg']}") from None
    if start.sample_rate != MIC_RATE:
        raise ProtocolError(f"start message: sample_rate must be {MIC_RATE}, got {start.sample_rate}")
    return start


def control(kind: str, **fields: object) -> str:
    """A server control message as JSON text."""
    return json.dumps({"type": kind, **fields})
