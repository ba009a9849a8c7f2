"""Replay mode: a dataset clip's speaker streamed through the live per-frame loop.

The point of replay is a check you can watch: the same clip, checkpoint and seed give, frame by
frame over the WebSocket, the reactions ``react generate`` writes for that sample. Sample ``n`` of
the split's order gets the stream seed ``sample_seed(seed, n)``, the derivation ``react generate``
uses; the inputs are the preprocessed arrays generation reads, pushed one frame per tick instead
of one patch per push, which changes nothing beyond float rounding (``ReactionStream`` is strictly
online).

Two kinds of root:

- **REACT 2024**: the mirrored samples of the split (:class:`reactcli.data.dataset.ReactClipDataset`),
  751 frames at 25 fps;
- **MARS** (REACT 2025/2026): the split's samples in the official sorted order, as ``react generate``
  lists them (:func:`reactcli.generate_mars.open_mars_split`: the edition's direction, each input
  recording at its facial-attributes length, 30 fps), the speaker's ``video-face-crop`` mp4 and
  ``audio`` wav for the page, and for a personalised model the listener's traits.

The root must hold the edition the model was trained on (one line naming both otherwise; a 2025
model reads a 2026 release as 2025 data, as ``react generate --edition 2025`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reactcli.editions import detect_edition
from reactcli.errors import ReactError
from reactcli.generate import check_model_edition, sample_seed
from reactcli.live.session import LiveSession, replay_session
from reactcli.models.checkpoint import ReactionModel
from reactcli.vocab import EMOTION_DIM, EMOTION_FRAMES, FACE_DIM


@dataclass(frozen=True)
class ReplayClip:
    """One sample a page can pick: its speaker/listener clips (recording ids on MARS) and playable media."""

    index: int
    speaker: str
    listener: str
    video: Path | None  # speaker mp4 (None: the split has no video, or it is a frame folder)
    audio: Path | None  # speaker wav


class ReplayData:
    """The split's clips for replay, opened once per server (2024 arrays are memoised by the dataset;
    MARS recordings are read when a session asks for one). ``edition`` is the model's."""

    def __init__(self, root: Path, split: str, model: ReactionModel, edition: str = "2024") -> None:
        from reactcli.data.layout import check_split
        from reactcli.generate_mars import generation_edition

        check_split(split)
        self.root, self.split = Path(root), split
        try:
            chosen = generation_edition(self.root, split, None, model.config)
        except ReactError:
            if edition == "2024":
                raise
            chosen = detect_edition(self.root, edition)  # a MARS root that cannot tell 2025 from 2026
        if chosen.name == "2026" and edition == "2025":
            chosen = detect_edition(self.root, edition)  # a 2025 model reads a 2026 release as 2025 data
        check_model_edition_of(edition, chosen.name, model, self.root)
        self.edition = chosen
        self.clips: list[ReplayClip] = []
        if chosen.is_mars:
            self._open_mars(model)
        else:
            self._open_2024(model)
        self.clip(0)  # fail at start-up, not on the first connection, if preprocess was not run

    @property
    def is_mars(self) -> bool:
        return self.edition.is_mars

    def _open_2024(self, model: ReactionModel) -> None:
        from reactcli.data.dataset import ReactClipDataset
        from reactcli.data.layout import DatasetLayout

        self.dataset = ReactClipDataset(self.root, self.split, model.config)
        layout = DatasetLayout(self.root)
        for n, sample in enumerate(self.dataset.samples):
            video = layout.video(self.split, sample.speaker)
            audio = layout.audio(self.split, sample.speaker)
            self.clips.append(
                ReplayClip(
                    n,
                    sample.speaker,
                    sample.listener,
                    video if video is not None and video.suffix == ".mp4" else None,
                    audio if audio.is_file() else None,
                )
            )

    def _open_mars(self, model: ReactionModel) -> None:
        from reactcli.generate_mars import open_mars_split

        self.mars = open_mars_split(self.root, self.split, model, self.edition)
        base = self.root / self.split
        for n, sample in enumerate(self.mars.speakers.samples):
            video = base / "video-face-crop" / f"{sample.input.id}.mp4"
            audio = base / "audio" / f"{sample.input.id}.wav"
            self.clips.append(ReplayClip(n, sample.input.id, sample.target.id, video if video.is_file() else None,
                                         audio if audio.is_file() else None))  # fmt: skip

    def __len__(self) -> int:
        return len(self.clips)

    def clip(self, index: int) -> dict[str, np.ndarray]:
        """The arrays of sample ``index``: speaker audio features, 3DMM, emotion; listener 3DMM and
        emotion (the ground truth shown beside the reactions); on MARS with a personalised model the
        listener's (5,) traits (``listener_personality``), and for a model with the history condition
        the listener's (H, 84) history (``listener_history``: their previous recording's last frames)."""
        if not 0 <= index < len(self.clips):
            raise ReactError(f"{self.root}: split {self.split} has {len(self.clips)} samples, no sample {index}")
        if not self.is_mars:
            return self.dataset.clip(index)
        speaker = self.mars.speakers[index]
        listener_face, listener_emotion = self.mars.speakers.listener(index)
        out = {"speaker_audio": speaker.audio, "speaker_3dmm": speaker.face3dmm, "speaker_emotion": speaker.emotion,
               "listener_3dmm": listener_face, "listener_emotion": listener_emotion}  # fmt: skip
        if speaker.personality is not None:
            out["listener_personality"] = speaker.personality
        if speaker.history is not None:
            out["listener_history"] = speaker.history
        return out


def check_model_edition_of(edition: str, data_edition: str, model: ReactionModel, root: Path) -> None:
    """:func:`reactcli.generate.check_model_edition` for a loaded model of ``edition``."""
    from reactcli.generate import ModelFacts

    check_model_edition(ModelFacts(edition), data_edition, model.path, root)


def replay_clip(
    model: ReactionModel, data: ReplayData, index: int, samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run sample ``index`` through a :class:`LiveSession` one frame per tick, as the server does;
    returns face3dmm and emotion in ``react generate``'s shapes ((K, 751, 58) and (K, 750, 25) for
    REACT 2024, (K, L, 58) and (K, L, 25) on MARS)."""
    session: LiveSession = replay_session(model, data.clip(index), samples, sample_seed(seed, index))
    tick = np.zeros((1, 0), np.float32)
    rows = []
    while not session.source.finished:
        rows.append(session.step(tick).reactions)
    out = np.concatenate(rows, 1)
    emotion = out[..., FACE_DIM : FACE_DIM + EMOTION_DIM]
    return out[..., :FACE_DIM], emotion if data.is_mars else emotion[:, :EMOTION_FRAMES]
