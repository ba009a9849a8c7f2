"""A synthetic REACT 2024 dataset in exactly the real layout, with learnable dyadic structure.

The real data is licence-gated, so demos and tests need a stand-in that exercises every code path
*and* rewards a model that learns. The generator works per conversation clip (one CSV row, two
people A and B), frame by frame at 25 fps (751 frames):

1. **Latent behaviour.** Each person gets, per clip, one of four behaviour types (cheerful,
   talkative, brow-expressive, serious); the two people of a clip always get different types.
   The type sets how long the person's speaking turns last and the rates of its own expressive
   events *while speaking*: smiles (1.5 s bumps), brow raises and frowns.
2. **Turn taking.** The conversation is generated turn by turn: one person holds the floor
   (speech with a 3.5-5 Hz syllable rhythm), a 0.2-0.8 s pause, then usually the other. So each
   clip is a speaker while it talks and a listener while the other talks, and both directions of
   the mirrored order carry the same structure.
3. **Listening style.** Each person (session + role) has a fixed style (mirror smiler, nodder,
   brow raiser) and a reaction delay of 0.2-1.0 s. Its face adds a delayed reaction to the other
   person's events in that style: smiling back, nodding (head pitch) to speech energy, raising the
   brows at smiles and brow raises, a concerned frown at frowns. No style copies the speaker: the
   listener's jaw is closed while the other talks, and a smile may be answered by raised brows.
4. **Face** (``3D_FV_files``): the real per-dim mean + 0.25 real std of Ornstein-Uhlenbeck noise +
   own events (jaw open from the voice, smile, brows, frown, random blinks) + reactions, expression
   clipped to [0, 1]; rotation/translation = real mean + noise + nods. The real REACT 2024 mean and
   std (``resources/face_stats_react2024.npz``; rotation x about pi) set every scale.
5. **Emotion** (750 x 25) is derived from the face, as a facial-analysis tool would: an AU fires
   when its blendshapes exceed mean + 0.8 std (some never fire, as some real AUs rarely do),
   valence follows smile minus brow-lowering and frown, arousal follows face and head motion and
   jaw opening, and the 8 expression probabilities are a softmax of expression evidence.
6. **Audio** (44.1 kHz 16-bit PCM, 30.02 s, every other clip stereo) is a harmonic voice whose
   envelope is the same speech x syllable signal that opens the jaw: audio follows the face.
7. **Video** (optional; 256x256, 25 fps, 751 frames, H.264 mp4 or 1.png..751.png folders) is a
   cheaply drawn face whose eyes, brows, mouth and head follow the 3DMM.

What a model can learn: the listener's face at frame t is predictable from the speaker's voice and
face up to t (reaction timing, turn taking) but not equal to it (styles differ from the speaker's
own behaviour, jaw anti-correlated). On the demo's 24 train / 12 val pairs the Ridge baseline of
``react baselines`` (``metrics/ridge.py``: a causal linear regression from the speaker's emotion and
audio features of the last 1.6 s, fitted on train) beats Mime (a copy of the speaker) and Random on
FRC and FRD (README's demo table: FRC 2.09 vs 0.65 and 0.03, FRD 57.3 vs 68.3 and 211.5).

The appropriateness matrix marks, for sample n, exactly the samples j whose *speaker* had the same
behaviour type in its clip (so the diagonal is 1), in the mirrored order of the split.

Clip names come from the real pair lists (``resources/*_pairs.csv``); the val split always
contains the four clips the challenge asked teams to render, and every split of 4+ rows a RECOLA pair.
3DMM files are stored as (751, 1, 58) or (751, 58) (both occur), every fourth row with a
``_full.npy`` twin; ``emotion_dirs="p1p2"`` writes the 2024 P1/P2 Emotion folder names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from reactcli.atomic import atomic_folder, atomic_path, save_npy, save_text
from reactcli.data.layout import SPLITS, SUBMISSION_CLIPS, Pair, mirrored, p1p2_name
from reactcli.errors import ReactError
from reactcli.vocab import (
    AUDIO_RATE,
    CLIP_FRAMES,
    EMOTION_COLUMNS,
    EMOTION_FRAMES,
    EXPRESSION,
    EXPRESSION_DIM,
    FACE_DIM,
    FPS,
    ROTATION,
)

RX, RY = ROTATION.start, ROTATION.start + 1  # head rotation about x (nod) and y (turn)


def _lr(stem: str) -> slice:
    """The Left and Right expression dims of an ARKit blendshape, e.g. ``mouthSmile`` -> 43:45."""
    left, right = EXPRESSION[f"{stem}Left"], EXPRESSION[f"{stem}Right"]
    assert right == left + 1, stem
    return slice(left, right + 1)


def _dims(*names: str) -> tuple[int, ...]:
    """Expression dims by name; ``stem*`` stands for the stem's Left and Right dims."""
    out: list[int] = []
    for name in names:
        out += list(range(_lr(name[:-1]).start, _lr(name[:-1]).stop)) if name.endswith("*") else [EXPRESSION[name]]
    return tuple(out)

AUDIO_SECONDS = 30.02
N_BEHAVIOURS = 4
N_STYLES = 3
VIDEO_SIZE = 256

# per behaviour type: (mean turn length s, smiles, brow raises, frowns per 10 s of speaking)
BEHAVIOUR_RATES = np.array(
    [
        [3.0, 3.0, 0.5, 0.2],  # cheerful
        [6.0, 0.7, 1.0, 0.5],  # talkative
        [3.5, 0.8, 3.0, 0.3],  # brow-expressive
        [2.0, 0.3, 0.3, 2.0],  # serious
    ]
)
# per listening style: gains of (smile back, nod to speech, brow raise, concern at frowns)
STYLE_GAINS = np.array(
    [
        [0.9, 0.3, 0.1, 0.6],  # mirror smiler
        [0.3, 1.0, 0.3, 0.3],  # nodder
        [0.2, 0.4, 0.9, 0.9],  # brow raiser
    ]
)


def face_stats() -> tuple[np.ndarray, np.ndarray]:
    """Real REACT 2024 per-dim 3DMM mean and std (58,), bundled with the package."""
    with resources.files("reactcli.resources").joinpath("face_stats_react2024.npz").open("rb") as fh:
        data = np.load(fh)
        return data["mean"].astype(np.float32), data["std"].astype(np.float32)


def real_pairs(split: str) -> list[Pair]:
    """Pair rows of the real REACT 2024 lists (session names are facts, copied into the package)."""
    text = resources.files("reactcli.resources").joinpath(f"{split}_pairs.csv").read_text()
    rows = [line.split(",") for line in text.strip().splitlines()[1:]]
    return [Pair(int(r[0]), r[1], r[2]) for r in rows]


@dataclass
class Person:
    """One side of a conversation clip: its turns and own events, and its fixed listening traits."""

    behaviour: int
    style: int
    delay: int  # reaction delay in frames
    f0: float
    speech: np.ndarray  # (T,) 1 while holding the floor
    syllable: np.ndarray  # (T,) in [0, 1], 4 Hz-ish syllable rhythm
    smile: np.ndarray  # (T,) own smile events
    brow: np.ndarray  # (T,) own brow raises
    frown: np.ndarray  # (T,) own frowns
    fps: int = FPS
    gains: np.ndarray | None = None  # listening gains (4,) overriding STYLE_GAINS[style] (MARS: from traits)

    @property
    def voice(self) -> np.ndarray:
        return self.speech * self.syllable


def _bumps(
    rng: np.random.Generator,
    rate_per_10s: float,
    length: int,
    amplitude: tuple[float, float],
    where: np.ndarray | None = None,
    frames: int = CLIP_FRAMES,
    fps: int = FPS,
) -> np.ndarray:
    """Raised-cosine events of ``length`` frames at Poisson times (only where ``where`` is 1)."""
    signal = np.zeros(frames + length)
    n = rng.poisson(rate_per_10s * frames / (10 * fps))
    shape = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / (length - 1))
    for start in rng.integers(0, frames, size=n):
        if where is None or where[start] > 0:
            signal[start : start + length] += rng.uniform(*amplitude) * shape
    return np.minimum(signal[:frames], 1.2)


def at_fps(frames_at_25: int, fps: int) -> int:
    """A duration given in 25 fps frames, in frames at ``fps`` (unchanged at 25 fps)."""
    return frames_at_25 if fps == FPS else max(1, round(frames_at_25 * fps / FPS))


def listening_traits(rng: np.random.Generator) -> tuple[int, int, float]:
    """A person's fixed listening style, reaction delay (frames at 25 fps) and voice pitch (Hz)."""
    return int(rng.integers(N_STYLES)), int(rng.integers(5, 26)), float(rng.uniform(100, 220))


def pair_behaviours(rng: np.random.Generator) -> tuple[int, int]:
    """Two *different* behaviour types for the two people of a clip.

    Were they equal, the mirrored twin of a sample (same clip, roles swapped) would be its
    neighbour, and its listener is this sample's speaker: copying the speaker (Mime) would then
    score like the ground truth on a quarter of the samples.
    """
    first = int(rng.integers(N_BEHAVIOURS))
    return first, (first + 1 + int(rng.integers(N_BEHAVIOURS - 1))) % N_BEHAVIOURS


def conversation(
    rng: np.random.Generator, behaviour_a: int, behaviour_b: int, frames: int = CLIP_FRAMES, fps: int = FPS
) -> tuple[np.ndarray, np.ndarray]:
    """Turn-taking: who holds the floor, frame by frame (a gap of 0.2-0.8 s between turns)."""
    talk = (BEHAVIOUR_RATES[behaviour_a, 0], BEHAVIOUR_RATES[behaviour_b, 0])
    floor = np.zeros((2, frames))
    t = int(rng.integers(0, fps))
    holder = int(rng.random() < talk[1] / (talk[0] + talk[1]))
    while t < frames:
        length = int(np.clip(rng.exponential(talk[holder] * fps), fps, 8 * fps))
        floor[holder, t : t + length] = 1.0
        t += length + int(rng.integers(fps // 5, 4 * fps // 5))
        holder = 1 - holder if rng.random() < 0.85 else holder
    return floor[0], floor[1]


def make_person(
    rng: np.random.Generator,
    behaviour: int,
    style: int,
    delay: int,
    f0: float,
    speech: np.ndarray,
    fps: int = FPS,
    gains: np.ndarray | None = None,
) -> Person:
    """Own events of one person: mostly while holding the floor, at the rates of its behaviour type.

    The clip length is ``len(speech)``; event lengths are given at 25 fps and scaled to ``fps``.
    """
    _, smile_rate, brow_rate, frown_rate = BEHAVIOUR_RATES[behaviour]
    phase = rng.uniform(0, 2 * np.pi)
    rate = rng.uniform(3.5, 5.0)
    frames = len(speech)
    t = np.arange(frames) / fps
    syllable = 0.5 + 0.5 * np.sin(2 * np.pi * rate * t + phase + 0.5 * np.sin(2 * np.pi * 0.3 * t))
    # Events fall only in speaking turns (rates per 10 s of speaking): while listening, a face
    # shows reactions, not events of its own.
    return Person(
        behaviour=behaviour,
        style=style,
        delay=delay,
        f0=f0,
        speech=speech,
        syllable=syllable,
        smile=_bumps(rng, smile_rate, at_fps(38, fps), (0.6, 1.0), speech, frames, fps),
        brow=_bumps(rng, brow_rate, at_fps(30, fps), (0.6, 1.0), speech, frames, fps),
        frown=_bumps(rng, frown_rate, at_fps(45, fps), (0.6, 1.0), speech, frames, fps),
        fps=fps,
        gains=gains,
    )


def reactions(listener: Person, speaker: Person) -> dict[str, np.ndarray]:
    """The listener's delayed response to the other person's drivers, in the listener's style.

    No style is a copy of the speaker: smiles may be answered by brow raises, frowns by a
    concerned brow, speech by nods; and the jaw stays closed while the other one talks.
    """
    d = listener.delay
    smile = _lag(speaker.smile, d)
    brow = _lag(speaker.brow, d)
    frown = _lag(speaker.frown, d)
    energy = _lag(_smooth(speaker.voice, at_fps(12, listener.fps)), d)
    g_smile, g_nod, g_brow, g_concern = STYLE_GAINS[listener.style] if listener.gains is None else listener.gains
    return {
        "smile": g_smile * smile,
        "nod": g_nod * energy,
        "brow": g_brow * (brow + 0.8 * smile),
        "concern": g_concern * frown,
    }


def _lag(signal: np.ndarray, frames: int) -> np.ndarray:
    return np.concatenate([np.zeros(frames), signal[: len(signal) - frames]]) if frames > 0 else signal


def _smooth(signal: np.ndarray, frames: int) -> np.ndarray:
    kernel = np.ones(frames) / frames
    return np.convolve(signal, kernel)[: len(signal)]  # causal moving average


def _ou(rng: np.random.Generator, shape: tuple[int, ...], theta: float = 0.08) -> np.ndarray:
    """Ornstein-Uhlenbeck noise with unit stationary variance (smooth, like real face jitter)."""
    from scipy.signal import lfilter

    scale = np.sqrt(1 - (1 - theta) ** 2)
    noise = rng.standard_normal(shape) * scale
    noise[0] = rng.standard_normal(shape[1:])
    return lfilter([1.0], [1.0, -(1 - theta)], noise, axis=0)


def make_face(rng: np.random.Generator, own: Person, other: Person, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(751, 58) 3DMM coefficients of one person: noise + own drivers + reactions to the other."""
    react = reactions(own, other)
    frames, fps = len(own.speech), own.fps
    face = mean + 0.25 * std * _ou(rng, (frames, FACE_DIM))
    exp = face[:, :EXPRESSION_DIM]
    smile = 0.7 * (own.smile + react["smile"])
    exp[:, _lr("mouthSmile")] += smile[:, None]
    exp[:, _lr("cheekSquint")] += 0.3 * smile[:, None]
    brow = 0.6 * (own.brow + react["brow"])
    exp[:, EXPRESSION["browInnerUp"]] += brow
    exp[:, _lr("browOuterUp")] += 0.8 * brow[:, None]
    frown = 0.5 * own.frown
    exp[:, _lr("browDown")] += (frown + 0.4 * react["concern"])[:, None]
    exp[:, _lr("mouthFrown")] += 0.5 * (frown + react["concern"])[:, None]
    exp[:, _lr("eyeSquint")] += 0.4 * frown[:, None]
    jaw = own.voice
    exp[:, EXPRESSION["jawOpen"]] += 0.35 * jaw
    exp[:, _lr("mouthLowerDown")] += 0.2 * jaw[:, None]
    blinks = _bumps(rng, 3.0, at_fps(5, fps), (0.8, 1.0), None, frames, fps)
    exp[:, _lr("eyeBlink")] += blinks[:, None]
    face[:, :EXPRESSION_DIM] = np.clip(exp, 0.0, 1.0)
    t = np.arange(frames) / fps
    nod = react["nod"] + 0.3 * _smooth(own.voice, at_fps(12, fps))
    face[:, RX] += 0.06 * nod * np.sin(2 * np.pi * 2.0 * t)
    return face.astype(np.float32)


def emotion_from_face(face: np.ndarray, mean: np.ndarray, std: np.ndarray, rows: int = EMOTION_FRAMES) -> np.ndarray:
    """(rows, 25) emotion rows derived from the face (which needs rows + 1 frames), in the REACT column order."""
    exp = face[:rows, :EXPRESSION_DIM].astype(np.float64)
    thr = mean[:EXPRESSION_DIM] + 0.8 * std[:EXPRESSION_DIM]

    def fires(*names: str) -> np.ndarray:
        idx = list(_dims(*names))
        return (exp[:, idx].mean(axis=1) > thr[idx].mean()).astype(np.float64)

    aus = np.stack(  # in the order of vocab.ACTION_UNITS: AU1, AU2, AU4, AU6, ... AU26
        [
            fires("browInnerUp"), fires("browOuterUp*"), fires("browDown*"), fires("cheekSquint*"),
            fires("eyeSquint*"), fires("noseSneer*"), fires("mouthUpperUp*"), fires("mouthSmile*"),
            fires("mouthDimple*"), fires("mouthFrown*"), fires("mouthShrugLower"), fires("mouthFunnel"),
            fires("mouthPress*"), fires("mouthLowerDown*"), fires("jawOpen"),
        ],
        axis=1,
    )  # fmt: skip
    smile = exp[:, _lr("mouthSmile")].mean(axis=1) - mean[_lr("mouthSmile")].mean()
    brow_up = exp[:, EXPRESSION["browInnerUp"]] - mean[EXPRESSION["browInnerUp"]]
    brow_down = exp[:, _lr("browDown")].mean(axis=1) - mean[_lr("browDown")].mean()
    jaw = exp[:, EXPRESSION["jawOpen"]] - mean[EXPRESSION["jawOpen"]]
    frown = exp[:, _lr("mouthFrown")].mean(axis=1) - mean[_lr("mouthFrown")].mean()
    steps = np.abs(np.diff(face[: rows + 1], axis=0))
    motion = steps[:, :EXPRESSION_DIM].mean(axis=1) + 0.5 * steps[:, ROTATION].sum(axis=1)
    valence = np.tanh(2.0 * smile - 1.5 * brow_down - 1.0 * frown)
    arousal = np.tanh(30.0 * (_smooth(motion, 10) - 0.02) + 1.5 * jaw)
    logits = np.stack(
        [
            np.full(len(exp), 1.0),  # Neutral
            6.0 * smile,  # Happy
            4.0 * frown,  # Sad
            3.0 * brow_up + 3.0 * jaw,  # Surprise
            2.0 * brow_up - 2.0 * smile - 0.5,  # Fear
            3.0 * (exp[:, _lr("noseSneer")].mean(axis=1) - mean[_lr("noseSneer")].mean()) - 1.0,  # Disgust
            4.0 * brow_down - 0.5,  # Anger
            2.0 * (exp[:, _lr("mouthDimple")].mean(axis=1) - mean[_lr("mouthDimple")].mean()) - 1.0,  # Contempt
        ],
        axis=1,
    )
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return np.concatenate([aus, valence[:, None], arousal[:, None], probs], axis=1).astype(np.float32)


def voice_audio(
    rng: np.random.Generator, person: Person, stereo: bool, rate: int = AUDIO_RATE, seconds: float = AUDIO_SECONDS
) -> np.ndarray:
    """16-bit PCM samples of a harmonic voice whose envelope is the speaking x syllable signal."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    envelope = np.interp(t * person.fps, np.arange(len(person.voice)) + 0.5, person.voice).astype(np.float32)
    # f0 * (1 + 0.05 sin(2 pi 0.7 t)) integrated in closed form: a slowly gliding pitch.
    vibrato = 2 * np.pi * 0.7
    glide = (0.05 / vibrato) * (1 - np.cos((vibrato * t).astype(np.float32)))
    phase = np.mod(2 * np.pi * person.f0 * (t + glide), 2 * np.pi).astype(np.float32)  # float32 sin is 10x faster
    s, c = np.sin(phase), np.cos(phase)
    sin2 = 2 * s * c
    voice = s + sin2 / 2 + (3 * s - 4 * s**3) / 3 + sin2 * (1 - 2 * s * s) / 2  # harmonics 1-4, 1/h
    signal = 0.25 * envelope * voice + 0.01 * rng.standard_normal(n, dtype=np.float32)
    if stereo:
        signal = np.stack([signal, 0.9 * signal + 0.005 * rng.standard_normal(n, dtype=np.float32)], axis=1)
    return (np.clip(signal, -1, 1) * 32767).astype(np.int16)


def draw_video(face: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(751, 128, 128, 3) uint8 frames of a drawn face; written out upscaled to 256x256.

    Drawn with PIL at half size: the video only has to follow blinks, jaw, smile, brows and head
    motion, and a cheap drawing keeps ``react synth`` (and the test fixtures) fast.
    """
    from PIL import Image, ImageDraw

    size = VIDEO_SIZE // 2
    frames = np.empty((len(face), size, size, 3), dtype=np.uint8)
    for i, f in enumerate(face):
        cx = size * (0.5 + 0.15 * float(f[RY] - mean[RY]))
        cy = size * (0.52 + 0.15 * float(f[RX] - mean[RX]))
        img = Image.new("RGB", (size, size), (20, 24, 32))
        draw = ImageDraw.Draw(img)
        draw.ellipse((cx - 0.32 * size, cy - 0.40 * size, cx + 0.32 * size, cy + 0.40 * size), fill=(214, 170, 140))
        blink = float(np.clip(f[_lr("eyeBlink")].mean(), 0, 1))
        brow_lift = 0.06 * float(np.clip(f[EXPRESSION["browInnerUp"]], 0, 1))
        eye_h = size * (0.035 * (1 - blink) + 0.004)
        for side in (-1, 1):
            ex, ey = cx + side * 0.12 * size, cy - 0.08 * size
            draw.ellipse((ex - 0.06 * size, ey - eye_h, ex + 0.06 * size, ey + eye_h), fill=(40, 40, 60))
            by = cy - (0.17 + brow_lift) * size
            brow_box = (ex - 0.07 * size, by - 0.012 * size, ex + 0.07 * size, by + 0.012 * size)
            draw.rectangle(brow_box, fill=(90, 60, 40))
        jaw = float(np.clip(f[EXPRESSION["jawOpen"]], 0, 1))
        smile = float(np.clip(f[_lr("mouthSmile")].mean(), 0, 1))
        mw, mh, my = (0.08 + 0.06 * smile) * size, (0.015 + 0.09 * jaw) * size, cy + 0.2 * size
        draw.ellipse((cx - mw, my - mh, cx + mw, my + mh), fill=(150, 40, 50))
        frames[i] = np.asarray(img)
    return frames


def write_video(path: Path, frames: np.ndarray, kind: str) -> None:
    """An H.264 mp4 (ffmpeg upscales to 256x256) or a folder of 1.png..751.png at 256x256."""
    if kind == "mp4":
        import imageio_ffmpeg

        with atomic_path(path) as tmp:
            writer = imageio_ffmpeg.write_frames(
                str(tmp),
                (frames.shape[2], frames.shape[1]),
                fps=FPS,
                codec="libx264",
                quality=None,
                macro_block_size=1,
                output_params=[
                    "-vf", f"scale={VIDEO_SIZE}:{VIDEO_SIZE}:flags=neighbor",
                    "-preset", "ultrafast", "-crf", "30", "-threads", "1", "-f", "mp4",
                ],
            )  # fmt: skip
            writer.send(None)
            writer.send(np.ascontiguousarray(frames).tobytes())
            writer.close()
    else:
        from PIL import Image

        path.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames, start=1):
            big = Image.fromarray(frame).resize((VIDEO_SIZE, VIDEO_SIZE), Image.NEAREST)
            with atomic_path(path / f"{i}.png") as tmp:
                big.save(tmp, format="PNG", compress_level=1)


def choose_pairs(split: str, count: int, rng: np.random.Generator) -> list[Pair]:
    """``count`` real rows of ``split``; val always starts with the four submission clips."""
    pool = real_pairs(split)
    chosen: list[Pair] = []
    if split == "val":
        chosen = [p for p in pool if p.speaker in SUBMISSION_CLIPS]
        if count < len(chosen):
            need = len(chosen)
            raise ReactError(f"--val-pairs {count}: the val split needs at least {need} pairs (the submission clips)")
    rest = [p for p in pool if p not in chosen]
    recola = [p for p in rest if p.speaker.startswith("RECOLA")]
    if count - len(chosen) >= 4 and recola and not any(p.speaker.startswith("RECOLA") for p in chosen):
        chosen.append(recola[int(rng.integers(len(recola)))])
        rest = [p for p in rest if p not in chosen]
    need = count - len(chosen)
    if need > len(rest):
        raise ReactError(f"{split} has only {len(pool)} real pairs, cannot make {count}")
    picks = rng.choice(len(rest), size=need, replace=False) if need > 0 else []
    chosen += [rest[i] for i in sorted(picks)]
    return [Pair(i, p.speaker, p.listener) for i, p in enumerate(chosen)]


def make_synthetic_dataset(
    out: Path,
    pairs: dict[str, int],
    video: str = "mp4",
    emotion_dirs: str = "roles",
    seed: int = 0,
    on_clip: Callable[[], None] | None = None,
    latents: dict[str, dict[str, int]] | None = None,
    on_split: Callable[[Path, str, list[Pair], list[dict[str, Person]]], None] | None = None,
) -> dict[str, list[Pair]]:
    """Write a dataset in the real layout under ``out``; returns the pair rows per split.

    ``on_clip`` is called after each conversation clip (for progress bars). A ``latents`` dict is
    filled with ``split -> {clip: behaviour type}`` (the hidden truth behind the neighbour
    matrices, for tests; the dataset itself has no such file, like the real one). ``on_split(root,
    split, rows, people)`` is called after each split with the staged dataset folder and, per row,
    its two people (speaker first): the ideal sampler (``data/ideal.py``) writes its sets from them.

    All or nothing: the dataset is written into a temporary folder beside ``out`` and swapped in at
    the end, so a full disk or Ctrl-C never leaves half a dataset, and an older dataset in ``out``
    (its feature cache included, which belongs to the old data) is either kept or replaced as a
    whole. A folder holding anything but a dataset's files is refused before any work.
    """
    if video not in ("mp4", "frames", "none"):
        raise ReactError(f"--video {video}: expected mp4, frames or none")
    if emotion_dirs not in ("roles", "p1p2"):
        raise ReactError(f"--emotion-dirs {emotion_dirs}: expected roles or p1p2")
    with atomic_folder(out, replaces=_dataset_entry) as root:  # every file goes into the staged folder
        mean, std = face_stats()
        master = np.random.default_rng(seed)
        people_traits: dict[str, tuple[int, int, float]] = {}  # person -> (style, delay, f0)

        def traits(person: str) -> tuple[int, int, float]:
            key = "/".join(person.split("/")[:3])
            if key not in people_traits:
                people_traits[key] = listening_traits(np.random.default_rng([seed, len(people_traits), 7]))
            return people_traits[key]

        written: dict[str, list[Pair]] = {}
        for split_no, split in enumerate(SPLITS):
            count = pairs.get(split, 0)
            if count <= 0:
                continue
            rows = choose_pairs(split, count, master)
            behaviour: dict[str, int] = {}
            row_people: list[dict[str, Person]] = []
            for row_no, row in enumerate(rows):
                rng = np.random.default_rng([seed, split_no, row_no])
                behaviour[row.speaker], behaviour[row.listener] = pair_behaviours(rng)
                floors = conversation(rng, behaviour[row.speaker], behaviour[row.listener])
                people = {
                    clip: make_person(rng, behaviour[clip], *traits(clip), speech=floor)
                    for clip, floor in zip((row.speaker, row.listener), floors, strict=True)
                }
                for k, (clip, other) in enumerate(((row.speaker, row.listener), (row.listener, row.speaker))):
                    face = make_face(rng, people[clip], people[other], mean, std)
                    _write_clip(root, split, clip, face, people[clip], rng, video, emotion_dirs, mean, std, row_no, k)
                row_people.append(people)
                if on_clip:
                    on_clip()
            header = ",speaker_path,listener_path\n"
            save_text(root / f"{split}.csv", header + "".join(f"{p.index},{p.speaker},{p.listener}\n" for p in rows))
            if split in ("val", "test"):
                groups = np.array([behaviour[s.speaker] for s in mirrored(rows)])
                save_npy(root / f"neighbour_emotion_{split}.npy", (groups[:, None] == groups[None, :]).astype(np.int64))
            written[split] = rows
            if latents is not None:
                latents[split] = behaviour
            if on_split is not None:
                on_split(root, split, rows, row_people)
    return written


def _dataset_entry(name: str) -> bool:
    """Whether a top-level entry belongs to a REACT dataset (so a folder of them may be replaced)."""
    return (name in SPLITS or name.endswith(".csv") or name.startswith("neighbour_") or name == ".react_cache"
            or name.startswith("ideal_"))  # the ideal sampler's sets (data/ideal.py)


def _write_clip(
    out: Path,
    split: str,
    clip: str,
    face: np.ndarray,
    person: Person,
    rng: np.random.Generator,
    video: str,
    emotion_dirs: str,
    mean: np.ndarray,
    std: np.ndarray,
    row_no: int,
    side: int,
) -> None:
    from scipy.io import wavfile

    base = out / split
    fv = base / "3D_FV_files" / f"{clip}.npy"
    # Exercise both stored shapes and the `_full` twins the real release has.
    save_npy(fv, face[:, None, :] if (row_no + side) % 3 else face)
    if row_no % 4 == 1:
        save_npy(fv.with_name(fv.stem + "_full.npy"), face[:, None, :])
    emotion = emotion_from_face(face, mean, std)
    name = p1p2_name(clip) if emotion_dirs == "p1p2" else clip
    lines = [",".join(EMOTION_COLUMNS)] + [",".join(f"{v:.6g}" for v in row) for row in emotion]
    save_text(base / "Emotion" / f"{name}.csv", "\n".join(lines) + "\n")
    wav = base / "Audio_files" / f"{clip}.wav"
    with atomic_path(wav) as tmp:
        wavfile.write(tmp, AUDIO_RATE, voice_audio(rng, person, stereo=(row_no + side) % 2 == 0))
    if video != "none":
        write_video(base / "Video_files" / (f"{clip}.mp4" if video == "mp4" else clip), draw_video(face, mean), video)
