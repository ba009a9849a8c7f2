"""The ideal sampler: K reactions per speaker drawn from the synthetic generator's own distribution.

REACT scores *several* reactions per speaker, and its accuracy metrics (FRC, FRD) reward the
conditional mean while FRDiv rewards reactions that differ. On synthetic data we know the true
distribution of appropriate reactions, so we can draw from it: for each speaker of a split, the
generator of ``data/synth.py`` is re-run with the conversation's real turn-taking (both people's
floors) and the speaker's real events, and a *re-drawn listener*: a new behaviour type (different
from the speaker's, as the generator pairs them), new own events and syllable rhythm on the real
listener's floor, a new listening style and reaction delay, and new face noise and blinks. Its
emotion is derived from its face exactly as the dataset's is.

These draws are what a perfect generator would output, so their FRC / FRD / FRDiv are the
reference a model's diversity curve is read against (``bench/quality_bench.py``; docs/quality.md).
``react synth --ideal-samples K`` writes them for val and test as prediction sets
(``reactcli.predictions``: ``<dataset>/ideal_<split>/``, ids ``sample_id(speaker, listener)`` in
the mirrored order), which ``react evaluate --predictions`` reads like a model's.

The draws use their own random streams, seeded by (seed, split, row, side), so the dataset itself
is bit-identical with or without them, and draw k is the same for any K > k.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reactcli.data.layout import SPLITS, Pair, mirrored
from reactcli.data.synth import (
    N_BEHAVIOURS,
    Person,
    emotion_from_face,
    face_stats,
    listening_traits,
    make_face,
    make_person,
)
from reactcli.predictions import ORDER_2024, PredictionWriter, predicted_bytes, sample_id
from reactcli.vocab import CLIP_FRAMES, EMOTION_FRAMES

#: The splits that get ideal sets (train has no neighbour matrix and is never scored).
IDEAL_SPLITS = ("val", "test")
SOURCE = (
    "ideal sampler: the synthetic generator re-run per speaker with the real turn-taking and a re-drawn "
    "listener (behaviour type, own events, style, delay, noise); reactcli/data/ideal.py"
)


def ideal_folder(root: Path, split: str) -> Path:
    """Where ``react synth --ideal-samples`` puts a split's ideal set: ``<root>/ideal_<split>``."""
    return Path(root) / f"ideal_{split}"


def draw_listener(rng: np.random.Generator, speaker: Person, listener: Person) -> Person:
    """A new listener for ``speaker`` on the real listener's floor: new behaviour type (never the
    speaker's), own events, rhythm, style and delay; the voice pitch is kept (it only shapes audio)."""
    behaviour = (speaker.behaviour + 1 + int(rng.integers(N_BEHAVIOURS - 1))) % N_BEHAVIOURS
    style, delay, _ = listening_traits(rng)
    return make_person(rng, behaviour, style, delay, listener.f0, listener.speech, listener.fps)


def ideal_reactions(
    rng: np.random.Generator, speaker: Person, listener: Person, samples: int, mean: np.ndarray, std: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` ideal reactions to ``speaker``: emotion (K, 750, 25) and raw 3DMM (K, 751, 58)."""
    faces, emotions = [], []
    for _ in range(samples):
        new = draw_listener(rng, speaker, listener)
        face = make_face(rng, new, speaker, mean, std)
        faces.append(face)
        emotions.append(emotion_from_face(face, mean, std))
    return np.stack(emotions).astype(np.float32), np.stack(faces).astype(np.float32)


class IdealSampler:
    """The ``on_split`` hook of ``make_synthetic_dataset`` that writes ``ideal_<split>/`` for val and
    test: ``samples`` draws per mirrored sample, from streams seeded by (``seed``, split, row, side)."""

    def __init__(self, samples: int, seed: int) -> None:
        if samples < 1:
            raise ValueError("the ideal sampler needs K >= 1")
        self.samples = int(samples)
        self.seed = int(seed)
        self.written: dict[str, Path] = {}

    def __call__(self, root: Path, split: str, rows: list[Pair], people: list[dict[str, Person]]) -> None:
        if split not in IDEAL_SPLITS:
            return
        mean, std = face_stats()
        split_no = SPLITS.index(split)
        # mirrored order: every row with its speaker driving (side 0), then every row swapped (side 1)
        order = [(row_no, side) for side in (0, 1) for row_no in range(len(rows))]
        samples = mirrored(rows)
        record = {"edition": "2024", "split": split, "seed": self.seed, "source": SOURCE, "order": ORDER_2024}
        need = predicted_bytes(self.samples, [EMOTION_FRAMES] * len(order), [CLIP_FRAMES] * len(order))
        target = ideal_folder(root, split)
        with PredictionWriter(target, self.samples, record, need_bytes=need) as writer:
            for sample, (row_no, side) in zip(samples, order, strict=True):
                pair = people[row_no]
                speaker, listener = pair[sample.speaker], pair[sample.listener]
                rng = np.random.default_rng([self.seed, split_no, row_no, side, 1])
                emotion, face = ideal_reactions(rng, speaker, listener, self.samples, mean, std)
                writer.add(sample_id(sample.speaker, sample.listener), emotion, face)
            writer.commit()
        self.written[split] = target
