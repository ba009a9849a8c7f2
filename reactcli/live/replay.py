"""Replay mode: a dataset clip's speaker streamed through the live per-frame loop.

The point of replay is a check you can watch: the same clip, checkpoint and seed give, frame by
frame over the WebSocket, the reactions ``react generate`` writes for that sample. Sample ``n`` of
the mirrored order gets the stream seed ``seed * 100_003 + n``, the derivation of
:func:`reactcli.generate.generate_dataset`; the inputs are the preprocessed arrays generation reads
(:class:`reactcli.data.dataset.ReactClipDataset`), pushed one frame per tick instead of one patch
per push, which changes nothing beyond float rounding (``ReactionStream`` is strictly online).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reactcli.data.layout import DatasetLayout, check_split
from reactcli.errors import ReactError
from reactcli.generate import sample_seed
from reactcli.live.session import LiveSession, replay_session
from reactcli.models.checkpoint import ReactionModel
from reactcli.vocab import EMOTION_DIM, EMOTION_FRAMES, FACE_DIM


@dataclass(frozen=True)
class ReplayClip:
    """One mirrored sample a page can pick: its speaker/listener clips and playable media."""

    index: int
    speaker: str
    listener: str
    video: Path | None  # speaker mp4 (None: the split has no video, or it is a frame folder)
    audio: Path | None  # speaker wav


class ReplayData:
    """The split's clips for replay, opened once per server (arrays are memoised by the dataset)."""

    def __init__(self, root: Path, split: str, model: ReactionModel) -> None:
        from reactcli.data.dataset import ReactClipDataset

        check_split(split)
        self.root, self.split = Path(root), split
        self.dataset = ReactClipDataset(self.root, split, model.config)
        layout = DatasetLayout(self.root)
        self.clips: list[ReplayClip] = []
        for n, sample in enumerate(self.dataset.samples):
            video = layout.video(split, sample.speaker)
            audio = layout.audio(split, sample.speaker)
            self.clips.append(
                ReplayClip(
                    n,
                    sample.speaker,
                    sample.listener,
                    video if video is not None and video.suffix == ".mp4" else None,
                    audio if audio.is_file() else None,
                )
            )
        self.clip(0)  # fail at start-up, not on the first connection, if preprocess was not run

    def __len__(self) -> int:
        return len(self.clips)

    def clip(self, index: int) -> dict[str, np.ndarray]:
        """The arrays of mirrored sample ``index`` (speaker audio features, 3DMM, emotion; listener GT)."""
        if not 0 <= index < len(self.clips):
            raise ReactError(f"{self.root}: split {self.split} has {len(self.clips)} samples, no sample {index}")
        return self.dataset.clip(index)


def replay_clip(
    model: ReactionModel, data: ReplayData, index: int, samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run sample ``index`` through a :class:`LiveSession` one frame per tick, as the server does;
    returns face3dmm (K, 751, 58) and emotion (K, 750, 25) in ``react generate``'s shapes."""
    session: LiveSession = replay_session(model, data.clip(index), samples, sample_seed(seed, index))
    tick = np.zeros((1, 0), np.float32)
    rows = []
    while not session.source.finished:
        rows.append(session.step(tick).reactions)
    out = np.concatenate(rows, 1)
    return out[..., :FACE_DIM], out[:, :EMOTION_FRAMES, FACE_DIM : FACE_DIM + EMOTION_DIM]
