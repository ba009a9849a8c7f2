"""Training data from a preprocessed MARS root (REACT 2025/2026): one input -> target sample at a time.

``react preprocess`` checked every recording and cached its facial attributes, coefficients, EEG
table and (with a causal audio encoder) its audio features; :class:`MarsTrainingSet` reads them
back, per sample, in the shapes the training stages use for REACT 2024 (``data/dataset.py``):

- ``speaker_audio`` (T, A): the input's audio features: our causal MFCC / log-mel / wav2vec2
  computed at 30 fps from ``audio/`` (the default), or with ``audio.encoder = "release"`` the
  release's own 768-d ``audio-features``, read in place (memory-mapped). Those are wav2vec2's
  last hidden state, whose transformer sees the whole recording: a model trained on them is an
  offline model, and the stages say so in the log and the checkpoint;
- ``speaker_3dmm`` / ``listener_3dmm`` (T, 58) raw coefficients (the tokenizer normalises them
  with its stored statistics and rule), ``speaker_emotion`` / ``listener_emotion`` (T, 25);
- ``listener_personality`` (5,) ``(x - 1) / 4`` where the release has it (2026);
- ``listener_history`` (H, 84) with ``predictor.history_frames`` = H: the last H frames of the
  listener's previous recording (``data/mars_history.py``: the history condition of 2026);
- ``listener_eeg`` and ``listener_eeg_mask`` (T, 14): the cached EEG rows spread over the frames
  (row ``floor(t / 30)``, the last row repeated), where the edition has EEG.

T is :meth:`MarsIndex.train_frames`: the minimum of both people's attributes and coefficients and
the input's release features, the official personalised loader's rule. The input -> target
direction follows ``data.bidirectional`` (default: the edition's rule, 2025 both, 2026 speaker ->
listener only).

The tokenizer learns faces, not reactions: it trains on every paired recording once, speakers too,
since the predictor tokenises the speakers' faces with it (:meth:`MarsTrainingSet.face`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reactcli.config import ReactConfig
from reactcli.data.cache import FeatureCache, MarsIndex, load_mars_index
from reactcli.data.features import RELEASE_ENCODER, feature_tag
from reactcli.data.mars import MarsSample, Recording
from reactcli.data.mars_history import empty_history, history_window, previous_recording
from reactcli.data.mars_loaders import EegTable, eeg_per_frame, load_mars_npy
from reactcli.editions import EDITIONS, EEG_DIM, Edition, detect_edition
from reactcli.errors import ReactError, file_error

RELEASE_AUDIO_FOLDER = "audio-features"


def training_edition(root: str | Path, cfg: ReactConfig) -> Edition:
    """The edition a training run reads from ``root``.

    The folders say 2024 or MARS (``editions.detect_edition``). A preprocessed MARS root trains as
    the edition its train split was preprocessed with (recorded in its index): that settles a root
    whose folders cannot tell 2025 from 2026, and honours ``react preprocess --edition 2025`` on a
    2026 copy. Without an index the folder rule decides (and its error stands).
    """
    root = Path(root)
    cache = FeatureCache(root, cfg)
    index = cache.mars_index("train")
    try:
        found = detect_edition(root)
    except ReactError:
        if not index.is_file():
            raise
        found = None
    if found is not None and (not found.is_mars or not index.is_file()):
        return found
    stored = load_mars_index(cache, "train").edition
    if stored not in EDITIONS:
        raise file_error(index, f"unknown edition {stored!r}; rerun `react preprocess`")
    return detect_edition(root, stored)


def bidirectional(edition: Edition, cfg: ReactConfig) -> bool:
    """Whether listener -> speaker samples are trained on too: ``data.bidirectional``, else the edition's rule."""
    return edition.bidirectional if cfg.data.bidirectional is None else bool(cfg.data.bidirectional)


def audio_kind(tag: str) -> str:
    """The ``FeatureCache.mars_array`` kind of the causal audio features with feature tag ``tag``."""
    return f"audio/{tag}"


def audio_path(cache: FeatureCache, cfg: ReactConfig, split: str, recording: Recording) -> Path:
    """Where a recording's audio features are: in the release (``audio.encoder = "release"``) or
    in the cache, under the feature setting's tag (written by ``react preprocess``)."""
    if cfg.audio.encoder == RELEASE_ENCODER:
        return cache.root / split / RELEASE_AUDIO_FOLDER / f"{recording.id}.npy"
    return cache.mars_array(split, audio_kind(feature_tag(cfg.audio)), recording)


class MarsTrainingSet:
    """The samples of one preprocessed MARS split with their arrays cut to the training length.

    With ``personality`` only the samples whose target has traits are kept (the official
    personalised loader's rule).
    """

    def __init__(
        self, root: str | Path, split: str, cfg: ReactConfig, edition: Edition, personality: bool = False
    ) -> None:
        if not edition.is_mars:
            raise ReactError(f"{root}: REACT {edition.name} is not a MARS edition")
        self.root = Path(root)
        self.split = split
        self.cfg = cfg
        self.edition = edition
        self.cache = FeatureCache(self.root, cfg)
        self.index: MarsIndex = load_mars_index(self.cache, split)
        if self.index.edition != edition.name and not (edition.name == "2025" and self.index.edition == "2026"):
            raise file_error(
                self.cache.mars_index(split),
                f"preprocessed as REACT {self.index.edition}, but training reads it as REACT {edition.name}; "
                f"rerun `react preprocess --edition {edition.name}`",
            )
        self.bidirectional = bidirectional(edition, cfg)
        self.samples: list[MarsSample] = self.index.samples(self.bidirectional)
        if personality:  # the official personalised loader skips a sample without its target's traits
            self.samples = [s for s in self.samples if self.index.entries[s.target.id].personality is not None]

    def __len__(self) -> int:
        return len(self.samples)

    def frames(self, index: int) -> int:
        """Training length of sample ``index`` (``MarsIndex.train_frames``)."""
        return self.index.train_frames(self.samples[index])

    # -- arrays ---------------------------------------------------------------------------------
    def _cached(self, kind: str, recording: Recording) -> np.ndarray:
        return self.cache.load(self.cache.mars_array(self.split, kind, recording))

    def audio(self, recording: Recording) -> np.ndarray:
        """(T_audio, A) features of ``recording``: memory-mapped copy-on-write (the release's files
        are large; training slices windows out of them)."""
        path = audio_path(self.cache, self.cfg, self.split, recording)
        if not path.is_file():
            if self.cfg.audio.encoder == RELEASE_ENCODER:
                raise file_error(path, "release audio features not found (audio.encoder = 'release' reads them)")
            raise file_error(
                path, f"{self.cfg.audio.encoder} audio features are not in the cache; run `react preprocess` with "
                "this audio configuration (they are computed from the release's audio/ folder)",
            )
        array = load_mars_npy(path, "audio features", mmap_mode="c")
        if array.ndim != 2 or not len(array):
            raise file_error(path, f"audio features have shape {array.shape}, expected (T, D)")
        return array

    def face(self, recording: Recording) -> tuple[np.ndarray, np.ndarray]:
        """(3DMM (T, 58), emotion (T, 25)) of one recording, cut to the shorter of the two."""
        face = self._cached("coefficients", recording)
        emotion = self._cached("facial-attributes", recording)
        frames = min(len(face), len(emotion))
        return face[:frames], emotion[:frames]

    def personality(self, recording: Recording) -> np.ndarray | None:
        traits = self.index.entries[recording.id].personality
        return None if traits is None else np.asarray(traits, np.float32)

    def previous(self, recording: Recording) -> Recording | None:
        """The same person's previous recording in this split (``data/mars_history.py``'s rule)."""
        candidates = self.face_recordings()
        traits = {r.id: self.index.entries[r.id].personality for r in (*candidates, recording)}
        return previous_recording(recording, candidates, traits)

    def history(self, recording: Recording, frames: int) -> np.ndarray:
        """(frames, 84) history of ``recording``'s person: the last frames of their previous recording
        (``data/mars_history.py``), all zero rows when there is none."""
        before = self.previous(recording)
        if before is None:
            return empty_history(frames)
        return history_window(*self.face(before), frames)

    def eeg(self, recording: Recording, frames: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-frame EEG targets and mask (frames, 14), or None when the edition has no EEG."""
        rows = self.index.entries[recording.id].eeg_rows
        if rows is None or not self.edition.has_eeg:
            return None
        if rows == 0:
            table = EegTable(np.zeros((0, EEG_DIM), np.float32), np.zeros((0, EEG_DIM), np.float32), None)
        else:
            table = EegTable(self._cached("eeg", recording), self._cached("eeg-mask", recording), None)
        return eeg_per_frame(table, frames, self.edition.fps)

    def sample(self, index: int, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The arrays of sample ``index`` (all of them, or ``keys``), every per-frame one T frames long."""
        sample = self.samples[index]
        frames = self.frames(index)
        wanted = set(keys) if keys is not None else None

        def want(key: str) -> bool:
            return wanted is None or key in wanted

        out: dict[str, np.ndarray] = {}
        if want("speaker_audio"):
            out["speaker_audio"] = self.audio(sample.input)[:frames]
        for side, recording in (("speaker", sample.input), ("listener", sample.target)):
            if want(f"{side}_3dmm") or want(f"{side}_emotion"):
                face, emotion = self.face(recording)
                out[f"{side}_3dmm"], out[f"{side}_emotion"] = face[:frames], emotion[:frames]
        if want("listener_personality"):
            traits = self.personality(sample.target)
            if traits is None:
                raise file_error(
                    self.root / self.split / "personality" / f"{sample.target.role}.csv",
                    f"no traits for {sample.target.id} (the personality condition needs them for every sample)",
                )
            out["listener_personality"] = traits
        if want("listener_history"):
            out["listener_history"] = self.history(sample.target, self.cfg.predictor.history_frames)
        if want("listener_eeg") or want("listener_eeg_mask"):
            eeg = self.eeg(sample.target, frames)
            if eeg is None:
                raise ReactError(f"{self.root}: REACT {self.edition.name} has no EEG")
            out["listener_eeg"], out["listener_eeg_mask"] = eeg
        if wanted is not None and (missing := wanted - set(out)):
            raise ReactError(f"MARS training samples have no {', '.join(sorted(missing))}")
        return {key: value for key, value in out.items() if want(key)}

    def face_recordings(self) -> list[Recording]:
        """Every recording of the split with a dyad partner, once, in the official order: what the
        tokenizer trains on (speakers too: the predictor tokenises their faces)."""
        return [sample.target for sample in self.index.samples(True)]
