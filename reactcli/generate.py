"""Strictly online reaction generation: speaker frames in, listener frames out, with a KV cache.

:class:`ReactionStream` receives speaker audio features and 3DMM frame by frame or in chunks
(``push``) and returns every listener frame that has become computable. Listener token t needs
speaker frames <= t and listener tokens <= t - patch, so a chunk of up to ``patch`` tokens is
sampled per step; frame-by-frame input yields one frame per push with no added latency.

Each step runs only the new frames through the tokenizer encoder, the speaker and listener streams
and the decoders: every attention layer keeps a sliding KV cache (see ``models/layers.py``), so a
step costs O(new tokens x context) instead of re-running the whole context. ``use_cache=False``
recomputes everything from frame 0 each step — the reference the cache is tested and benchmarked
against.

Sampling is per sample: each of the K reactions has its own top-k and temperature, and PAD, MASK
and codes never seen in training are masked out before the top-k threshold (defect 6, docs/model.md). Noise is
Gumbel-max with uniform draws seeded by (seed, frame), so the draw for frame t never depends on how
the input was chunked or on any later speaker input — which is what makes the online contract
("changing speaker input after t leaves frames <= t unchanged") exactly testable.

Emotion comes from the predictor's emotion head when it has one (else it is decoded from the
sampled tokens, as in the paper). ``generation.smoothing`` applies a causal exponential moving
average to every emitted frame (y_t = s y_{t-1} + (1 - s) x_t): it only looks back, so it keeps
the online contract. ``generation.valid_emotion`` (on by default) projects each emitted emotion
frame onto the emotions that can exist (``models/valid_emotion.py``): per frame, so also online.
``generation.emotion_residual_scale`` shrinks the emotion head's learned part towards the fixed
linear skip path (a per-frame scale, online too). ``generation.sampled_emotion_weight`` carries each
reaction's sampled face path into its emotion (``models/sampled_path.py``: frame by frame, online).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from reactcli.data.loaders import pad_emotion
from reactcli.errors import ReactError
from reactcli.models.checkpoint import ReactionModel
from reactcli.models.sampled_path import SampledPath
from reactcli.models.valid_emotion import project_emotion
from reactcli.runtime import derive_seed
from reactcli.vocab import EMOTION_DIM, FACE_DIM

if TYPE_CHECKING:
    from reactcli.data.dataset import ReactClipDataset


@dataclass
class ListenerFrames:
    """Newly generated listener frames for all K samples: raw 3DMM (K, m, 58) and emotion (K, m, 25)."""

    face3dmm: Tensor
    emotion: Tensor
    start: int  # frame index of the first row


def _per_sample(value: float | int | Sequence, samples: int, name: str, dtype: torch.dtype) -> Tensor:
    t = torch.as_tensor(value, dtype=dtype)
    if t.ndim == 0:
        t = t.expand(samples).clone()
    if t.shape != (samples,):
        raise ReactError(f"{name}: expected one value or {samples} values (one per sample), got {tuple(t.shape)}")
    return t


def sample_tokens(
    logits: Tensor, valid: Tensor, top_k: Tensor, temperature: Tensor, uniform: Tensor
) -> Tensor:
    """Per-sample top-k / temperature Gumbel-max sampling over valid ids only.

    logits (K, n, V); valid (V,) bool; top_k (K,) long; temperature (K,) float; uniform (K, n, V)
    in (0, 1). Returns token ids (K, n). The top-k threshold is taken per sample and frame, never
    over the batch.
    """
    logits = logits.float().masked_fill(~valid, float("-inf"))
    k = top_k.clamp(1, int(valid.sum())).to(logits.device)
    kth = logits.topk(int(k.max()), dim=-1).values  # (K, n, kmax), descending
    threshold = kth.gather(-1, (k - 1).view(-1, 1, 1).expand(logits.shape[0], logits.shape[1], 1))
    logits = logits.masked_fill(logits < threshold, float("-inf"))
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-12, 1.0 - 1e-7)))
    return (logits / temperature.to(logits.device).view(-1, 1, 1) + gumbel).argmax(-1)


class ReactionStream:
    """Generate K listener reactions online for one speaker stream."""

    def __init__(
        self,
        model: ReactionModel,
        samples: int | None = None,
        top_k: int | Sequence[int] | None = None,
        temperature: float | Sequence[float] | None = None,
        seed: int = 0,
        use_cache: bool = True,
    ) -> None:
        gen = model.config.generation
        self.model = model
        self.tok = model.tokenizer
        self.pred = model.predictor
        self.device = next(self.pred.parameters()).device
        self.samples = samples or gen.samples
        self.top_k = _per_sample(gen.top_k if top_k is None else top_k, self.samples, "top_k", torch.long)
        self.temperature = _per_sample(
            gen.temperature if temperature is None else temperature, self.samples, "temperature", torch.float32
        )
        if bool((self.temperature <= 0).any()) or bool((self.top_k < 1).any()):
            raise ReactError("temperature must be > 0 and top_k >= 1 for every sample")
        self.seed = int(seed)
        self.use_cache = use_cache
        self.smoothing = float(gen.smoothing)
        self.valid_emotion = bool(gen.valid_emotion)
        self.residual_scale = float(gen.emotion_residual_scale)
        if self.residual_scale != 1.0 and self.pred.emotion_head is None:
            raise ReactError(
                "generation.emotion_residual_scale needs a predictor with an emotion head (predictor.emotion_head)"
            )
        self.sampled_weight = float(gen.sampled_emotion_weight)
        self._sampled = SampledPath(self.sampled_weight, float(gen.sampled_emotion_smoothing))
        if self.sampled_weight != 0.0 and self.pred.emotion_head is None:
            raise ReactError(
                "generation.sampled_emotion_weight needs a predictor with an emotion head (predictor.emotion_head)"
            )
        self._smoothed: tuple[Tensor, Tensor] | None = None  # last emitted (face, emotion) per sample
        self.needs_emotion = bool(self.pred.cfg.speaker_emotion)
        self.patch = self.pred.cfg.patch
        self.received = 0  # speaker frames seen
        self.done = 0  # listener frames produced
        # raw inputs (kept for the no-cache reference path)
        self._audio: list[Tensor] = []
        self._face: list[Tensor] = []
        self._emotion: list[Tensor] = []
        self.tokens = torch.empty(self.samples, 0, dtype=torch.long, device=self.device)
        self._enc_cache = self.tok.new_encoder_cache()
        self._spk_cache: dict = {}
        self._lst_cache: dict = {}
        self._dec_cache = self.tok.new_decoder_cache()
        self._memory = torch.empty(1, 0, self.pred.cfg.dim, device=self.device)
        self._memory_start = 0  # frame of self._memory[:, 0]
        # emotion skip path: the last emotion_skip - 1 frames of its inputs, and outputs not yet used
        self._skip_history: Tensor | None = None
        self._skip_out = torch.empty(1, 0, EMOTION_DIM, device=self.device)

    # -- public ----------------------------------------------------------------------------------
    @torch.no_grad()
    def push(
        self,
        audio: Tensor | np.ndarray,
        face3dmm: Tensor | np.ndarray,
        emotion: Tensor | np.ndarray | None = None,
    ) -> ListenerFrames:
        """Feed speaker frames — (n, A) audio features, (n, 58) raw 3DMM and, for a model that takes
        it, (n, 25) emotion — and get the new listener frames."""
        audio = torch.as_tensor(np.asarray(audio, dtype=np.float32), device=self.device)
        face = torch.as_tensor(np.asarray(face3dmm, dtype=np.float32), device=self.device)
        if audio.ndim != 2 or audio.shape[1] != self.pred.audio_dim:
            raise ReactError(f"speaker audio features: expected (n, {self.pred.audio_dim}), got {tuple(audio.shape)}")
        if face.ndim != 2 or face.shape[1] != FACE_DIM:
            raise ReactError(f"speaker 3DMM: expected (n, {FACE_DIM}), got {tuple(face.shape)}")
        if audio.shape[0] != face.shape[0]:
            raise ReactError(f"speaker audio has {audio.shape[0]} frames but 3DMM has {face.shape[0]}")
        inputs = [audio, face]
        if self.needs_emotion:
            if emotion is None:
                raise ReactError("this model takes the speaker's emotion as an input; pass it with the 3DMM")
            emo = torch.as_tensor(np.asarray(emotion, dtype=np.float32), device=self.device)
            if emo.shape != (audio.shape[0], EMOTION_DIM):
                raise ReactError(f"speaker emotion: expected ({audio.shape[0]}, {EMOTION_DIM}), got {tuple(emo.shape)}")
            inputs.append(emo)
        if not all(bool(torch.isfinite(x).all()) for x in inputs):
            raise ReactError("speaker input contains NaN or inf")
        n = audio.shape[0]
        start = self.done
        if n:
            self._speaker_step(*inputs)
        faces, emotions = [], []
        while self.done < self.received:
            f, e = self._listener_step(min(self.received, self.done + self.patch))
            faces.append(f)
            emotions.append(e)
        if not faces:
            k = self.samples
            return ListenerFrames(torch.empty(k, 0, FACE_DIM), torch.empty(k, 0, EMOTION_DIM), start)
        return ListenerFrames(torch.cat(faces, 1).cpu(), torch.cat(emotions, 1).cpu(), start)

    # -- speaker side ----------------------------------------------------------------------------
    def _speaker_step(self, audio: Tensor, face: Tensor, emotion: Tensor | None = None) -> None:
        n = audio.shape[0]
        pos = torch.arange(self.received, self.received + n, device=self.device)
        if not self.use_cache:
            self._audio.append(audio)
            self._face.append(face)
            if emotion is not None:
                self._emotion.append(emotion)
        else:
            _, toks = self.tok.encode(face[None], pos, self._enc_cache)
            emo = None if emotion is None else emotion[None]
            memory = self.pred.speaker(audio[None], toks, pos, cache=self._spk_cache, emotion=emo)
            self._memory = torch.cat((self._memory, memory), 1)
            if self.pred.emotion_skip is not None:
                feats = self.pred.skip_features(audio[None], emo)
                lookback = self.pred.emotion_skip.kernel_size[0] - 1
                if self._skip_history is None:  # before frame 0 the inputs read 0, as in training
                    self._skip_history = feats.new_zeros(1, lookback, feats.shape[-1])
                self._skip_out = torch.cat((self._skip_out, self.pred.skip(feats, self._skip_history)), 1)
                history = torch.cat((self._skip_history, feats), 1)
                self._skip_history = history[:, history.shape[1] - lookback :]
        self.received += n

    def _full_speaker(self, upto: int) -> tuple[Tensor, Tensor | None]:
        """No-cache reference: memory and skip-path output of frames [0, upto) recomputed from scratch."""
        audio = torch.cat(self._audio)[:upto][None]
        face = torch.cat(self._face)[:upto][None]
        emotion = torch.cat(self._emotion)[:upto][None] if self._emotion else None
        _, toks = self.tok.encode(face)
        pos = torch.arange(upto, device=self.device)
        skip = None
        if self.pred.emotion_skip is not None:
            skip = self.pred.skip(self.pred.skip_features(audio, emotion))
        return self.pred.speaker(audio, toks, pos, emotion=emotion), skip

    # -- listener side ---------------------------------------------------------------------------
    def _listener_inputs(self, lo: int, hi: int) -> Tensor:
        src = torch.arange(lo, hi, device=self.device) - self.patch
        out = torch.full((self.samples, hi - lo), self.pred.mask_id, dtype=torch.long, device=self.device)
        ok = src >= 0
        if bool(ok.any()):
            out[:, ok] = self.tokens[:, src[ok]]
        return out

    def _uniform(self, lo: int, hi: int) -> Tensor:
        """Sampling noise for frames [lo, hi), drawn per frame from (seed, frame) on the CPU."""
        rows = []
        for frame in range(lo, hi):
            g = torch.Generator().manual_seed(derive_seed("frame", self.seed, frame))
            rows.append(torch.rand(self.samples, self.pred.vocab_size, generator=g))
        return torch.stack(rows, 1).to(self.device)

    def _listener_step(self, hi: int) -> tuple[Tensor, Tensor]:
        lo = self.done
        pos = torch.arange(lo, hi, device=self.device)
        if self.use_cache:
            mem = self._memory[:, : hi - self._memory_start]
            mem_pos = torch.arange(self._memory_start, hi, device=self.device)
            self._memory = self._memory[:, hi - self._memory_start :]
            self._memory_start = hi
            state = self.pred.listener(self._listener_inputs(lo, hi), pos, mem, mem_pos, cache=self._lst_cache)
            skip = self._skip_out[:, : hi - lo]
            self._skip_out = self._skip_out[:, hi - lo :]
        else:
            memory, skip = self._full_speaker(hi)
            full = torch.arange(hi, device=self.device)
            lin = self._listener_inputs(0, hi)
            state = self.pred.listener(lin, full, memory.expand(self.samples, -1, -1), full)[:, lo:]
            skip = None if skip is None else skip[:, lo:]
        skip = None if self.pred.emotion_skip is None else skip.expand(self.samples, -1, -1)
        logits, head_emotion = self.pred.heads(state, skip, self.residual_scale)
        new = sample_tokens(
            logits, self.model.valid_codes, self.top_k, self.temperature, self._uniform(lo, hi)
        )
        self.tokens = torch.cat((self.tokens, new), 1)
        self.done = hi
        # the tokenizer's emotion decoder: the emotion without a head, the sampled paths' spread with one
        decode = head_emotion is None or self.sampled_weight != 0.0
        if self.use_cache:
            face, emotion = self.tok.decode_tokens(new, pos, self._dec_cache, emotion=decode)
        else:
            face, emotion = self.tok.decode_tokens(self.tokens, emotion=decode)
            face, emotion = face[:, lo:], None if emotion is None else emotion[:, lo:]
        if head_emotion is not None and emotion is not None:
            emotion = self._sampled(head_emotion, emotion)
        face, emotion = self._smooth(face, head_emotion if emotion is None else emotion)
        return face, project_emotion(emotion) if self.valid_emotion else emotion

    def _smooth(self, face: Tensor, emotion: Tensor) -> tuple[Tensor, Tensor]:
        """Causal exponential smoothing of (K, m, D) frames, continued across calls."""
        if self.smoothing <= 0:
            return face, emotion
        s = self.smoothing
        outputs = []
        for series, prev in zip((face, emotion), self._smoothed or (None, None), strict=True):
            rows = []
            for i in range(series.shape[1]):
                prev = series[:, i] if prev is None else s * prev + (1.0 - s) * series[:, i]
                rows.append(prev)
            outputs.append(torch.stack(rows, 1))
        self._smoothed = (outputs[0][:, -1], outputs[1][:, -1])
        return outputs[0], outputs[1]


def sample_seed(seed: int, index: int) -> int:
    """The stream seed of mirrored sample ``index`` under ``--seed seed``: one per sample, so a clip's
    reactions do not depend on which other clips are generated (``react live`` replay uses it too)."""
    return derive_seed("sample", seed, index)


def generate_reactions(
    model: ReactionModel,
    audio: Tensor | np.ndarray,
    face3dmm: Tensor | np.ndarray,
    emotion: Tensor | np.ndarray | None = None,
    samples: int | None = None,
    seed: int = 0,
    chunk: int | None = None,
    use_cache: bool = True,
    top_k: int | Sequence[int] | None = None,
    temperature: float | Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stream one speaker clip through a :class:`ReactionStream`; returns (face3dmm (K,T,58), emotion (K,T,25)).

    ``emotion`` is the speaker's (T, 25) emotion, needed by models that take it (``predictor.speaker_emotion``).

    ``chunk`` is how many speaker frames are pushed at a time (default: the model's patch), as a
    live system would receive them; the result does not depend on it beyond float rounding.
    """
    stream = ReactionStream(model, samples, top_k, temperature, seed, use_cache)
    audio = np.asarray(audio, dtype=np.float32)
    face3dmm = np.asarray(face3dmm, dtype=np.float32)
    step = chunk or stream.patch
    if emotion is not None:
        emotion = pad_emotion(np.asarray(emotion, dtype=np.float32), len(audio))
    faces, emotions = [], []
    for lo in range(0, len(audio), step):
        out = stream.push(
            audio[lo : lo + step], face3dmm[lo : lo + step], None if emotion is None else emotion[lo : lo + step]
        )
        faces.append(out.face3dmm)
        emotions.append(out.emotion)
    return torch.cat(faces, 1).numpy(), torch.cat(emotions, 1).numpy()


# -- batch drivers used by ``react generate`` ------------------------------------------------------
GENERATION_ONLY = frozenset({"generation"})


def load_for_generation(
    checkpoint: Path, device: torch.device, overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ReactionModel:
    """The stored model, its configuration built by the one layered loader with the checkpoint's
    settings as the base layer; ``REACT_GENERATION__*`` and ``overrides`` may change only
    ``generation.*`` (the model's own settings are fixed by its weights)."""
    from reactcli.config import load_config
    from reactcli.models.checkpoint import load_reaction_model

    model, data = load_reaction_model(checkpoint, device)
    model.config = load_config(
        overrides=overrides, environ=environ, base=(str(checkpoint), data["config"]), only=GENERATION_ONLY
    )
    return model


def iter_reactions(
    model: ReactionModel, dataset: ReactClipDataset, samples: int, seed: int, speaker_of: Sequence[int] | None = None,
    description: str = "generating reactions",
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(n, face3dmm (K, 751, 58), emotion (K, 750, 25))`` for every sample of ``dataset`` in order,
    one at a time (so a writer can put each on disk before the next is made).

    Sample n uses the stream seed ``sample_seed(seed, n)``, so a clip's reactions do not depend on
    which other clips are generated. ``speaker_of[n]`` feeds sample n the speaker input of another
    sample (the speaker-shuffle ablation of ``bench/quality_bench.py``); by default every sample
    gets its own speaker.
    """
    from reactcli.progress import track
    from reactcli.vocab import EMOTION_FRAMES

    for n in track(range(len(dataset)), f"{description} (K={samples})"):
        clip = dataset.clip(n if speaker_of is None else int(speaker_of[n]))
        face, emotion = generate_reactions(
            model, clip["speaker_audio"], clip["speaker_3dmm"], clip["speaker_emotion"], samples,
            seed=sample_seed(seed, n),
        )
        yield n, face.astype(np.float32), emotion[:, :EMOTION_FRAMES].astype(np.float32)


def generate_dataset(
    model: ReactionModel, dataset: ReactClipDataset, samples: int, seed: int, speaker_of: Sequence[int] | None = None,
    description: str = "generating reactions",
) -> tuple[np.ndarray, np.ndarray]:
    """K reactions for every sample of ``dataset`` in memory: emotion (N, K, 750, 25) and face3dmm (N, K, 751, 58).

    Arrays are stacked speaker-major: ``emotion[n, k]`` is reaction k to speaker sample n (the
    released code reshaped pass-major output as speaker-major: defect 4, docs/model.md). The seeds
    and ``speaker_of`` are those of :func:`iter_reactions`.
    """
    emotions, faces = [], []
    for _, face, emotion in iter_reactions(model, dataset, samples, seed, speaker_of, description):
        faces.append(face)
        emotions.append(emotion)
    return np.stack(emotions), np.stack(faces)


def generation_record(model: ReactionModel, checkpoint: Path, seed: int, split: str | None = None) -> dict[str, Any]:
    """What a prediction set records about how it was made: enough to make it again (the checkpoint
    by path and sha256, the seed, and the whole ``generation`` section the run used)."""
    from reactcli.freshness import sha256_file
    from reactcli.predictions import ORDER_2024

    record: dict[str, Any] = {"edition": "2024"}
    if split is not None:
        record["split"] = split
    record.update({
        "seed": int(seed),
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha256_file(checkpoint),
        "generation": model.config.generation.model_dump(mode="json"),
        "order": ORDER_2024,
    })  # fmt: skip
    return record


def generate_split(
    checkpoint: Path, root: Path, split: str, out: Path, seed: int, device: torch.device,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict:
    """Generate K reactions for every mirrored sample of ``split`` into the prediction set ``out``
    (``reactcli.predictions``: emotion.npy (N, K, 750, 25), face3dmm.npy (N, K, 751, 58),
    generation.json); returns its record.

    All or nothing: the set is written into a temporary folder beside ``out`` and swapped in at the
    end, after a free-space check made before the first sample; an error, Ctrl-C or a kill leaves
    an older set in ``out`` as it was.
    """
    from reactcli.data.dataset import ReactClipDataset
    from reactcli.data.layout import SPLITS
    from reactcli.predictions import PredictionWriter, predicted_bytes, sample_ids
    from reactcli.vocab import CLIP_FRAMES, EMOTION_FRAMES

    if split not in SPLITS:
        raise ReactError(f"--split {split}: expected one of {', '.join(SPLITS)}")
    model = load_for_generation(checkpoint, device, overrides)
    dataset = ReactClipDataset(Path(root), split, model.config)
    k = model.config.generation.samples
    ids = sample_ids(dataset.samples)
    need = predicted_bytes(k, [EMOTION_FRAMES] * len(ids), [CLIP_FRAMES] * len(ids))
    record = generation_record(model, checkpoint, seed, split)
    with PredictionWriter(out, k, record, need_bytes=need) as writer:
        for n, face, emotion in iter_reactions(model, dataset, k, seed, description=f"generating {split} reactions"):
            writer.add(ids[n], emotion, face)
        return writer.commit().record


#: How far (in frames) the speaker's audio may differ from its 3DMM in single-clip mode: REACT's
#: 30 s wavs hold 750 frames of sound for 751 video frames, and wav lengths vary by a few ms.
AUDIO_SLACK_FRAMES = 2


def generate_clip_file(
    checkpoint: Path, audio_path: Path, face_path: Path, out: Path, seed: int, device: torch.device,
    overrides: Mapping[str, Mapping[str, Any]] | None = None, emotion_path: Path | None = None,
) -> dict:
    """Single-clip mode: features computed with the checkpoint's stored extractor settings; writes
    ``out`` (.npz with emotion (K, T, 25), face3dmm (K, T, 58) and ``record``, the prediction
    record as a JSON string) and returns that record.

    The inputs are held to dataset mode's rules: a 3DMM of exactly 751 float frames (as
    ``react preprocess`` requires) and a wav whose duration matches it within
    :data:`AUDIO_SLACK_FRAMES` frames; anything else is refused in one line instead of being cut.
    The output equals dataset mode's for the same clip when ``seed`` is that sample's stream seed,
    ``sample_seed(dataset seed, n)`` (``tests/test_generate.py`` checks it).
    """
    import json

    from reactcli.atomic import atomic_path
    from reactcli.data.features import FeatureExtractor
    from reactcli.data.loaders import load_audio, load_emotion, load_face3dmm
    from reactcli.vocab import CLIP_FRAMES, FPS

    if Path(out).suffix != ".npz":
        raise ReactError(f"{out}: single-clip output must be an .npz file")
    model = load_for_generation(checkpoint, device, overrides)
    speaker_emotion = None
    if model.predictor.cfg.speaker_emotion:
        if emotion_path is None:
            raise ReactError(f"{checkpoint}: this model takes the speaker's emotion; pass --speaker-emotion FILE.csv")
        speaker_emotion = load_emotion(emotion_path)
    elif emotion_path is not None:
        raise ReactError(f"{checkpoint}: this model does not take the speaker's emotion; drop --speaker-emotion")
    face = load_face3dmm(face_path, exact=True)
    wave, rate = load_audio(audio_path)
    heard = len(wave) / rate * FPS
    if abs(heard - CLIP_FRAMES) > AUDIO_SLACK_FRAMES:
        raise ReactError(
            path=audio_path,
            problem=f"audio is {len(wave) / rate:.2f} s ({heard:.0f} frames at {FPS} fps) but the 3DMM {face_path} "
            f"has {CLIP_FRAMES} frames; give the matching clip (nothing is cut silently)",
        )
    extractor = FeatureExtractor(model.config.audio)
    if extractor.dim != model.predictor.audio_dim:
        raise ReactError(
            f"{checkpoint}: audio settings give {extractor.dim}-d features but the model expects "
            f"{model.predictor.audio_dim}"
        )
    audio = extractor(wave, rate, frames=len(face))
    k = model.config.generation.samples
    face_out, emotion = generate_reactions(model, audio, face, speaker_emotion, k, seed=seed)
    record = generation_record(model, checkpoint, seed)
    record.update({
        "inputs": {"audio": str(audio_path), "face3dmm": str(face_path),
                   "emotion": None if emotion_path is None else str(emotion_path)},
        "K": k, "emotion_shape": list(emotion.shape), "face3dmm_shape": list(face_out.shape),
    })  # fmt: skip
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        arrays = {"emotion": emotion.astype(np.float32), "face3dmm": face_out.astype(np.float32)}
        np.savez(fh, **arrays, record=np.array(json.dumps(record)))
    return record
