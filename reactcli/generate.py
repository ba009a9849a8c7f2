"""Strictly online reaction generation: speaker frames in, listener frames out, with KV caches.

:class:`ReactionStream` receives speaker audio features and 3DMM frame by frame or in chunks
(``push``) and returns every listener frame that has become computable. Listener token t needs
speaker frames <= t and listener tokens <= t - patch, so input is cut into steps of at most
``patch`` frames, and each step runs the new frames through the tokenizer encoder, the speaker and
listener streams, the sampler and the decoders: frame-by-frame input yields one frame per push
with no added latency. :class:`BatchedReactionStream` is the same algorithm for B speaker clips at
once (B x K listener rows in lockstep); ``ReactionStream`` is its one-clip view.

Caches (``cache=``): ``"static"`` (default) keeps every attention layer's keys in a fixed ring of
``window + patch - 1`` slots written in place (``models/layers.py``); ``"dynamic"`` concatenates
and trims (the cache of earlier releases); ``"none"`` recomputes every stream from frame 0 each
step — the reference the caches are tested and benchmarked against (its memory grows with the
clip, the cached modes' does not). With the static cache a step reads nothing back to the host,
branches on no tensor value and keeps every state tensor's shape and address, so on CUDA it is
captured once per step size as a CUDA graph and replayed (:class:`CapturedStep`; ``capture=``,
automatic on CUDA, eager where capture fails).

Sampling is per sample: each of the K reactions has its own top-k and temperature, and PAD, MASK
and codes never seen in training are masked out before the top-k threshold (defect 6, docs/model.md). Noise is
Gumbel-max with uniform draws seeded by (stream seed, frame) in :func:`_uniform`, so the draw for
frame t never depends on how the input was chunked or batched, or on any later speaker input —
which is what makes the online contract ("changing speaker input after t leaves frames <= t
unchanged") exactly testable, and batched generation equal to one clip at a time.

Emotion comes from the predictor's emotion head when it has one (else it is decoded from the
sampled tokens, as in the paper). ``generation.smoothing`` applies a causal exponential moving
average to every emitted frame (y_t = s y_{t-1} + (1 - s) x_t): it only looks back, so it keeps
the online contract. ``generation.valid_emotion`` (on by default) projects each emitted emotion
frame onto the emotions that can exist (``models/valid_emotion.py``): per frame, so also online.
``generation.emotion_residual_scale`` shrinks the emotion head's learned part towards the fixed
linear skip path (a per-frame scale, online too). ``generation.sampled_emotion_weight`` carries each
reaction's sampled face path into its AUs (``models/sampled_path.py``: the spread of the K reactions
of a clip at the same frame, so online as well).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from reactcli.data.eeg_windows import eeg_window_ends
from reactcli.data.loaders import pad_emotion
from reactcli.data.mars_history import HISTORY_DIM
from reactcli.editions import EEG_DIM, PERSONALITY_TRAITS
from reactcli.errors import ReactError
from reactcli.models.checkpoint import ReactionModel
from reactcli.models.history import history_model_space
from reactcli.models.layers import CacheTree
from reactcli.models.sampled_path import SAMPLED_COUNT, check_sampled_path, sampled_emotion
from reactcli.models.valid_emotion import project_emotion
from reactcli.runtime import derive_seed
from reactcli.vocab import EMOTION_DIM, FACE_DIM

if TYPE_CHECKING:
    from reactcli.data.dataset import ReactClipDataset

#: The cache kinds of a stream (module docstring).
CACHE_KINDS = ("static", "dynamic", "none")


@dataclass
class ListenerFrames:
    """Newly generated listener frames: raw 3DMM and emotion, (K, m, 58) and (K, m, 25) from a
    :class:`ReactionStream`, (B, K, m, 58) and (B, K, m, 25) from a :class:`BatchedReactionStream`."""

    face3dmm: Tensor
    emotion: Tensor
    start: int  # frame index of the first row
    eeg: Tensor | None = None  # a model with an EEG head: its per-frame estimate, (K, m, 14) / (B, K, m, 14)


def _per_sample(value: float | int | Sequence, samples: int, name: str, dtype: torch.dtype) -> Tensor:
    t = torch.as_tensor(value, dtype=dtype)
    if t.ndim == 0:
        t = t.expand(samples).clone()
    if t.shape != (samples,):
        raise ReactError(f"{name}: expected one value or {samples} values (one per sample), got {tuple(t.shape)}")
    return t


def _uniform(seed: int, lo: int, hi: int, samples: int, vocab: int) -> Tensor:
    """Sampling noise (samples, hi - lo, vocab) of the stream with seed ``seed`` for frames [lo, hi),
    drawn per frame from (seed, frame) on the CPU. Every path (one clip, a batch, live) draws its
    noise here, so the noise of a sample at a frame is a function of (its seed, the frame) alone."""
    rows = []
    for frame in range(lo, hi):
        g = torch.Generator().manual_seed(derive_seed("frame", seed, frame))
        rows.append(torch.rand(samples, vocab, generator=g))
    return torch.stack(rows, 1) if rows else torch.empty(samples, 0, vocab)


def sample_tokens(
    logits: Tensor, valid: Tensor, top_k: Tensor, temperature: Tensor, uniform: Tensor, kmax: int | None = None
) -> Tensor:
    """Per-row top-k / temperature Gumbel-max sampling over valid ids only.

    logits (R, n, V); valid (V,) bool; top_k (R,) long; temperature (R,) float; uniform (R, n, V)
    in (0, 1). Returns token ids (R, n). The top-k threshold is taken per row and frame, never
    over the batch. With ``kmax`` the caller has already clamped ``top_k`` to [1, valid codes],
    put it on the logits' device and passed its maximum: then nothing is read back to the host
    (what a captured step needs).

    Only the ``kmax`` likeliest codes can win, so the Gumbel noise is transformed and compared for
    those alone (the uniform draws still cover every code, so a code's draw does not depend on
    the others). The winner is the one the full-vocabulary argmax picks, except that codes tied
    with the k-th logit beyond the first ``kmax`` are left out (float logits of a trained head
    do not tie).
    """
    logits = logits.float().masked_fill(~valid, float("-inf"))
    if kmax is None:
        k = top_k.clamp(1, int(valid.sum())).to(logits.device)
        kmax = int(k.max())
    else:
        k = top_k
    top, index = logits.topk(kmax, dim=-1)  # (R, n, kmax), descending
    threshold = top.gather(-1, (k - 1).view(-1, 1, 1).expand(logits.shape[0], logits.shape[1], 1))
    top = top.masked_fill(top < threshold, float("-inf"))
    gumbel = -torch.log(-torch.log(uniform.gather(-1, index).clamp(1e-12, 1.0 - 1e-7)))
    choice = (top / temperature.to(logits.device).view(-1, 1, 1) + gumbel).argmax(-1, keepdim=True)
    return index.gather(-1, choice).squeeze(-1)


class BatchedReactionStream:
    """K listener reactions for each of B speaker clips, generated online and in lockstep.

    Row ``b * K + k`` is reaction k to clip b. Clip b's noise comes from ``seeds[b]`` alone, so its
    reactions equal those of a one-clip stream with that seed: the same sampled tokens, and values
    equal up to float rounding (the CPU BLAS sums a product of few rows in another order than one
    of many rows, and a clip's speaker side has only ``patch`` rows per step). The clips share the
    frame axis: pad shorter clips after their end; by causality no frame before a clip's end
    depends on its padding.
    """

    def __init__(
        self,
        model: ReactionModel,
        seeds: Sequence[int],
        samples: int | None = None,
        top_k: int | Sequence[int] | None = None,
        temperature: float | Sequence[float] | None = None,
        cache: str = "static",
        capture: bool | None = None,
        personality: Tensor | np.ndarray | None = None,
        history: Tensor | np.ndarray | None = None,
    ) -> None:
        gen = model.config.generation
        self.model = model
        self.tok = model.tokenizer
        self.pred = model.predictor
        self.device = next(self.pred.parameters()).device
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ReactError("a batched stream needs at least one clip (one seed per clip)")
        self.batch = len(self.seeds)
        self.samples = samples or gen.samples
        self.top_k = _per_sample(gen.top_k if top_k is None else top_k, self.samples, "top_k", torch.long)
        self.temperature = _per_sample(
            gen.temperature if temperature is None else temperature, self.samples, "temperature", torch.float32
        )
        if bool((self.temperature <= 0).any()) or bool((self.top_k < 1).any()):
            raise ReactError("temperature must be > 0 and top_k >= 1 for every sample")
        if cache not in CACHE_KINDS:
            raise ReactError(f"cache {cache!r}: expected one of {', '.join(CACHE_KINDS)}")
        self.cache = cache
        self.smoothing = float(gen.smoothing)
        self.valid_emotion = bool(gen.valid_emotion)
        self.residual_scale = float(gen.emotion_residual_scale)
        if self.residual_scale != 1.0 and self.pred.emotion_head is None:
            raise ReactError(
                "generation.emotion_residual_scale needs a predictor with an emotion head (predictor.emotion_head)"
            )
        self.sampled_weight = float(gen.sampled_emotion_weight)
        self.sampled_smoothing = float(gen.sampled_emotion_smoothing)
        check_sampled_path(self.sampled_weight, self.sampled_smoothing)
        if self.sampled_weight != 0.0 and self.pred.emotion_head is None:
            raise ReactError(
                "generation.sampled_emotion_weight needs a predictor with an emotion head (predictor.emotion_head)"
            )
        self.needs_emotion = bool(self.pred.cfg.speaker_emotion)
        self.patch = self.pred.cfg.patch
        self.rows = self.batch * self.samples
        # Sampling constants, one row per (clip, reaction), on the device: nothing in a step reads
        # them back to the host.
        self._valid = self.model.valid_codes.to(self.device)
        n_valid = int(self._valid.sum())
        self._top_k_rows = self.top_k.clamp(1, n_valid).repeat(self.batch).to(self.device)
        self._kmax = int(self._top_k_rows.max())
        self._temperature_rows = self.temperature.repeat(self.batch).to(self.device)
        self._arange = torch.arange(self.patch, device=self.device)
        self.takes_personality = self.pred.personality_proj is not None
        # The listener's traits, one row per (clip, reaction): a fixed buffer, rewritten in place by reset().
        self._traits = None
        if self.takes_personality:
            self._traits = torch.zeros(self.rows, len(PERSONALITY_TRAITS), device=self.device)
        self._set_personality(personality)
        self.takes_history = self.pred.history_encoder is not None
        # The listener's history as the (d,) vector the listener stream adds, one row per (clip,
        # reaction): encoded once per clip (models/history.py), a fixed buffer rewritten in place.
        self._past = None
        if self.takes_history:
            self._past = torch.zeros(self.rows, self.pred.cfg.dim, device=self.device)
        self._set_history(history)
        if capture is None:
            capture = self.device.type == "cuda" and cache == "static"
        if capture and (self.device.type != "cuda" or cache != "static"):
            raise ReactError("a captured step needs cache='static' on a CUDA device")
        self.capture = bool(capture)
        self._graphs: dict[int, CapturedStep] = {}
        self._new_state()
        if cache == "static":
            self._prime()

    # -- state -----------------------------------------------------------------------------------
    def _new_state(self) -> None:
        step = self.patch if self.cache == "static" else None
        dev = self.device
        self.received = 0  # speaker frames seen (= listener frames produced: they advance together)
        self._frame = torch.zeros((), dtype=torch.long, device=dev)  # the same count, on the device
        self._enc_cache = self.tok.new_encoder_cache(step)
        self._dec_cache = self.tok.new_decoder_cache(step)
        self._spk_cache = CacheTree(step)
        self._lst_cache = CacheTree(step)
        # Listener inputs: the last ``patch`` sampled tokens, frame f in slot f % patch; MASK until
        # written, which is the input of every position t < patch.
        self._tokens = torch.full((self.rows, self.patch), self.pred.mask_id, dtype=torch.long, device=dev)
        # Emotion skip path: its inputs' last emotion_skip - 1 frames (zeros before frame 0, as in training).
        self._skip_history = None
        if self.pred.emotion_skip is not None:
            width = self.pred.audio_dim + (EMOTION_DIM if self.needs_emotion else 0)
            lookback = self.pred.emotion_skip.kernel_size[0] - 1
            self._skip_history = torch.zeros(self.batch, lookback, width, device=dev)
        # The last emitted (face, emotion) per row, for the causal smoothing.
        self._smoothed = None
        if self.smoothing > 0:
            self._smoothed = (
                torch.zeros(self.rows, FACE_DIM, device=dev), torch.zeros(self.rows, EMOTION_DIM, device=dev)
            )
        # The sampled path's smoothed spread per row (its last frame), for generation.sampled_emotion_*.
        self._spread = torch.zeros(self.rows, SAMPLED_COUNT, device=dev)
        # The no-cache reference keeps every input and token (it recomputes from frame 0).
        self._inputs: list[tuple[Tensor, Tensor, Tensor | None]] = []
        self._history = torch.empty(self.rows, 0, dtype=torch.long, device=dev)

    def _set_personality(self, personality: Tensor | np.ndarray | None) -> None:
        """Check and store the listeners' (B, 5) traits (``(x - 1) / 4``), in place."""
        if not self.takes_personality:
            if personality is not None:
                raise ReactError("this model does not take the listener's personality (predictor.personality is off)")
            return
        if personality is None:
            raise ReactError("this model takes the listener's personality (predictor.personality): pass the "
                             f"{len(PERSONALITY_TRAITS)} traits of each clip's listener")
        traits = torch.as_tensor(np.asarray(personality, dtype=np.float32))
        if traits.shape != (self.batch, len(PERSONALITY_TRAITS)) or not bool(torch.isfinite(traits).all()):
            raise ReactError(f"listener personality: expected finite ({self.batch}, {len(PERSONALITY_TRAITS)}) "
                             f"traits (one row per clip), got {tuple(traits.shape)}")
        self._traits.copy_(traits.repeat_interleave(self.samples, 0).to(self.device))

    def _set_history(self, history: Tensor | np.ndarray | None) -> None:
        """Check the listeners' (B, H, 84) histories (``data/mars_history.py``, raw 3DMM) and store
        their encoded vectors, in place."""
        if not self.takes_history:
            if history is not None:
                raise ReactError("this model does not take the listener's history (predictor.history_frames is 0)")
            return
        frames = self.pred.cfg.history_frames
        if history is None:
            raise ReactError(f"this model takes the listener's history (predictor.history_frames = {frames}): pass "
                             "each clip's history (the last frames of the listener's previous recording, or zeros)")
        past = torch.as_tensor(np.asarray(history, dtype=np.float32))
        if past.shape != (self.batch, frames, HISTORY_DIM) or not bool(torch.isfinite(past).all()):
            raise ReactError(f"listener history: expected finite ({self.batch}, {frames}, {HISTORY_DIM}) values "
                             f"(one history per clip), got {tuple(past.shape)}")
        with torch.no_grad():
            vectors = self.pred.past(history_model_space(past.to(self.device), self.tok))
        self._past.copy_(vectors.repeat_interleave(self.samples, 0))

    def reset(
        self,
        seeds: Sequence[int] | None = None,
        personality: Tensor | np.ndarray | None = None,
        history: Tensor | np.ndarray | None = None,
    ) -> None:
        """Start over at frame 0 (optionally with new seeds, one per clip, and for a model that takes
        them the new clips' listener traits and histories), keeping every state tensor's address so
        that captured steps stay valid."""
        if seeds is not None:
            seeds = [int(s) for s in seeds]
            if len(seeds) != self.batch:
                raise ReactError(f"reset: expected {self.batch} seeds (one per clip), got {len(seeds)}")
            self.seeds = seeds
        if personality is not None or (self.takes_personality and seeds is not None):
            self._set_personality(personality)
        if history is not None or (self.takes_history and seeds is not None):
            self._set_history(history)
        self.received = 0
        self._frame.zero_()
        for tree in (*self._enc_cache, *self._dec_cache["face"], *self._dec_cache["emotion"],
                     self._spk_cache, self._lst_cache):
            tree.clear_caches()
        self._tokens.fill_(self.pred.mask_id)
        if self._skip_history is not None:
            self._skip_history.zero_()
        if self._smoothed is not None:
            for t in self._smoothed:
                t.zero_()
        self._spread.zero_()
        self._inputs = []
        self._history = self._history[:, :0]

    def state_tensors(self) -> list[Tensor]:
        """Every tensor a cached step reads and updates in place (a captured graph's state)."""
        trees = (*self._enc_cache, *self._dec_cache["face"], *self._dec_cache["emotion"],
                 self._spk_cache, self._lst_cache)
        out = [t for tree in trees for cache in tree.caches() for t in cache.tensors()]
        out += [self._frame, self._tokens, self._spread]
        if self._traits is not None:
            out.append(self._traits)
        if self._past is not None:
            out.append(self._past)
        if self._skip_history is not None:
            out.append(self._skip_history)
        if self._smoothed is not None:
            out.extend(self._smoothed)
        return out

    @torch.no_grad()
    def _prime(self) -> None:
        """Run one full-size step on zeros, then reset: allocates the ring caches (their sizes are
        known at the first step) so that the state is complete before any capture."""
        self._step(*self._zeros(self.patch))
        self.reset()

    def _zeros(self, n: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        dev = self.device
        emotion = torch.zeros(self.batch, n, EMOTION_DIM, device=dev) if self.needs_emotion else None
        return (torch.zeros(self.batch, n, self.pred.audio_dim, device=dev),
                torch.zeros(self.batch, n, FACE_DIM, device=dev), emotion,
                torch.full((self.rows, n, self.pred.vocab_size), 0.5, device=dev))

    # -- public ----------------------------------------------------------------------------------
    @property
    def done(self) -> int:
        """Listener frames produced so far."""
        return self.received

    @torch.no_grad()
    def push(
        self,
        audio: Tensor | np.ndarray,
        face3dmm: Tensor | np.ndarray,
        emotion: Tensor | np.ndarray | None = None,
    ) -> ListenerFrames:
        """Feed (B, n, A) audio features, (B, n, 58) raw 3DMM and, for a model that takes it,
        (B, n, 25) emotion; get the n new listener frames of every clip, (B, K, n, ...)."""
        b = self.batch
        audio = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        face = torch.as_tensor(np.asarray(face3dmm, dtype=np.float32))
        if audio.ndim != 3 or audio.shape[0] != b or audio.shape[2] != self.pred.audio_dim:
            raise ReactError(
                f"speaker audio features: expected ({b}, n, {self.pred.audio_dim}), got {tuple(audio.shape)}"
            )
        if face.shape != (b, audio.shape[1], FACE_DIM):
            if face.ndim != 3 or face.shape[0] != b or face.shape[2] != FACE_DIM:
                raise ReactError(f"speaker 3DMM: expected ({b}, n, {FACE_DIM}), got {tuple(face.shape)}")
            raise ReactError(f"speaker audio has {audio.shape[1]} frames but 3DMM has {face.shape[1]}")
        inputs = [audio, face]
        if self.needs_emotion:
            if emotion is None:
                raise ReactError("this model takes the speaker's emotion as an input; pass it with the 3DMM")
            emo = torch.as_tensor(np.asarray(emotion, dtype=np.float32))
            if emo.shape != (b, audio.shape[1], EMOTION_DIM):
                raise ReactError(
                    f"speaker emotion: expected ({audio.shape[1]}, {EMOTION_DIM}) per clip, got {tuple(emo.shape)}"
                )
            inputs.append(emo)
        if not all(bool(torch.isfinite(x).all()) for x in inputs):
            raise ReactError("speaker input contains NaN or inf")
        inputs = [x.to(self.device) for x in inputs]
        start, n = self.received, audio.shape[1]
        steps = []
        for lo in range(0, n, self.patch):
            piece = [x[:, lo : lo + self.patch] for x in inputs]
            steps.append(self._advance(piece[0], piece[1], piece[2] if self.needs_emotion else None))
        k = self.samples
        eeg = None
        if not steps:
            if self.pred.eeg_head is not None:
                eeg = torch.empty(b, k, 0, EEG_DIM)
            return ListenerFrames(torch.empty(b, k, 0, FACE_DIM), torch.empty(b, k, 0, EMOTION_DIM), start, eeg)
        face_out = torch.cat([s[0] for s in steps], 1).view(b, k, n, FACE_DIM).cpu()
        emotion_out = torch.cat([s[1] for s in steps], 1).view(b, k, n, EMOTION_DIM).cpu()
        if self.pred.eeg_head is not None:
            eeg = torch.cat([s[2] for s in steps], 1).view(b, k, n, EEG_DIM).cpu()
        return ListenerFrames(face_out, emotion_out, start, eeg)

    # -- one step of n <= patch frames -------------------------------------------------------------
    def _noise(self, lo: int, hi: int) -> Tensor:
        rows = [_uniform(seed, lo, hi, self.samples, self.pred.vocab_size) for seed in self.seeds]
        return torch.cat(rows).to(self.device)

    def _advance(self, audio: Tensor, face: Tensor, emotion: Tensor | None) -> tuple[Tensor, ...]:
        n = audio.shape[1]
        uniform = self._noise(self.received, self.received + n)
        if self.cache == "none":
            out = self._full_step(audio, face, emotion, uniform)
        elif self.capture and n in (1, self.patch):
            graph = self._graphs.get(n)
            if graph is None:
                graph = self._graphs[n] = CapturedStep(self, n)
            out = graph(audio, face, emotion, uniform) if graph.ok else self._step(audio, face, emotion, uniform)
        else:
            out = self._step(audio, face, emotion, uniform)
        self.received += n
        return out

    def _step(self, audio: Tensor, face: Tensor, emotion: Tensor | None, uniform: Tensor) -> tuple[Tensor, ...]:
        """Frames [f, f + n) of every clip with the KV caches (f = the device frame counter).

        The capturable step: fixed shapes for a given n, every state update in place, no value read
        back to the host and no branch on a tensor value. Returns face (B*K, n, 58), emotion (B*K, n, 25)
        and, for a model with an EEG head, its estimate (B*K, n, 14).
        """
        n = audio.shape[1]
        pos = self._frame + self._arange[:n]
        _, tokens = self.tok.encode(face, pos, self._enc_cache)
        memory = self.pred.speaker(audio, tokens, pos, cache=self._spk_cache, emotion=emotion)
        slots = torch.remainder(pos, self.patch)
        listener_in = self._tokens.index_select(1, slots)  # tokens of frames pos - patch (MASK before 0)
        state = self.pred.listener(listener_in, pos, memory, pos, cache=self._lst_cache, personality=self._traits,
                                   past=self._past)
        skip = None
        if self._skip_history is not None:
            features = self.pred.skip_features(audio, emotion)
            skip = self.pred.skip(features, self._skip_history)
            history = torch.cat((self._skip_history, features), 1)
            self._skip_history.copy_(history[:, history.shape[1] - self._skip_history.shape[1] :])
        new, head_emotion = self._sample(state, skip, uniform)
        self._tokens.index_copy_(1, slots, new)
        face_out, emotion_out = self.tok.decode_tokens(new, pos, self._dec_cache, emotion=self._decodes(head_emotion))
        self._frame += n
        return (*self._finish(face_out, self._emotion(head_emotion, emotion_out, pos), pos), *self._eeg(state))

    def _full_step(
        self, audio: Tensor, face: Tensor, emotion: Tensor | None, uniform: Tensor
    ) -> tuple[Tensor, ...]:
        """No-cache reference: every stream recomputed over frames [0, f + n)."""
        self._inputs.append((audio, face, emotion))
        lo, hi = self.received, self.received + audio.shape[1]
        audio_all = torch.cat([x[0] for x in self._inputs], 1)
        face_all = torch.cat([x[1] for x in self._inputs], 1)
        emotion_all = torch.cat([x[2] for x in self._inputs], 1) if emotion is not None else None
        full = torch.arange(hi, device=self.device)
        _, tokens = self.tok.encode(face_all)
        memory = self.pred.speaker(audio_all, tokens, full, emotion=emotion_all)
        # inputs of positions < hi read tokens < lo only (hi - lo <= patch): the filler is never read
        filler = torch.full((self.rows, hi - lo), self.pred.mask_id, dtype=torch.long, device=self.device)
        listener_in = self.pred.shift_listener(torch.cat((self._history, filler), 1))
        state = self.pred.listener(listener_in, full, memory, full, personality=self._traits, past=self._past)[:, lo:]
        skip = None
        if self.pred.emotion_skip is not None:
            skip = self.pred.skip(self.pred.skip_features(audio_all, emotion_all))[:, lo:]
        new, head_emotion = self._sample(state, skip, uniform)
        self._history = torch.cat((self._history, new), 1)
        face_out, emotion_out = self.tok.decode_tokens(self._history, emotion=self._decodes(head_emotion))
        face_out, emotion_out = face_out[:, lo:], None if emotion_out is None else emotion_out[:, lo:]
        return (*self._finish(face_out, self._emotion(head_emotion, emotion_out, full[lo:]), full[lo:]),
                *self._eeg(state))

    def _eeg(self, state: Tensor) -> tuple[Tensor, ...]:
        """The EEG head's per-frame estimate as a one-element tuple, or nothing without a head."""
        return () if self.pred.eeg_head is None else (self.pred.eeg(state),)

    def _sample(self, state: Tensor, skip: Tensor | None, uniform: Tensor) -> tuple[Tensor, Tensor | None]:
        """Sampled tokens (B*K, n) and the emotion head's estimate (None without a head)."""
        k = self.samples
        skip_rows = None if skip is None else skip.repeat_interleave(k, 0)
        logits, head_emotion = self.pred.heads(state, skip_rows, residual_scale=self.residual_scale)
        new = sample_tokens(logits, self._valid, self._top_k_rows, self._temperature_rows, uniform, self._kmax)
        return new, head_emotion

    def _decodes(self, head_emotion: Tensor | None) -> bool:
        """Whether the tokenizer's emotion decoder runs: it gives the emotion without a head, and
        the sampled paths' spread with one."""
        return head_emotion is None or self.sampled_weight != 0.0

    def _emotion(self, head: Tensor | None, decoded: Tensor | None, pos: Tensor) -> Tensor:
        """The emitted emotion before smoothing: decoded (no head), the head's, or the head's plus
        the sampled path's spread."""
        if head is None:
            return decoded
        if decoded is None:
            return head
        return sampled_emotion(head, decoded, self.samples, self.sampled_weight, self.sampled_smoothing,
                               self._spread, pos)

    def _finish(self, face: Tensor, emotion: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        face, emotion = self._smooth(face, emotion, pos)
        return face, project_emotion(emotion) if self.valid_emotion else emotion

    def _smooth(self, face: Tensor, emotion: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        """Causal exponential smoothing of (R, n, D) frames, continued across steps (frame 0 is
        emitted as it is)."""
        if self._smoothed is None:
            return face, emotion
        s = self.smoothing
        outputs = []
        for series, state in zip((face, emotion), self._smoothed, strict=True):
            prev, rows = state, []
            for i in range(series.shape[1]):
                x = series[:, i]
                prev = torch.where(pos[i] == 0, x, s * prev + (1.0 - s) * x)
                rows.append(prev)
            state.copy_(prev)
            outputs.append(torch.stack(rows, 1))
        return outputs[0], outputs[1]


class CapturedStep:
    """The static step of a :class:`BatchedReactionStream` for n frames, captured once as a CUDA graph.

    Inputs are copied into fixed buffers, the graph is replayed (one launch instead of hundreds of
    kernels), and the outputs are copied out. The graph updates the stream's state tensors in place,
    exactly as the eager step does, so captured and eager steps can alternate. Capture runs a few
    warm-up steps; the state is saved before and restored after, so capturing mid-stream changes
    nothing. Where capture fails, ``ok`` is False (with a warning) and the stream steps eagerly.
    """

    def __init__(self, stream: BatchedReactionStream, n: int) -> None:
        self.ok = False
        self.inputs = stream._zeros(n)
        saved = [t.clone() for t in stream.state_tensors()]
        try:
            device = stream.device
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(2):  # warm-up: lazy kernel and workspace set-up must not happen in capture
                    stream._step(*self.inputs)
            torch.cuda.current_stream(device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.outputs = stream._step(*self.inputs)
            self.ok = True
        except RuntimeError as exc:  # capture not supported by some op or driver: step eagerly
            warnings.warn(f"CUDA graph capture failed, stepping eagerly: {str(exc).splitlines()[0]}", stacklevel=2)
        finally:
            for t, value in zip(stream.state_tensors(), saved, strict=True):
                t.copy_(value)

    def __call__(self, audio: Tensor, face: Tensor, emotion: Tensor | None, uniform: Tensor) -> tuple[Tensor, ...]:
        for buffer, value in zip(self.inputs, (audio, face, emotion, uniform), strict=True):
            if buffer is not None:
                buffer.copy_(value)
        self.graph.replay()
        return tuple(out.clone() for out in self.outputs)


class ReactionStream:
    """Generate K listener reactions online for one speaker stream (a one-clip
    :class:`BatchedReactionStream`): push (n, A) audio, (n, 58) 3DMM and (n, 25) emotion, get
    (K, n, ...) listener frames. ``use_cache=False`` is ``cache="none"``; ``personality`` is the
    listener's (5,) traits, for a model trained with ``predictor.personality``; ``history`` the
    listener's (H, 84) history (``data/mars_history.py``), for one trained with ``predictor.history_frames``."""

    def __init__(
        self,
        model: ReactionModel,
        samples: int | None = None,
        top_k: int | Sequence[int] | None = None,
        temperature: float | Sequence[float] | None = None,
        seed: int = 0,
        use_cache: bool = True,
        cache: str | None = None,
        capture: bool | None = None,
        personality: Tensor | np.ndarray | None = None,
        history: Tensor | np.ndarray | None = None,
    ) -> None:
        kind = cache or ("static" if use_cache else "none")
        traits = None if personality is None else np.asarray(personality, dtype=np.float32).reshape(1, -1)
        past = None if history is None else np.asarray(history, dtype=np.float32)[None]
        self.stream = BatchedReactionStream(model, [seed], samples, top_k, temperature, kind, capture, traits, past)
        self.seed = int(seed)
        self.samples = self.stream.samples
        self.patch = self.stream.patch
        self.device = self.stream.device

    @property
    def received(self) -> int:
        return self.stream.received

    @property
    def done(self) -> int:
        return self.stream.done

    def reset(self) -> None:
        """Start over at frame 0 (same seed); captured steps stay valid."""
        self.stream.reset()

    def push(
        self,
        audio: Tensor | np.ndarray,
        face3dmm: Tensor | np.ndarray,
        emotion: Tensor | np.ndarray | None = None,
    ) -> ListenerFrames:
        """Feed speaker frames — (n, A) audio features, (n, 58) raw 3DMM and, for a model that takes
        it, (n, 25) emotion — and get the new listener frames (K, n, ...)."""
        audio = np.asarray(audio, dtype=np.float32)
        face = np.asarray(face3dmm, dtype=np.float32)
        if audio.ndim != 2 or audio.shape[1] != self.stream.pred.audio_dim:
            raise ReactError(
                f"speaker audio features: expected (n, {self.stream.pred.audio_dim}), got {tuple(audio.shape)}"
            )
        if face.ndim != 2 or face.shape[1] != FACE_DIM:
            raise ReactError(f"speaker 3DMM: expected (n, {FACE_DIM}), got {tuple(face.shape)}")
        if audio.shape[0] != face.shape[0]:
            raise ReactError(f"speaker audio has {audio.shape[0]} frames but 3DMM has {face.shape[0]}")
        emo = None
        if emotion is not None and self.stream.needs_emotion:
            emo = np.asarray(emotion, dtype=np.float32)
            if emo.shape != (audio.shape[0], EMOTION_DIM):
                raise ReactError(f"speaker emotion: expected ({audio.shape[0]}, {EMOTION_DIM}), got {tuple(emo.shape)}")
            emo = emo[None]
        out = self.stream.push(audio[None], face[None], emo)
        return ListenerFrames(out.face3dmm[0], out.emotion[0], out.start, None if out.eeg is None else out.eeg[0])

    def _uniform(self, lo: int, hi: int) -> Tensor:
        """This stream's sampling noise for frames [lo, hi): (K, hi - lo, V)."""
        return _uniform(self.seed, lo, hi, self.samples, self.stream.pred.vocab_size)


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
    cache: str | None = None,
    personality: np.ndarray | None = None,
    history: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stream one speaker clip through a :class:`ReactionStream`; returns (face3dmm (K,T,58), emotion (K,T,25)).

    ``emotion`` is the speaker's (T, 25) emotion, needed by models that take it (``predictor.speaker_emotion``);
    ``personality`` the listener's (5,) traits, needed by models trained with them (``predictor.personality``);
    ``history`` the listener's (H, 84) history, needed by models trained with ``predictor.history_frames``.

    ``chunk`` is how many speaker frames are pushed at a time, as a live system would receive them;
    the result does not depend on it beyond float rounding. Without ``chunk`` the clip runs as a
    batch of one through :func:`generate_batch` (whole patches, the last one padded after the end:
    by causality that changes no frame), so it is that driver's one-clip path bit for bit.
    ``cache`` picks the stream's cache (default ``"static"``, or ``"none"`` with ``use_cache=False``).
    """
    kind = cache or ("static" if use_cache else "none")
    audio = np.asarray(audio, dtype=np.float32)
    face3dmm = np.asarray(face3dmm, dtype=np.float32)
    if emotion is not None:
        emotion = pad_emotion(np.asarray(emotion, dtype=np.float32), len(audio))
    if chunk is None:
        clip = SpeakerClip(audio, face3dmm, emotion, personality, history)
        _, face, emo = next(generate_batch(
            model, [clip], [seed], samples, batch_clips=1, cache=kind, top_k=top_k, temperature=temperature
        ))
        return face, emo
    stream = ReactionStream(model, samples, top_k, temperature, seed, cache=kind, personality=personality,
                            history=history)
    faces, emotions = [], []
    for lo in range(0, len(audio), chunk):
        out = stream.push(
            audio[lo : lo + chunk], face3dmm[lo : lo + chunk], None if emotion is None else emotion[lo : lo + chunk]
        )
        faces.append(out.face3dmm)
        emotions.append(out.emotion)
    return torch.cat(faces, 1).numpy(), torch.cat(emotions, 1).numpy()


# -- batched generation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SpeakerClip:
    """One speaker input for :func:`generate_batch`: (T, A) audio features, (T, 58) raw 3DMM and,
    for models that take it, the (T or T - 1, 25) emotion (padded to T as training sees it) and
    the listener's (5,) traits (``predictor.personality``: the condition of REACT 2026's
    personalised tasks; the same for every frame, so it changes nothing of the online contract)
    and the listener's (H, 84) history (``predictor.history_frames``: the last frames of their
    previous recording, ``data/mars_history.py``; also before frame 0, so also online)."""

    audio: np.ndarray
    face3dmm: np.ndarray
    emotion: np.ndarray | None = None
    personality: np.ndarray | None = None
    history: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.audio)


#: Clips per batch on CPU when ``batch_clips`` is not given: on the demo's val split (24 clips,
#: tiny preset, K = 10) one batch of 24 took a third of the time of one clip at a time, and 2, 4
#: and 8 fell in between (bench/generate_bench.py); a batch costs B x K rows of small state.
CPU_BATCH_CLIPS = 24
#: Host memory the output arrays of one batch may take (B x K x T frames of 58 + 25 floats).
OUTPUT_BYTES = 2 * 2**30


def auto_batch_clips(model: ReactionModel, samples: int, frames: int, clips: int) -> int:
    """Clips per batch: on CUDA as many as half the free device memory holds (one step's memory per
    clip measured on the spot), on CPU :data:`CPU_BATCH_CLIPS`; never more than ``clips``, and
    never so many that the batch's outputs pass :data:`OUTPUT_BYTES` (long clips)."""
    device = next(model.predictor.parameters()).device
    per_clip_out = samples * frames * (FACE_DIM + EMOTION_DIM) * 4
    limit = max(1, min(clips, OUTPUT_BYTES // max(per_clip_out, 1)))
    if device.type != "cuda":
        return min(limit, CPU_BATCH_CLIPS)
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    stream = BatchedReactionStream(model, [0, 1], samples, cache="static", capture=False)
    with torch.no_grad():
        stream._step(*stream._zeros(stream.patch))
    per_clip = max(1, (torch.cuda.max_memory_allocated(device) - base) // 2)
    del stream
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(limit, int(0.5 * free // per_clip)))


def generate_batch(
    model: ReactionModel,
    clips: Sequence[SpeakerClip],
    seeds: Sequence[int],
    samples: int | None = None,
    batch_clips: int | None = None,
    lengths: Sequence[int] | None = None,
    cache: str = "static",
    capture: bool | None = None,
    top_k: int | Sequence[int] | None = None,
    temperature: float | Sequence[float] | None = None,
    by_length: bool = False,
    plan: Sequence[Sequence[int]] | None = None,
    eeg_every: int | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]] | Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """K reactions to each clip, B clips at a time as one :class:`BatchedReactionStream`.

    Yields ``(index, face3dmm (K, T_i, 58), emotion (K, T_i, 25))`` for every clip as its batch
    finishes. Batches are consecutive clips, yielded in index order (what a writer that appends
    samples in order needs), or with ``by_length`` cut from the clips sorted by length, longest
    first (the least padding, for clips of very different lengths; yielded in that order), or
    the groups of clip indices ``plan`` lists (:func:`length_plan`), in its order.
    Shorter clips of a batch are padded with zeros after their end, which by causality changes
    none of their frames. Clip i uses stream seed ``seeds[i]`` (and, for a model that takes them,
    its clip's listener traits and history): its reactions
    equal ``generate_reactions(..., seed=seeds[i])`` up to float rounding. ``clips`` may be lazy
    (``clips[i]`` is read when its batch starts; pass ``lengths`` to avoid reading every clip
    first); ``batch_clips`` defaults to :func:`auto_batch_clips`; ``top_k`` and ``temperature``
    (one value, or one per sample) default to the model's generation settings. Memory: one
    batch's inputs and outputs, and the streams' fixed-size state.

    ``eeg_every`` (a model with an EEG head, REACT 2026): also yield the EEG estimate read out at the
    last frame of every window of that many frames (``data/eeg_windows.py``: one per second at the
    data's fps), ``(index, face3dmm, emotion, eeg (K, ceil(T_i / eeg_every), 14))``.
    """
    if eeg_every is not None and model.predictor.eeg_head is None:
        raise ReactError("EEG output was asked for, but this model has no EEG head (predictor.eeg_head)")
    n = len(seeds)
    if len(clips) != n:
        raise ReactError(f"generate_batch: {len(clips)} clips but {n} seeds (one per clip)")
    if n == 0:
        return
    lengths = [len(clips[i]) for i in range(n)] if lengths is None else [int(x) for x in lengths]
    k = samples or model.config.generation.samples
    if plan is not None:
        groups = [list(map(int, g)) for g in plan]
        if sorted(i for g in groups for i in g) != list(range(n)) or not all(groups):
            raise ReactError(f"generate_batch: the plan must list every clip 0..{n - 1} exactly once")
    else:
        batch = batch_clips or auto_batch_clips(model, k, max(lengths), n)
        order = sorted(range(n), key=lambda i: (-lengths[i], i)) if by_length else list(range(n))
        groups = [order[first : first + batch] for first in range(0, n, batch)]
    takes_traits = model.predictor.personality_proj is not None
    takes_history = model.predictor.history_encoder is not None
    stream: BatchedReactionStream | None = None
    for group in groups:
        needs_emotion = bool(model.predictor.cfg.speaker_emotion)
        group_clips = [clips[i] for i in group]
        inputs = _padded(group_clips, model.predictor.audio_dim, needs_emotion, model.predictor.cfg.patch)
        traits = _traits(group_clips) if takes_traits else None
        past = _histories(group_clips) if takes_history else None
        seeds_here = [int(seeds[i]) for i in group]
        if stream is not None and stream.batch == len(group):
            stream.reset(seeds_here, traits, past)  # keeps the captured steps
        else:
            stream = BatchedReactionStream(model, seeds_here, k, top_k, temperature, cache, capture, traits, past)
        frames = inputs[0].shape[1]
        face_out = np.empty((len(group), k, frames, FACE_DIM), np.float32)
        emotion_out = np.empty((len(group), k, frames, EMOTION_DIM), np.float32)
        chunk = stream.patch * max(1, 256 // stream.patch)
        ends = [] if eeg_every is None else [eeg_window_ends(lengths[i], eeg_every) for i in group]
        eeg_out = [np.empty((k, len(e), EEG_DIM), np.float32) for e in ends]
        for lo in range(0, frames, chunk):
            out = stream.push(*[None if x is None else x[:, lo : lo + chunk] for x in inputs])
            face_out[:, :, lo : lo + chunk] = out.face3dmm.numpy()
            emotion_out[:, :, lo : lo + chunk] = out.emotion.numpy()
            for j, e in enumerate(ends):  # the window ends this chunk holds
                first, last = np.searchsorted(e, lo), np.searchsorted(e, lo + chunk)
                eeg_out[j][:, first:last] = out.eeg[j].numpy()[:, e[first:last] - lo]
        for j, i in enumerate(group):
            if eeg_every is not None:
                yield i, face_out[j, :, : lengths[i]], emotion_out[j, :, : lengths[i]], eeg_out[j]
            else:
                yield i, face_out[j, :, : lengths[i]], emotion_out[j, :, : lengths[i]]


def _traits(clips: Sequence[SpeakerClip]) -> np.ndarray:
    """(B, 5) listener traits of a batch's clips, for a model that takes them."""
    if any(c.personality is None for c in clips):
        raise ReactError("this model takes the listener's personality (predictor.personality); a clip has none")
    return np.stack([np.asarray(c.personality, dtype=np.float32) for c in clips])


def _histories(clips: Sequence[SpeakerClip]) -> np.ndarray:
    """(B, H, 84) listener histories of a batch's clips, for a model that takes them."""
    if any(c.history is None for c in clips):
        raise ReactError("this model takes the listener's history (predictor.history_frames); a clip has none")
    shapes = sorted({np.shape(c.history) for c in clips})
    if len(shapes) > 1:
        raise ReactError(f"listener histories of different shapes in one batch: {shapes}")
    return np.stack([np.asarray(c.history, dtype=np.float32) for c in clips])


#: Host memory the output arrays of one batch may take in :func:`length_plan` (long MARS clips).
PLAN_OUTPUT_BYTES = 512 * 2**20


def length_plan(
    lengths: Sequence[int], batch_clips: int, samples: int, budget: int = PLAN_OUTPUT_BYTES
) -> list[list[int]]:
    """Batches for clips of very different lengths (MARS: 58 to 20 000+ frames): the clips sorted
    longest first (ties in index order) and cut into groups of at most ``batch_clips``, each
    group also small enough that its output arrays (B x K x its longest clip x 83 floats) stay
    within ``budget`` bytes (one clip at least). Clips of one batch then have similar lengths, so
    little time goes to the padding after the shorter ones' ends, and memory stays bounded
    whatever the lengths."""
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    groups: list[list[int]] = []
    per_frame = samples * (FACE_DIM + EMOTION_DIM) * 4
    for i in order:
        if groups:
            group = groups[-1]
            longest = int(lengths[group[0]])
            if len(group) < batch_clips and (len(group) + 1) * longest * per_frame <= budget:
                group.append(i)
                continue
        groups.append([i])
    return groups


def _padded(
    clips: Sequence[SpeakerClip], audio_dim: int, needs_emotion: bool, patch: int
) -> list[np.ndarray | None]:
    """(B, T, ...) audio, 3DMM and emotion (or None), zeros after each clip's end; T is the longest
    clip rounded up to whole patches, so that every step has ``patch`` frames (one step shape to
    capture, and the same step shapes for a clip alone as in a batch)."""
    frames = -(-max(len(c) for c in clips) // patch) * patch
    audio = np.zeros((len(clips), frames, audio_dim), np.float32)
    face = np.zeros((len(clips), frames, FACE_DIM), np.float32)
    emotion = np.zeros((len(clips), frames, EMOTION_DIM), np.float32) if needs_emotion else None
    for j, clip in enumerate(clips):
        t = len(clip)
        audio[j, :t] = clip.audio
        face[j, :t] = clip.face3dmm
        if emotion is not None:
            if clip.emotion is None:
                raise ReactError("this model takes the speaker's emotion as an input; a clip has none")
            emotion[j, :t] = pad_emotion(np.asarray(clip.emotion, dtype=np.float32), t)
    return [audio, face, emotion]


# -- batch drivers used by ``react generate`` ------------------------------------------------------
GENERATION_ONLY = frozenset({"generation"})


def load_for_generation(
    checkpoint: Path, device: torch.device, overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ReactionModel:
    """The stored model, its configuration built by the one layered loader with the checkpoint's
    settings as the base layer; ``REACT_GENERATION__*`` and ``overrides`` may change only
    ``generation.*`` (the model's own settings are fixed by its weights)."""
    return load_generation_model(checkpoint, device, overrides, environ)[0]


@dataclass(frozen=True)
class ModelFacts:
    """What a predictor checkpoint says about the data it was trained on, beyond its config:
    the REACT ``edition`` (and so the frame rate generation runs at) and whether its audio
    features were causal. ``audio_causal`` False (MARS ``audio.encoder = "release"``: the
    release's wav2vec2 features, whose transformer saw the whole recording) makes every output
    an *offline* one, however online the stream itself is."""

    edition: str = "2024"
    audio_causal: bool = True

    @property
    def fps(self) -> int:
        from reactcli.editions import edition

        return edition(self.edition).fps

    @property
    def mode(self) -> str:
        """``"online"`` or ``"offline"``: what records and printouts call the model."""
        return "online" if self.audio_causal else "offline"


def checkpoint_facts(checkpoint: Path, data: Mapping[str, Any]) -> ModelFacts:
    """The :class:`ModelFacts` a loaded checkpoint stores (checkpoints from before the keys
    existed were trained on REACT 2024 with causal features)."""
    from reactcli.editions import EDITIONS

    edition = data.get("edition", "2024")
    causal = data.get("audio_causal", True)
    if edition not in EDITIONS or not isinstance(causal, bool):
        raise ReactError(path=checkpoint, problem=f"stored edition {edition!r} / audio_causal {causal!r} are invalid")
    return ModelFacts(str(edition), causal)


def load_generation_model(
    checkpoint: Path, device: torch.device, overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[ReactionModel, ModelFacts]:
    """:func:`load_for_generation`, and the checkpoint's :class:`ModelFacts`."""
    from reactcli.config import load_config
    from reactcli.models.checkpoint import load_reaction_model

    model, data = load_reaction_model(checkpoint, device)
    model.config = load_config(
        overrides=overrides, environ=environ, base=(str(checkpoint), data["config"]), only=GENERATION_ONLY
    )
    return model, checkpoint_facts(checkpoint, data)


def check_model_edition(facts: ModelFacts, data_edition: str, checkpoint: Path, root: Path) -> None:
    """A checkpoint generates only for the edition it was trained on: REACT 2024 runs at 25 fps
    on NoXI/RECOLA, MARS at 30 fps, and a 2026 model may take the listener's traits, which 2025
    data lacks. One line naming both otherwise."""
    if facts.edition != data_edition:
        hint = " (or pass --edition to read the root as another MARS edition)" if data_edition != "2024" else ""
        raise ReactError(
            path=checkpoint,
            problem=f"trained on REACT {facts.edition} data, but {root} is read as REACT {data_edition}; "
            f"generate with a model trained on this edition{hint}",
        )


def iter_reactions(
    model: ReactionModel, dataset: ReactClipDataset, samples: int, seed: int, speaker_of: Sequence[int] | None = None,
    description: str = "generating reactions", batch_clips: int | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(n, face3dmm (K, 751, 58), emotion (K, 750, 25))`` for every sample of ``dataset`` in order,
    ``batch_clips`` clips at a time as one batched stream (:func:`generate_batch`; default
    :func:`auto_batch_clips`), so a writer can put each batch on disk before the next is made.

    Sample n uses the stream seed ``sample_seed(seed, n)``, so a clip's reactions do not depend on
    which other clips are generated or batched with it. ``speaker_of[n]`` feeds sample n the
    speaker input of another sample (the speaker-shuffle ablation of ``bench/quality_bench.py``);
    by default every sample gets its own speaker.
    """
    from reactcli.progress import track
    from reactcli.vocab import CLIP_FRAMES, EMOTION_FRAMES

    n = len(dataset)
    speakers = _DatasetSpeakers(dataset, range(n) if speaker_of is None else [int(i) for i in speaker_of])
    seeds = [sample_seed(seed, i) for i in range(n)]
    batches = generate_batch(model, speakers, seeds, samples, batch_clips, lengths=[CLIP_FRAMES] * n)
    for i, face, emotion in track(batches, f"{description} (K={samples})", total=n):
        yield i, face, emotion[:, :EMOTION_FRAMES]


def generate_dataset(
    model: ReactionModel, dataset: ReactClipDataset, samples: int, seed: int, speaker_of: Sequence[int] | None = None,
    description: str = "generating reactions", batch_clips: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """K reactions for every sample of ``dataset`` in memory: emotion (N, K, 750, 25) and face3dmm (N, K, 751, 58).

    Arrays are stacked speaker-major: ``emotion[n, k]`` is reaction k to speaker sample n (the
    released code reshaped pass-major output as speaker-major: defect 4, docs/model.md). The seeds,
    ``speaker_of`` and ``batch_clips`` are those of :func:`iter_reactions`.
    """
    emotions, faces = [], []
    for _, face, emotion in iter_reactions(model, dataset, samples, seed, speaker_of, description, batch_clips):
        faces.append(face)
        emotions.append(emotion)
    return np.stack(emotions), np.stack(faces)


class _DatasetSpeakers:
    """The speaker inputs of a dataset's samples as :class:`SpeakerClip` s, read when asked for."""

    def __init__(self, dataset: ReactClipDataset, index: Sequence[int]) -> None:
        self.dataset, self.index = dataset, list(index)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> SpeakerClip:
        clip = self.dataset.clip(self.index[i])
        return SpeakerClip(clip["speaker_audio"], clip["speaker_3dmm"], clip["speaker_emotion"])


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
    overrides: Mapping[str, Mapping[str, Any]] | None = None, batch_clips: int | None = None,
) -> dict:
    """Generate K reactions for every mirrored sample of ``split`` (``batch_clips`` clips at a time as
    one batched stream) into the prediction set ``out``
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
    model, facts = load_generation_model(checkpoint, device, overrides)
    check_model_edition(facts, "2024", checkpoint, Path(root))
    dataset = ReactClipDataset(Path(root), split, model.config)
    k = model.config.generation.samples
    ids = sample_ids(dataset.samples)
    need = predicted_bytes(k, [EMOTION_FRAMES] * len(ids), [CLIP_FRAMES] * len(ids))
    record = generation_record(model, checkpoint, seed, split)
    with PredictionWriter(out, k, record, need_bytes=need) as writer:
        batches = iter_reactions(model, dataset, k, seed, description=f"generating {split} reactions",
                                 batch_clips=batch_clips)
        for n, face, emotion in batches:
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
