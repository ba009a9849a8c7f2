"""``react generate`` on a REACT 2025/2026 (MARS) split: ragged predictions in the official sample order.

What differs from REACT 2024 (``generate.generate_split``), and why:

- **Samples and order.** A sample is an input recording and its dyad partner (``data/mars.py``),
  in the official sorted order (speakers first, sessions and stems compared as strings), in the
  edition's direction (2026 speaker -> listener, 2025 both) unless ``bidirectional`` says
  otherwise; each sample is named by its input recording's id. That is exactly what ``react
  evaluate`` expects of a MARS prediction set, checked against the split's listing, so a set
  made from a stale preprocess is refused here rather than mis-scored there.
- **Lengths.** Sample i has L_i frames, the input's facial-attributes length (the naive-baseline
  script's rule: the ground truths are aligned to it). The other inputs are fitted to L_i: cut,
  or, when a modality is a frame or two short (real copies are), its last row repeated, which
  is an earlier frame, so the output stays online.
- **Batches by length.** Recordings run from 58 to 20 000+ frames, so consecutive clips padded
  to the longest of their batch would spend most of the time on padding. The batches are cut
  from the clips sorted by length (``generate.length_plan``), at most ``batch_clips`` clips and
  a bounded output size each; the stream's ring caches keep its own state fixed whatever the
  length. A finished batch goes to a scratch file at its samples' places; the
  :class:`reactcli.predictions.PredictionWriter` then takes the samples in order, one at a time.
  Memory: one batch's inputs and outputs (bounded) and one sample at the writer.
- **Personality** (2026). A model trained with ``predictor.personality`` gets each sample's
  listener traits (``personality/listener.csv``); a listener without traits is an error naming
  it, since every sample of the split is scored.
- **History** (2026). A model trained with ``predictor.history_frames`` = H gets each sample's
  listener history: the last H frames of the same listener's previous recording in the split
  (``data/mars_history.py``, the rule training used), all zero rows for their first session.
- **Offline models.** A model trained on the release's own ``audio-features`` (not causal: see
  ``data/features.py``) is an offline model, however online the stream is: the record says
  ``"mode": "offline"`` and ``audio_causal: false``, and so does the command's printout.
- **EEG** (2026). A model trained with ``predictor.eeg_head`` also estimates the listener's 14 EEG
  targets; they are read out once per second, at each second's last frame (``data/eeg_windows.py``,
  the organisers' windows of 30 frames: n_i = ceil(L_i / 30) per sample), and written into the set
  (``eeg_ragged.npy``, K rows per sample like the emotion). Online like the rest: the vector of
  second r depends on speaker frames up to that second's last frame only.
- **``results.pt``.** :func:`write_results_pt` writes the organisers' test-stage layout from the
  finished set: ``PRED``, one (K, L, 25) float32 tensor per sample in the sorted order, AU dims
  rounded (``torch.round``, as their trainers do with ``data_clamp``), plus ``sample_ids``; with
  EEG also ``PRED_EEG`` (K, n, 14) and the paired listener's ``GT_EEG`` and ``EEG_MASK`` (1, n, 14)
  at the same frames, as their 2026 test stage saves them.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reactcli.data.cache import FeatureCache, load_mars_index
from reactcli.data.eeg_windows import eeg_window_count, split_eeg_targets
from reactcli.data.mars import MarsSample, list_recordings
from reactcli.data.mars_dataset import MarsTrainingSet
from reactcli.editions import EEG_DIM, MARS_FPS, Edition, detect_edition
from reactcli.errors import ReactError, file_error
from reactcli.generate import (
    ModelFacts,
    SpeakerClip,
    auto_batch_clips,
    check_model_edition,
    generate_batch,
    length_plan,
    load_generation_model,
    sample_seed,
)
from reactcli.vocab import AU_DIMS, EMOTION_DIM, FACE_DIM

if TYPE_CHECKING:
    import torch

    from reactcli.models.checkpoint import ReactionModel
    from reactcli.predictions import PredictionSet, PredictionWriter

#: What ``order`` says in a MARS prediction record.
ORDER_MARS = (
    "the split's samples in the official sorted order (speakers first, then sessions and stems as strings; "
    "listeners after all speakers when bidirectional), each named by its input recording; reactions along dim 1"
)
#: What the record's ``lengths`` says.
LENGTH_RULE = "the input's facial-attributes length (the naive-baseline script's rule)"
#: What the record's ``history`` says (a model with the history condition; absent otherwise).
HISTORY_RULE = (
    "the last {frames} frames (3DMM, attributes) of the listener's previous recording in the split: same role, "
    "same stem date, same traits where known, the latest earlier start time; zeros for a first session"
)
#: What the record's ``eeg`` says (a model with an EEG head).
EEG_RULE = (
    "the EEG head's estimate of the listener's 14 EEG targets (raw channels / 1000, band powers) once per second, "
    "at each second's last frame (the last window ends at the clip's last frame): ceil(L / fps) vectors per sample"
)


def generation_edition(root: str | Path, split: str, requested: str | None, cfg: Any) -> Edition:
    """The edition a split is generated for: ``--edition`` when given, else the folders; a MARS
    root whose folders cannot tell 2025 from 2026 takes the edition its split was preprocessed as."""
    root = Path(root)
    try:
        return detect_edition(root, requested)
    except ReactError:
        if requested is not None:
            raise
        index = FeatureCache(root, cfg).mars_index(split)
        if not index.is_file():
            raise
        return detect_edition(root, load_mars_index(FeatureCache(root, cfg), split).edition)


def fit_frames(array: np.ndarray, frames: int) -> np.ndarray:
    """``array`` (T, D) cut to ``frames`` rows, or its last row repeated up to them (float32)."""
    array = np.asarray(array, dtype=np.float32)
    if len(array) >= frames:
        return array[:frames]
    return np.concatenate([array, np.repeat(array[-1:], frames - len(array), 0)])


@dataclass
class MarsSpeakers:
    """The speaker inputs of a MARS split's samples as :class:`reactcli.generate.SpeakerClip` s,
    each read when its batch starts (memory: one batch)."""

    data: MarsTrainingSet
    samples: list[MarsSample]
    lengths: list[int]
    traits: list[np.ndarray | None]
    speaker_of: list[int] | None = None  # sample n reads sample speaker_of[n]'s speaker (ablations)
    history: int = 0  # frames of listener history the model takes (predictor.history_frames; 0: none)
    history_of: list[int] | None = None  # sample n gets sample history_of[n]'s listener history (ablations)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, n: int) -> SpeakerClip:
        source = self.samples[n if self.speaker_of is None else self.speaker_of[n]]
        frames = self.lengths[n]
        face, emotion = self.data.face(source.input)
        audio = fit_frames(self.data.audio(source.input), frames)
        past = None
        if self.history:
            owner = self.samples[n if self.history_of is None else self.history_of[n]]
            past = self.data.history(owner.target, self.history)
        return SpeakerClip(audio, fit_frames(face, frames), fit_frames(emotion, frames), self.traits[n], past)

    def listener(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample n's real listener, (L, 58) raw 3DMM and (L, 25) attributes, fitted to its length
        (what replay mode shows beside the generated one)."""
        face, emotion = self.data.face(self.samples[n].target)
        return fit_frames(face, self.lengths[n]), fit_frames(emotion, self.lengths[n])


@dataclass
class MarsSplit:
    """A preprocessed MARS split as generation reads it."""

    root: Path
    split: str
    edition: Edition
    bidirectional: bool
    speakers: MarsSpeakers
    personality: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.speakers.samples]

    @property
    def lengths(self) -> list[int]:
        return self.speakers.lengths


def open_mars_split(
    root: str | Path, split: str, model: ReactionModel, edition: Edition, bidirectional: bool | None = None
) -> MarsSplit:
    """The samples of ``split`` in the official order, their lengths and (for a model that takes
    them) their listeners' traits; every problem one line."""
    root = Path(root)
    if not edition.is_mars:
        raise ReactError(f"{root}: REACT {edition.name} is not a MARS edition")
    direction = edition.bidirectional if bidirectional is None else bool(bidirectional)
    cfg = model.config.model_copy(deep=True)
    cfg.data.bidirectional = direction
    data = MarsTrainingSet(root, split, cfg, edition)
    listed = [s.id for s in list_recordings(root, split).samples(direction)]
    indexed = [s.id for s in data.samples]
    if listed != indexed:
        missing = sorted(set(listed) - set(indexed)) or sorted(set(indexed) - set(listed))
        raise file_error(
            data.cache.mars_index(split),
            f"lists {len(indexed)} samples but the split now has {len(listed)} (first difference: {missing[:1]}); "
            "rerun `react preprocess`",
        )
    if not indexed:
        raise ReactError(path=root / split, problem=f"no {'recording' if direction else 'speaker'} with its dyad "
                         "partner: nothing to generate")
    takes_traits = model.predictor.personality_proj is not None
    traits: list[np.ndarray | None] = [None] * len(data.samples)
    if takes_traits:
        if "personality" not in edition.modalities:
            raise ReactError(f"{model.path}: the model takes the listener's personality, which REACT "
                             f"{edition.name} data does not have")
        for n, sample in enumerate(data.samples):
            traits[n] = data.personality(sample.target)
            if traits[n] is None:
                raise file_error(
                    root / split / "personality" / f"{sample.target.role}.csv",
                    f"no traits for {sample.target.id}: the model takes the listener's personality, and every "
                    "sample of the split is generated (and scored)",
                )
    lengths = [data.index.eval_frames(s) for s in data.samples]
    history = model.predictor.cfg.history_frames if model.predictor.history_encoder is not None else 0
    speakers = MarsSpeakers(data, data.samples, lengths, traits, history=history)
    return MarsSplit(root, split, edition, direction, speakers, takes_traits)


def mars_generation_record(
    model: ReactionModel, facts: ModelFacts, checkpoint: Path, seed: int, mars: MarsSplit
) -> dict[str, Any]:
    """What a MARS prediction set records about how it was made (the writer adds the shapes,
    frames and ids)."""
    from reactcli.freshness import sha256_file

    return {
        "edition": mars.edition.name,
        "split": mars.split,
        "fps": mars.edition.fps,
        "bidirectional": mars.bidirectional,
        "mode": facts.mode,
        "audio_causal": facts.audio_causal,
        "audio_encoder": model.config.audio.encoder,
        "personality": "the listener's traits from personality/listener.csv, (x - 1) / 4" if mars.personality else None,
        "eeg": EEG_RULE if model.predictor.eeg_head is not None else None,
        **({"history": HISTORY_RULE.format(frames=mars.speakers.history)} if mars.speakers.history else {}),
        "seed": int(seed),
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha256_file(checkpoint),
        "generation": model.config.generation.model_dump(mode="json"),
        "order": ORDER_MARS,
        "lengths": LENGTH_RULE,
        "face3dmm_normalization": "raw",
    }


@dataclass
class MarsGeneration:
    """What :func:`generate_mars_split` did: the record as written, and how fast."""

    record: dict[str, Any]
    seconds: float
    frames: int  # input frames generated for (sum of L_i)
    results_pt: Path | None = None

    @property
    def realtime_factor(self) -> float:
        """Seconds of input (at the edition's fps) generated per second of wall time, all K at once."""
        fps = int(self.record.get("fps", MARS_FPS))
        return self.frames / fps / self.seconds if self.seconds > 0 else float("inf")


def iter_mars_reactions(
    model: ReactionModel, mars: MarsSplit, seed: int, samples: int | None = None, batch_clips: int | None = None,
    speaker_of: list[int] | None = None, description: str = "generating reactions", eeg: bool = False,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]] | Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """``(n, face3dmm (K, L_n, 58), emotion (K, L_n, 25))`` for the split's samples, batched by
    length (the order batches finish in, not the sample order). Sample n uses the stream seed
    ``sample_seed(seed, n)``; ``speaker_of[n]`` feeds sample n another sample's speaker (ablations).
    With ``eeg`` (a model with an EEG head) each item also holds the EEG estimate (K, ceil(L_n / fps),
    14) at every second's last frame."""
    from reactcli.progress import track

    k = samples or model.config.generation.samples
    speakers = mars.speakers
    if speaker_of is not None:
        speakers = dataclasses.replace(speakers, speaker_of=list(speaker_of))
    lengths = speakers.lengths
    batch = batch_clips or auto_batch_clips(model, k, max(lengths), len(lengths))
    plan = length_plan(lengths, batch, k)
    seeds = [sample_seed(seed, n) for n in range(len(lengths))]
    every = mars.edition.fps if eeg else None
    batches = generate_batch(model, speakers, seeds, k, lengths=lengths, plan=plan, eeg_every=every)
    yield from track(batches, f"{description} (K={k})", total=len(lengths))


def write_in_order(
    writer: PredictionWriter, ids: list[str], lengths: list[int], k: int,
    results: Iterator[tuple[np.ndarray, ...]], scratch: Path, eeg_lengths: list[int] | None = None,
) -> None:
    """Give ``writer`` the samples in their order while ``results`` come in any order: a sample
    that arrives before its turn waits in scratch files (``scratch``, a folder) at its place, so
    memory holds one batch, never the set. Items are ``(n, face, emotion)``, or with
    ``eeg_lengths`` (EEG vectors per sample) ``(n, face, emotion, eeg)``."""
    n = len(ids)
    frames = {"emotion": lengths, "face3dmm": lengths}
    dims = {"emotion": EMOTION_DIM, "face3dmm": FACE_DIM}
    if eeg_lengths is not None:
        frames["eeg"], dims["eeg"] = eeg_lengths, EEG_DIM
    offsets = {kind: np.concatenate([[0], np.cumsum(np.asarray(f, np.int64) * k)]) for kind, f in frames.items()}
    store: dict[str, np.ndarray] = {}
    waiting = [False] * n
    cursor = 0

    def block(kind: str, i: int) -> np.ndarray:
        return store[kind][offsets[kind][i] : offsets[kind][i + 1]].reshape(k, frames[kind][i], -1)

    def add(i: int, arrays: dict[str, np.ndarray]) -> None:
        writer.add(ids[i], arrays["emotion"], arrays["face3dmm"], **({"eeg": arrays["eeg"]} if "eeg" in frames else {}))

    for i, *arrays in results:
        given = dict(zip(("face3dmm", "emotion", "eeg"), arrays, strict=False))
        if i == cursor:
            add(i, given)
            cursor += 1
        else:
            if not store:
                for kind, dim in dims.items():
                    store[kind] = np.lib.format.open_memmap(
                        scratch / f"{kind}.npy", "w+", np.float32, (int(offsets[kind][-1]), dim)
                    )
            for kind in frames:
                block(kind, i)[:] = given[kind]
            waiting[i] = True
        while cursor < n and waiting[cursor]:
            add(cursor, {kind: block(kind, cursor) for kind in frames})
            waiting[cursor] = False
            cursor += 1
    if cursor != n:
        raise ReactError(path=writer.target, problem=f"generation stopped after {cursor} of {n} samples")


def generate_mars_split(
    checkpoint: Path, root: Path, split: str, out: Path, seed: int, device: torch.device,
    overrides: Mapping[str, Mapping[str, Any]] | None = None, batch_clips: int | None = None,
    edition: str | None = None, bidirectional: bool | None = None, results_pt: Path | None = None,
) -> MarsGeneration:
    """K reactions for every sample of a MARS split into the (ragged) prediction set ``out``, and
    optionally the organisers' ``results.pt`` (module docstring). All or nothing, as for REACT 2024:
    the set is staged beside ``out`` and swapped in at the end, after a free-space check."""
    from reactcli.predictions import PredictionWriter, predicted_bytes

    model, facts = load_generation_model(checkpoint, device, overrides)
    chosen = generation_edition(root, split, edition, model.config)
    check_model_edition(facts, chosen.name, checkpoint, root)
    if results_pt is not None:
        _check_results_target(Path(results_pt), Path(out))
    mars = open_mars_split(root, split, model, chosen, bidirectional)
    k = model.config.generation.samples
    with_eeg = model.predictor.eeg_head is not None
    if with_eeg and not chosen.has_eeg:
        raise ReactError(f"{checkpoint}: the model has an EEG head (REACT 2026), but REACT {chosen.name} has no EEG")
    eeg_lengths = [eeg_window_count(n, chosen.fps) for n in mars.lengths] if with_eeg else None
    need = predicted_bytes(k, mars.lengths, mars.lengths) + k * EEG_DIM * 4 * sum(eeg_lengths or [])
    record = mars_generation_record(model, facts, checkpoint, seed, mars)
    out = Path(out)
    t0 = time.perf_counter()
    kinds = ("emotion", "face3dmm", "eeg") if with_eeg else ("emotion", "face3dmm")
    with PredictionWriter(out, k, record, kinds=kinds, need_bytes=2 * need) as writer:  # the set and its scratch
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", suffix=".scratch", dir=out.parent) as tmp:
            label = f"generating {split} reactions"
            results = iter_mars_reactions(model, mars, seed, k, batch_clips, description=label, eeg=with_eeg)
            write_in_order(writer, mars.ids, mars.lengths, k, results, Path(tmp), eeg_lengths)
        seconds = time.perf_counter() - t0
        preds = writer.commit()
    done = MarsGeneration(preds.record, seconds, int(sum(mars.lengths)))
    if results_pt is not None:
        targets = None
        if with_eeg:
            targets = split_eeg_targets(root, split, mars.speakers.samples, mars.lengths, chosen.fps)
        write_results_pt(preds, Path(results_pt), targets)
        done.results_pt = Path(results_pt)
    return done


def _check_results_target(path: Path, out: Path) -> None:
    if path.suffix.lower() not in (".pt", ".pth"):
        raise file_error(path, "--results-pt writes a torch file: give a .pt name (the organisers' results.pt)")
    if path.resolve().parent == out.resolve():
        raise file_error(path, "--results-pt must not go inside --out (that folder is replaced as a whole)")
    if path.is_dir():
        raise file_error(path, "--results-pt names a folder; give a file name")


def round_aus(emotion: np.ndarray) -> np.ndarray:
    """(K, L, 25) with the AU dims rounded half to even, as ``torch.round`` in the organisers'
    test stage (``data_clamp``); the other dims as they are."""
    out = np.array(emotion, dtype=np.float32)
    out[..., AU_DIMS] = np.round(out[..., AU_DIMS])
    return out


def write_results_pt(
    preds: PredictionSet, path: Path, eeg_targets: tuple[list[np.ndarray], list[np.ndarray]] | None = None
) -> Path:
    """The organisers' test-stage file from a finished prediction set: ``{"PRED": [(K, L_i, 25)
    float32 tensor per sample, AU rounded], "sample_ids": [...]}`` in the set's order. ``GT`` is
    left out (``react evaluate`` draws and aligns the ground truths itself and would not read it).
    A set with EEG adds ``PRED_EEG`` (K, n_i, 14) and, given ``eeg_targets`` (the paired listeners'
    ``GT_EEG`` and ``EEG_MASK``, (1, n_i, 14) each: ``eeg_windows.split_eeg_targets``), those two.

    The rounded values go to a scratch file first and the tensors are views of it, so the file is
    written without the whole set in memory."""
    import torch

    from reactcli.atomic import save_torch

    path = Path(path)
    preds.require("emotion", "results.pt holds the emotion predictions")
    k, lengths = preds.K, preds.lengths
    offsets = np.concatenate([[0], np.cumsum(np.asarray(lengths, np.int64) * k)])
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", suffix=".scratch", dir=path.parent) as tmp:
        scratch = Path(tmp) / "pred.npy"
        rounded = np.lib.format.open_memmap(scratch, "w+", np.float32, (int(offsets[-1]), EMOTION_DIM))
        for i, frames in enumerate(lengths):
            rounded[offsets[i] : offsets[i + 1]] = round_aus(preds.emotion(i)).reshape(k * frames, EMOTION_DIM)
        rounded.flush()
        del rounded
        view = np.load(scratch, mmap_mode="c")
        tensors = [
            torch.from_numpy(view[offsets[i] : offsets[i + 1]].reshape(k, frames, EMOTION_DIM))
            for i, frames in enumerate(lengths)
        ]
        content: dict[str, Any] = {"PRED": tensors, "sample_ids": list(preds.ids)}
        if preds.has_eeg:
            content["PRED_EEG"] = [torch.from_numpy(np.array(preds.eeg(i), np.float32)) for i in range(len(preds))]
            if eeg_targets is not None:
                content["GT_EEG"] = [torch.from_numpy(t) for t in eeg_targets[0]]
                content["EEG_MASK"] = [torch.from_numpy(m) for m in eeg_targets[1]]
        save_torch(path, content)
        del tensors, view, content
    return path
