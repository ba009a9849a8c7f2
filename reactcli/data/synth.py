"""A synthetic REACT 2024 dataset in exactly the real layout, with learnable dyadic structure.

The real data is licence-gated, so demos and tests need a stand-in that exercises every code path
*and* rewards a model that learns. The generator works per conversation clip (one CSV row, two
people A and B) and per 25 fps frame (751 frames, 30.04 s):

1. **Latent behaviour.** Each person gets, per clip, one of four behaviour types
   (cheerful, talkative, brow-expressive, calm) that set the rates of their own *driver* events:
   speech turns (with 4 Hz syllables), smiles (1.5 s bumps) and brow raises.
2. **Listening style.** Each person has a fixed listening style across their session (mirror
   smiler, nodder, brow raiser) and a reaction delay of 0.2-1.0 s. Their face adds a delayed
   reaction to the *other* person's drivers in that style: smiling back after a smile, nodding
   (head pitch) to speech energy, raising brows after the other's brow raises or smiles.
3. **Face.** 52 expression coefficients = real mean + 0.25 std of Ornstein-Uhlenbeck noise +
   own drivers (jaw open from speech, smile, brows, random blinks) + reactions, clipped to
   [0, 1]; rotation/translation = real mean + small noise + nods. The real per-dim mean/std of
   REACT 2024 (``resources/face_stats_react2024.npz``) set the scales.
4. **Emotion** (750 x 25) is derived from the face, as a facial-analysis tool would: AUs fire when
   their blendshapes exceed mean + 0.8 std (some rarely or never fire, like real AUs), valence
   follows smile minus brow-lowering, arousal follows motion energy, and the 8 expression
   probabilities are a softmax of expression evidence.
5. **Audio** (44.1 kHz, 16-bit, some stereo) is a harmonic voice whose envelope is the same
   speech x syllable signal that opens the jaw, so audio correlates with the speaker's face.
6. **Video** (optional, 256x256 at 25 fps, mp4 or PNG frame folders) is a drawn face following
   blinks, jaw, smile, brows and head motion.

Because both people have drivers and reactions, both directions of the mirrored order carry the
same structure: the listener's reaction is predictable from the speaker's face and voice (up to
the style, which a good model should sample from), but it is not a copy of the speaker's face.
The appropriateness matrix marks, for sample n, exactly the samples j whose *speaker* had the
same behaviour type in that clip (diagonal included), in the mirrored order of the split.

Clip names come from the real pair lists (``resources/*_pairs.csv``); the val split always
contains the four clips the challenge asked teams to render.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from reactcli.atomic import atomic_path, save_npy, save_text
from reactcli.data.layout import (
    AUDIO_RATE,
    CLIP_FRAMES,
    EMOTION_COLUMNS,
    EMOTION_FRAMES,
    FPS,
    SPLITS,
    SUBMISSION_CLIPS,
    Pair,
    mirrored,
    p1p2_name,
)
from reactcli.errors import ReactError

AUDIO_SECONDS = 30.02
N_BEHAVIOURS = 4
N_STYLES = 3
VIDEO_SIZE = 256

# driver rates per behaviour type: (speech fraction, smiles per 10 s, brow raises per 10 s)
BEHAVIOUR_RATES = np.array(
    [
        [0.40, 3.0, 0.5],  # cheerful
        [0.75, 0.5, 1.0],  # talkative
        [0.50, 1.0, 3.0],  # brow-expressive
        [0.25, 0.3, 0.3],  # calm
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
    """One side of a conversation clip: its drivers (own behaviour) and fixed traits."""

    behaviour: int
    style: int
    delay: int  # frames
    f0: float
    speech: np.ndarray  # (T,) 0/1 speaking
    syllable: np.ndarray  # (T,) in [0, 1]
    smile: np.ndarray  # (T,) event bumps
    brow: np.ndarray  # (T,)

    @property
    def voice(self) -> np.ndarray:
        return self.speech * self.syllable


def _bumps(rng: np.random.Generator, rate_per_10s: float, length: int, amplitude: tuple[float, float]) -> np.ndarray:
    """Raised-cosine events of 1.5 s at Poisson times."""
    signal = np.zeros(CLIP_FRAMES + length)
    n = rng.poisson(rate_per_10s * CLIP_FRAMES / (10 * FPS))
    shape = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / (length - 1))
    for start in rng.integers(0, CLIP_FRAMES, size=n):
        signal[start : start + length] += rng.uniform(*amplitude) * shape
    return np.minimum(signal[:CLIP_FRAMES], 1.2)


def _speech(rng: np.random.Generator, fraction: float) -> np.ndarray:
    """Alternating speaking / silent turns of 1-4 s with the given speaking fraction."""
    out = np.zeros(CLIP_FRAMES)
    t = 0
    speaking = rng.random() < fraction
    while t < CLIP_FRAMES:
        mean_len = 2.5 * FPS * (fraction if speaking else 1 - fraction) / 0.5
        length = int(np.clip(rng.exponential(mean_len), FPS // 2, 6 * FPS))
        out[t : t + length] = float(speaking)
        t += length
        speaking = not speaking
    return out


def _ou(rng: np.random.Generator, shape: tuple[int, ...], theta: float = 0.08) -> np.ndarray:
    """Ornstein-Uhlenbeck noise with unit stationary variance (smooth, like real face jitter)."""
    out = np.empty(shape)
    out[0] = rng.standard_normal(shape[1:])
    scale = np.sqrt(1 - (1 - theta) ** 2)
    noise = rng.standard_normal(shape) * scale
    for t in range(1, shape[0]):
        out[t] = (1 - theta) * out[t - 1] + noise[t]
    return out


def _lag(signal: np.ndarray, frames: int) -> np.ndarray:
    return np.concatenate([np.zeros(frames), signal[: len(signal) - frames]]) if frames > 0 else signal


def _smooth(signal: np.ndarray, frames: int) -> np.ndarray:
    kernel = np.ones(frames) / frames
    return np.convolve(signal, kernel)[: len(signal)]  # causal moving average


def make_person(rng: np.random.Generator, behaviour: int, style: int, delay: int, f0: float) -> Person:
    speech_frac, smile_rate, brow_rate = BEHAVIOUR_RATES[behaviour]
    phase = rng.uniform(0, 2 * np.pi)
    rate = rng.uniform(3.5, 5.0)
    t = np.arange(CLIP_FRAMES) / FPS
    syllable = 0.5 + 0.5 * np.sin(2 * np.pi * rate * t + phase + 0.5 * np.sin(2 * np.pi * 0.3 * t))
    return Person(
        behaviour=behaviour,
        style=style,
        delay=delay,
        f0=f0,
        speech=_speech(rng, speech_frac),
        syllable=syllable,
        smile=_bumps(rng, smile_rate, 38, (0.5, 1.0)),
        brow=_bumps(rng, brow_rate, 30, (0.5, 1.0)),
    )


def reactions(listener: Person, speaker: Person) -> dict[str, np.ndarray]:
    """The listener's delayed response to the speaker's drivers, in the listener's style."""
    d = listener.delay
    smile = _lag(speaker.smile, d)
    brow = _lag(speaker.brow, d)
    energy = _lag(_smooth(speaker.voice, 12), d)
    gains = {  # (smile, nod, brow) per style
        0: (0.9, 0.3, 0.1),  # mirror smiler
        1: (0.3, 1.0, 0.1),  # nodder
        2: (0.4, 0.3, 0.9),  # brow raiser
    }[listener.style]
    return {
        "smile": gains[0] * smile,
        "nod": gains[1] * energy,
        "brow": gains[2] * (brow + 0.5 * smile),
    }


def make_face(rng: np.random.Generator, own: Person, other: Person, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(751, 58) 3DMM coefficients for one person of a clip."""
    react = reactions(own, other)
    face = mean + 0.25 * std * _ou(rng, (CLIP_FRAMES, 58))
    exp = face[:, :52]
    smile = 0.7 * (own.smile + react["smile"])
    exp[:, 43:45] += smile[:, None]
    exp[:, 6:8] += 0.3 * smile[:, None]
    brow = 0.6 * (own.brow + react["brow"])
    exp[:, 2] += brow
    exp[:, 3:5] += 0.8 * brow[:, None]
    jaw = own.voice
    exp[:, 24] += 0.35 * jaw
    exp[:, 33:35] += 0.2 * jaw[:, None]
    blinks = _bumps(rng, 3.0, 5, (0.8, 1.0))
    exp[:, 8:10] += blinks[:, None]
    face[:, :52] = np.clip(exp, 0.0, 1.0)
    t = np.arange(CLIP_FRAMES) / FPS
    nod = react["nod"] + 0.3 * _smooth(own.voice, 12)
    face[:, 52] += 0.06 * nod * np.sin(2 * np.pi * 2.0 * t)
    return face.astype(np.float32)


def emotion_from_face(face: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(750, 25) emotion rows derived from the face, in the REACT column order."""
    exp = face[:EMOTION_FRAMES, :52].astype(np.float64)
    thr = mean[:52] + 0.8 * std[:52]

    def fires(*dims: int) -> np.ndarray:
        idx = list(dims)
        return (exp[:, idx].mean(axis=1) > thr[idx].mean()).astype(np.float64)

    aus = np.stack(
        [
            fires(2), fires(3, 4), fires(0, 1), fires(6, 7), fires(18, 19), fires(49, 50), fires(47, 48),
            fires(43, 44), fires(27, 28), fires(29, 30), fires(41), fires(31), fires(35, 36), fires(33, 34),
            fires(24),
        ],
        axis=1,
    )  # fmt: skip
    smile = exp[:, 43:45].mean(axis=1) - mean[43:45].mean()
    brow_up = exp[:, 2] - mean[2]
    brow_down = exp[:, 0:2].mean(axis=1) - mean[0:2].mean()
    jaw = exp[:, 24] - mean[24]
    frown = exp[:, 29:31].mean(axis=1) - mean[29:31].mean()
    motion = np.abs(np.diff(face[:EMOTION_FRAMES + 1, :52], axis=0)).mean(axis=1)
    valence = np.tanh(2.0 * smile - 1.5 * brow_down - 1.0 * frown)
    arousal = np.tanh(30.0 * (_smooth(motion, 10) - 0.02) + 1.5 * jaw)
    logits = np.stack(
        [
            np.full(len(exp), 1.0),  # Neutral
            6.0 * smile,  # Happy
            4.0 * frown,  # Sad
            3.0 * brow_up + 3.0 * jaw,  # Surprise
            2.0 * brow_up - 2.0 * smile - 0.5,  # Fear
            3.0 * (exp[:, 49:51].mean(axis=1) - mean[49:51].mean()) - 1.0,  # Disgust
            4.0 * brow_down - 0.5,  # Anger
            2.0 * (exp[:, 27:29].mean(axis=1) - mean[27:29].mean()) - 1.0,  # Contempt
        ],
        axis=1,
    )
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return np.concatenate([aus, valence[:, None], arousal[:, None], probs], axis=1).astype(np.float32)


def voice_audio(rng: np.random.Generator, person: Person, stereo: bool) -> np.ndarray:
    """16-bit PCM samples of a harmonic voice whose envelope is the speaking x syllable signal."""
    n = int(round(AUDIO_SECONDS * AUDIO_RATE))
    frame_pos = np.arange(n) / (AUDIO_RATE / FPS)
    envelope = np.interp(frame_pos, np.arange(CLIP_FRAMES) + 0.5, person.voice)
    t = np.arange(n) / AUDIO_RATE
    f0 = person.f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / AUDIO_RATE
    voice = sum(np.sin(h * phase) / h for h in range(1, 5))
    signal = 0.25 * envelope * voice + 0.01 * rng.standard_normal(n)
    if stereo:
        signal = np.stack([signal, 0.9 * signal + 0.005 * rng.standard_normal(n)], axis=1)
    return (np.clip(signal, -1, 1) * 32767).astype(np.int16)


def draw_video(face: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(751, 256, 256, 3) uint8 frames of a drawn face (drawn at 128 px, upscaled 2x)."""
    size = VIDEO_SIZE // 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    frames = np.empty((len(face), size, size, 3), dtype=np.uint8)
    for i, f in enumerate(face):
        dx = 0.15 * (f[53] - mean[53])
        dy = 0.15 * (f[52] - mean[52])
        cx, cy = 0.5 + dx, 0.52 + dy
        img = np.zeros((size, size, 3), dtype=np.uint8)
        img[...] = (20, 24, 32)
        head = ((xx - cx) / 0.32) ** 2 + ((yy - cy) / 0.40) ** 2 < 1
        img[head] = (214, 170, 140)
        blink = float(np.clip(f[8:10].mean(), 0, 1))
        for side in (-1, 1):
            eye = ((xx - cx - side * 0.12) / 0.06) ** 2 + ((yy - cy + 0.08) / (0.035 * (1 - blink) + 0.004)) ** 2 < 1
            img[eye] = (40, 40, 60)
            brow_y = cy - 0.17 - 0.06 * float(np.clip(f[2], 0, 1))
            brow = (np.abs(xx - cx - side * 0.12) < 0.07) & (np.abs(yy - brow_y) < 0.012)
            img[brow] = (90, 60, 40)
        jaw = float(np.clip(f[24], 0, 1))
        smile = float(np.clip(f[43:45].mean(), 0, 1))
        mouth = ((xx - cx) / (0.08 + 0.06 * smile)) ** 2 + ((yy - cy - 0.2) / (0.015 + 0.09 * jaw)) ** 2 < 1
        img[mouth] = (150, 40, 50)
        frames[i] = img
    return frames.repeat(2, axis=1).repeat(2, axis=2)


def write_video(path: Path, frames: np.ndarray, kind: str) -> None:
    if kind == "mp4":
        import imageio_ffmpeg

        with atomic_path(path) as tmp:
            writer = imageio_ffmpeg.write_frames(
                str(tmp),
                (frames.shape[2], frames.shape[1]),
                fps=FPS,
                codec="libx264",
                output_params=["-preset", "ultrafast", "-crf", "28", "-f", "mp4"],
            )
            writer.send(None)
            for frame in frames:
                writer.send(np.ascontiguousarray(frame))
            writer.close()
    else:
        from PIL import Image

        path.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames, start=1):
            Image.fromarray(frame).save(path / f"{i}.png", compress_level=1)


def choose_pairs(split: str, count: int, rng: np.random.Generator) -> list[Pair]:
    """``count`` real rows of ``split``; val always starts with the four submission clips."""
    pool = real_pairs(split)
    chosen: list[Pair] = []
    if split == "val":
        chosen = [p for p in pool if p.speaker in SUBMISSION_CLIPS]
        if count < len(chosen):
            raise ReactError(f"--val-pairs {count}: the val split needs at least {len(chosen)} pairs (the submission clips)")
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


def _session(clip: str) -> str:
    return "/".join(clip.split("/")[:2])


def make_synthetic_dataset(
    out: Path,
    pairs: dict[str, int],
    video: str = "mp4",
    emotion_dirs: str = "roles",
    seed: int = 0,
    on_clip: Callable[[], None] | None = None,
) -> dict[str, list[Pair]]:
    """Write a dataset in the real layout under ``out``; returns the pair rows per split.

    ``on_clip`` is called after each conversation clip (for progress bars).
    """
    if video not in ("mp4", "frames", "none"):
        raise ReactError(f"--video {video}: expected mp4, frames or none")
    if emotion_dirs not in ("roles", "p1p2"):
        raise ReactError(f"--emotion-dirs {emotion_dirs}: expected roles or p1p2")
    out = Path(out)
    mean, std = face_stats()
    master = np.random.default_rng(seed)
    people_traits: dict[str, tuple[int, int, float]] = {}  # person -> (style, delay, f0)

    def traits(person: str) -> tuple[int, int, float]:
        key = "/".join(person.split("/")[:3])
        if key not in people_traits:
            r = np.random.default_rng([seed, len(people_traits), 7])
            people_traits[key] = (int(r.integers(N_STYLES)), int(r.integers(5, 26)), float(r.uniform(100, 220)))
        return people_traits[key]

    written: dict[str, list[Pair]] = {}
    for split_no, split in enumerate(SPLITS):
        count = pairs.get(split, 0)
        if count <= 0:
            continue
        rows = choose_pairs(split, count, master)
        behaviour: dict[str, int] = {}
        for row_no, row in enumerate(rows):
            rng = np.random.default_rng([seed, split_no, row_no])
            people = {}
            for clip in (row.speaker, row.listener):
                style, delay, f0 = traits(clip)
                behaviour[clip] = int(rng.integers(N_BEHAVIOURS))
                people[clip] = make_person(rng, behaviour[clip], style, delay, f0)
            for k, (clip, other) in enumerate(((row.speaker, row.listener), (row.listener, row.speaker))):
                face = make_face(rng, people[clip], people[other], mean, std)
                _write_clip(out, split, clip, face, people[clip], rng, video, emotion_dirs, mean, std, row_no, k)
            if on_clip:
                on_clip()
        header = ",speaker_path,listener_path\n"
        save_text(out / f"{split}.csv", header + "".join(f"{p.index},{p.speaker},{p.listener}\n" for p in rows))
        if split in ("val", "test"):
            groups = np.array([behaviour[s.speaker] for s in mirrored(rows)])
            save_npy(out / f"neighbour_emotion_{split}.npy", (groups[:, None] == groups[None, :]).astype(np.int64))
        written[split] = rows
    return written


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
