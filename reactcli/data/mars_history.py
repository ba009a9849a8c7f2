"""The history condition of REACT 2026: a window of the listener's own behaviour before the clip.

A MARS sample is a whole recording, so nothing of the listener precedes its first frame in the
recording itself. What does precede it is the same person's **previous recording**: a dyad
records one scripted session after another, each under its own timestamped stem
(``Camera-YYYY-MM-DD-HHMMSS-HHMMSS``). MARS has no person id across sessions, so "the same
listener" is decided by this rule (docs/mars.md, "History condition"):

- the same role (the listener stays the listener), in the same split;
- the same recording day (the stem's date): a dyad records its sessions on one day;
- where both recordings have traits (``personality/<role>.csv``), the same traits, which keeps
  two dyads recorded on the same day apart;
- the previous one is the latest such recording whose start time (the stem's first HHMMSS) is
  earlier than this one's. A stem that does not parse has no previous recording.

The history is that recording's **last** ``frames`` frames: (frames, 84) float32, the raw 58-D
3DMM, the 25 facial attributes and a 1/0 flag for a real frame. A previous recording shorter than
``frames`` is padded with zero rows (flag 0) *before* its first frame, and a listener without a
previous recording (their first session) gets all zero rows. Training, validation and generation
all take the history by this one rule, so the model sees at training exactly what it gets at
generation (live mode has no past recording and passes an all-zero history, docs/live.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from reactcli.data.mars import Recording
from reactcli.vocab import EMOTION_DIM, FACE_DIM

#: Columns of one history frame: 3DMM, facial attributes, the real-frame flag (the last column).
HISTORY_DIM = FACE_DIM + EMOTION_DIM + 1
_STEM = re.compile(r"^Camera-(\d{4}-\d{2}-\d{2})-(\d{6})-(\d{6})$")


def stem_time(stem: str) -> tuple[str, str] | None:
    """(day, start HHMMSS) of a ``Camera-YYYY-MM-DD-HHMMSS-HHMMSS`` stem, None for any other name."""
    match = _STEM.match(stem)
    return None if match is None else (match.group(1), match.group(2))


def previous_recording(
    recording: Recording,
    candidates: Iterable[Recording],
    traits: Mapping[str, Sequence[float] | None] | None = None,
) -> Recording | None:
    """The same person's recording just before ``recording`` among ``candidates`` (the module's rule);
    ``traits`` maps recording ids to their traits (None or absent: unknown, not compared)."""
    when = stem_time(recording.stem)
    if when is None:
        return None
    own = None if traits is None else traits.get(recording.id)
    best: tuple[str, Recording] | None = None
    for other in candidates:
        other_when = stem_time(other.stem)
        if other.role != recording.role or other_when is None or other_when[0] != when[0]:
            continue
        if not other_when[1] < when[1]:
            continue
        theirs = None if traits is None else traits.get(other.id)
        if own is not None and theirs is not None and not np.array_equal(np.asarray(own), np.asarray(theirs)):
            continue
        if best is None or (other_when[1], other.sort_key) > (best[0], best[1].sort_key):
            best = (other_when[1], other)
    return None if best is None else best[1]


def history_window(face: np.ndarray | None, emotion: np.ndarray | None, frames: int) -> np.ndarray:
    """(frames, :data:`HISTORY_DIM`) float32: the last ``frames`` rows of a recording's 3DMM (T, 58)
    and attributes (T, 25), flagged 1, after zero rows flagged 0; all zeros without a recording."""
    out = np.zeros((frames, HISTORY_DIM), np.float32)
    if face is None or emotion is None or frames == 0:
        return out
    n = min(len(face), len(emotion), frames)
    if n:
        out[frames - n :, :FACE_DIM] = np.asarray(face, np.float32).reshape(len(face), -1)[len(face) - n :]
        out[frames - n :, FACE_DIM : FACE_DIM + EMOTION_DIM] = np.asarray(emotion, np.float32)[len(emotion) - n :]
        out[frames - n :, -1] = 1.0
    return out


def empty_history(frames: int) -> np.ndarray:
    """The history of a listener with no past recording at hand (their first session, live mode)."""
    return history_window(None, None, frames)
