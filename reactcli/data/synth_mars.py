"""A synthetic MARS release (REACT 2025/2026) in the real layout, with learnable dyadic structure
and listeners whose listening style follows their personality.

MARS is licence-gated like the 2024 data, so demos and tests need a stand-in. This generator reuses
the 2024 generator's machinery (``data/synth.py``: turn taking, own events, delayed reactions,
faces from the real 3DMM statistics, emotion derived from the face, a harmonic voice) at 30 fps and
variable length, and arranges it the MARS way:

1. **Splits, dyads, sessions.** Each split has its own dyads (two people each: the one in the
   speaker role and the one in the listener role; people never cross splits). Every dyad records
   every chosen session (``session<k>`` for ``sessions`` values of k spread over 0..22, so that
   ``session15`` sorts before ``session7`` as in the release). A recording is
   ``<role>/session<k>/Camera-YYYY-MM-DD-HHMMSS-HHMMSS``, its length drawn uniformly from
   ``frames`` (58 up), the same for both people of the recording.
2. **Scripted sessions.** The session's script sets the speaker's behaviour type (``k mod 4``, the
   2024 generator's four types); the listener gets a different type. So the official ground-truth
   rule (every listener reaction of the session is appropriate) groups reactions to the same kind
   of speaker, as 2024's neighbour matrix groups speakers of one behaviour type.
3. **Personality -> listening style.** Every person has Big Five traits on the 1-5 scale. With
   z = (x - 1) / 4, its listening gains are continuous functions of the traits: smiling back
   1.5 z_E (extraversion; introverts do not smile back), nodding to speech 0.1 + 1.3 z_A
   (agreeableness), raising the brows 1.3 z_O (openness), concern at frowns 1.3 z_N (neuroticism),
   and its reaction delay 0.2 + 0.8 (1 - z_C) s (conscientious people react sooner). Its resting
   face moves with the traits too (:func:`resting_offset`: up to +-1.25 real std of smile, brows,
   frown and head pitch). The speaker's inputs say *when* a listener reacts; only the traits say
   *how much, how fast and from what resting face*, so a model given ``personality/listener.csv``
   can do better than one without it (a causal ridge regression from the speaker's recent facial
   attributes, plus the five traits, beats the same regression without them and with the traits
   of other listeners: ``tests/test_mars_data_synth.py``). The 2024 generator's three discrete
   styles are replaced by these gains.
4. **Modalities.** ``facial-attributes`` (T, 25) float32 from the face as in 2024 (T rows);
   ``coefficients`` (T, 1, 58), or (T, 58) when T is a multiple of 3; ``audio`` 16 kHz 16-bit PCM (every other
   recording stereo) of T/30 s; ``audio-features`` (T, 768) float32, a deterministic stand-in for
   wav2vec2: each frame's 40 log-mel energies (1024-sample window ending at the frame's end) through
   a fixed random projection and tanh; ``video-face-crop`` 64x64 30 fps H.264 mp4 of the drawn face
   (``video="none"`` leaves it out).
5. **2026 extras** (left out for ``edition="2025"``). ``personality/{listener,speaker}.csv`` with
   every recording's traits (``video_name`` with and without ``.mp4``, some rows without a session:
   both key forms of the official reader). ``eeg_processed`` CSVs for both roles, one row per
   started second, a ``TimeStamp`` column and an unread ``HSI`` column besides the 14 targets; every
   target follows the person's behaviour in that second (arousal, AU activity, valence: their
   reaction, so it is learnable from the speaker and the traits), alpha also their neuroticism,
   with little noise (:func:`eeg_table`); about 2% of cells are blank, one file of each split has
   ``nan`` and text cells, and one file stops at half its seconds.
6. **Junk** the reader must skip, in every split's ``facial-attributes``: an AppleDouble
   ``._<stem>.npy``, ``.DS_Store`` files, a ``__MACOSX/`` copy and a ``PaxHeader/`` folder.

The dataset is built in a temporary sibling folder and renamed into place at the end, so a failed
or interrupted run leaves no half-written dataset; ``out`` must not exist or be empty.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reactcli.atomic import atomic_path, save_npy, save_text
from reactcli.data.features import mel_filterbank, windows_log_mel
from reactcli.data.mars import ROLES, Recording
from reactcli.data.synth import (
    N_BEHAVIOURS,
    Person,
    draw_video,
    emotion_from_face,
    face_stats,
    make_face,
    make_person,
    voice_audio,
)
from reactcli.data.synth import conversation as turn_taking
from reactcli.editions import (
    AUDIO_FEATURE_DIM,
    EEG_COLUMNS,
    MARS_FPS,
    MARS_MIN_FRAMES,
    PERSONALITY_TRAITS,
    SPLITS,
)
from reactcli.errors import ReactError
from reactcli.vocab import AU_DIMS, EXPRESSION, EXPRESSION_DIM, FACE_DIM, ROTATION, VALENCE_AROUSAL

AUDIO_RATE = 16000
VIDEO_SIDE = 64
MAX_SESSION = 22  # MARS has 23 scripted sessions, session0 .. session22
N_FFT = 1024
N_MELS = 40
DEFAULT_DYADS = {"train": 4, "val": 2, "test": 2}
DEFAULT_FRAMES = (MARS_MIN_FRAMES, 600)


@dataclass(frozen=True)
class Participant:
    """One participant: traits on the 1-5 scale and what they imply for listening."""

    name: str
    traits: np.ndarray  # (5,) in PERSONALITY_TRAITS order
    gains: np.ndarray  # (4,) smile back, nod, brow raise, concern
    delay: int  # reaction delay in frames at 30 fps
    f0: float


def trait_gains(traits: np.ndarray) -> tuple[np.ndarray, int]:
    """Listening gains (4,) and reaction delay (frames at 30 fps) from Big Five traits on 1-5."""
    e, a, c, n, o = (np.asarray(traits, np.float64) - 1.0) / 4.0  # PERSONALITY_TRAITS order
    gains = np.array([1.5 * e, 0.1 + 1.3 * a, 1.3 * o, 1.3 * n])
    delay = int(round((0.2 + 0.8 * (1.0 - c)) * MARS_FPS))
    return gains, delay


def resting_offset(traits: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(58,) shift of a person's resting face, in units of the real per-dim std: a broader smile
    with extraversion, lowered brows and a frown with neuroticism, raised brows with openness, the
    head tilted forward with agreeableness (each from -0.6 to +0.6 std across the 1-5 scale)."""
    e, a, _, n, o = 2.5 * ((np.asarray(traits, np.float64) - 1.0) / 4.0 - 0.5)
    offset = np.zeros(FACE_DIM)
    for stem, value in (("mouthSmile", e), ("cheekSquint", 0.5 * e), ("browDown", n), ("mouthFrown", 0.7 * n)):
        offset[[EXPRESSION[f"{stem}Left"], EXPRESSION[f"{stem}Right"]]] = value
    offset[EXPRESSION["browInnerUp"]] = o
    offset[[EXPRESSION["browOuterUpLeft"], EXPRESSION["browOuterUpRight"]]] = 0.7 * o
    offset[ROTATION.start] = 0.5 * a  # head pitch
    return (offset * std).astype(np.float32)


def make_people(seed: int, split_no: int, dyad: int) -> dict[str, Participant]:
    """The two people of one dyad, keyed by role; drawn from their own generator (stable under
    changes to the number of sessions or lengths)."""
    people = {}
    for role_no, role in enumerate(ROLES):
        rng = np.random.default_rng([seed, 211, split_no, dyad, role_no])
        traits = np.round(rng.uniform(1.0, 5.0, size=len(PERSONALITY_TRAITS)), 2)
        gains, delay = trait_gains(traits)
        people[role] = Participant(
            f"{SPLITS[split_no]}-dyad{dyad}-{role}", traits, gains, delay, float(rng.uniform(100, 220))
        )
    return people


def session_numbers(sessions: int) -> list[int]:
    """``sessions`` session numbers spread over 0..22 (4 -> 0, 7, 15, 22)."""
    if not 1 <= sessions <= MAX_SESSION + 1:
        raise ReactError(f"--sessions {sessions}: expected 1 to {MAX_SESSION + 1} (MARS has 23 scripted sessions)")
    return sorted({int(round(v)) for v in np.linspace(0, MAX_SESSION, sessions)}) if sessions > 1 else [0]


def session_behaviour(session: int) -> int:
    """The speaker's behaviour type that session ``session``'s script asks for."""
    return session % N_BEHAVIOURS


def stem_name(split_no: int, dyad: int, session_index: int, frames: int, jitter: int) -> str:
    """A unique ``Camera-YYYY-MM-DD-HHMMSS-HHMMSS`` stem: the day from split and dyad, the time
    from the session; the end time is the start plus the recording's length."""
    year, day = 2024 + dyad // 28, 1 + dyad % 28
    start = 9 * 3600 + session_index * 25 * 60 + jitter
    end = start + -(-frames // MARS_FPS)

    def hms(seconds: int) -> str:
        return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"

    return f"Camera-{year}-{6 + split_no:02d}-{day:02d}-{hms(start)}-{hms(end)}"


def audio_features(wave: np.ndarray, rate: int, frames: int, fps: int = MARS_FPS) -> np.ndarray:
    """(frames, 768) float32: 40 log-mel energies per frame (window ending at the frame's end)
    through a fixed random projection (the same for every recording) and tanh."""
    ends = np.round((np.arange(frames) + 1) * rate / fps).astype(np.int64)
    padded = np.concatenate([np.zeros(N_FFT, np.float32), wave.astype(np.float32), np.zeros(N_FFT, np.float32)])
    windows = padded[ends[:, None] + np.arange(N_FFT)[None]]
    logmel = windows_log_mel(windows, mel_filterbank(N_MELS, rate))
    projection = np.random.default_rng(AUDIO_FEATURE_DIM).standard_normal((N_MELS, AUDIO_FEATURE_DIM)) / np.sqrt(N_MELS)
    return np.tanh(0.1 * (logmel + 10.0) @ projection).astype(np.float32)


#: How each EEG target follows the listener's behaviour in its second (``eeg_table``): gains on
#: arousal, AU activity and valence (each centred), per column kind; raw channels in stored units.
EEG_BEHAVIOUR_GAINS = {
    "raw": (300.0, 400.0, 0.0),
    "Delta": (0.0, -1.5, 0.0),
    "Theta": (0.0, 0.0, 0.6),
    "Alpha": (-0.6, 0.0, 0.0),
    "Beta": (0.8, 1.0, 0.0),
    "Gamma": (0.0, 1.5, 0.2),
}
EEG_BASE = {"raw": 820.0, "Delta": 0.9, "Theta": 0.7, "Alpha": 0.8, "Beta": 0.45, "Gamma": 0.2}
EEG_NOISE = {"raw": 8.0, "band": 0.015}


def eeg_behaviour(attributes: np.ndarray, rows: int) -> np.ndarray:
    """(rows, 3): the listener's mean arousal, AU activity (mean of the 15 AUs) and valence in each
    second, centred on typical values (what the synthetic EEG follows)."""
    out = np.zeros((rows, 3))
    for r in range(rows):
        second = attributes[r * MARS_FPS : (r + 1) * MARS_FPS]
        out[r] = (second[:, VALENCE_AROUSAL[1]].mean() - 0.5, second[:, AU_DIMS].mean() - 0.1,
                  second[:, VALENCE_AROUSAL[0]].mean())
    return out


def eeg_table(rng: np.random.Generator, attributes: np.ndarray, person: Participant, quirks: str | None) -> str:
    """The EEG CSV text of one recording: one row per started second (see the module docstring).

    Every target is a fixed affine function of the person's behaviour in that second (arousal, AU
    activity, valence: :data:`EEG_BEHAVIOUR_GAINS`), alpha also of their neuroticism, plus a little
    noise: so a model that predicts the listener's reaction can predict their EEG. The random draws
    (one normal per row and column, then the blanks) are the ones the generator always made, so
    every other stream of the dataset is unchanged."""
    rows = -(-len(attributes) // MARS_FPS)
    behaviour = eeg_behaviour(attributes, rows)
    neuro = (person.traits[PERSONALITY_TRAITS.index("Neuroticism")] - 1.0) / 4.0
    table = np.empty((rows, len(EEG_COLUMNS)))
    for c, name in enumerate(EEG_COLUMNS):
        noise = rng.standard_normal(rows)
        kind = name.split("_")[0] if "_" in name else "raw"  # raw channel: stored in the release's units (/ 1000)
        base = EEG_BASE[kind] - (0.3 * neuro if kind == "Alpha" else 0.0)
        scale = EEG_NOISE["raw" if kind == "raw" else "band"]
        table[:, c] = base + behaviour @ np.asarray(EEG_BEHAVIOUR_GAINS[kind]) + scale * noise
    cells = [[f"{v:.4f}" for v in row] for row in table]
    for r, c in zip(*np.nonzero(rng.random(table.shape) < 0.02), strict=True):
        cells[r][c] = ""
    if quirks == "bad-cells":
        cells[0][0], cells[min(1, rows - 1)][5] = "nan", "--"
    if quirks == "short":
        cells = cells[: max(1, rows // 2)]
    header = ["TimeStamp", *EEG_COLUMNS, "HSI"]
    lines = [",".join(header)] + [",".join([f"{r}.000", *row, "1"]) for r, row in enumerate(cells)]
    return "\n".join(lines) + "\n"


def personality_csv(rows: list[tuple[Recording, Participant]]) -> str:
    """``video_name,session,<traits>``: even rows name the mp4, odd rows the bare stem; every
    fifth row leaves the session empty (the reader's stem-only key)."""
    lines = [",".join(["video_name", "session", *PERSONALITY_TRAITS])]
    for i, (rec, person) in enumerate(rows):
        name = f"{rec.stem}.mp4" if i % 2 == 0 else rec.stem
        session = "" if i % 5 == 4 else rec.session
        lines.append(",".join([name, session, *(f"{t:.2f}" for t in person.traits)]))
    return "\n".join(lines) + "\n"


APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(4070)
DS_STORE = b"\x00\x00\x00\x01Bud1" + bytes(2040)


def write_junk(split_dir: Path, speaker: Recording, listener: Recording) -> None:
    """The metadata a macOS zip or a tar leaves behind, where the reader must skip it."""
    base = split_dir / "facial-attributes"
    with atomic_path(base / "speaker" / speaker.session / f"._{speaker.stem}.npy") as tmp:
        tmp.write_bytes(APPLEDOUBLE)
    with atomic_path(base / "__MACOSX" / "speaker" / speaker.session / f"._{speaker.stem}.npy") as tmp:
        tmp.write_bytes(APPLEDOUBLE)
    for folder in (base, base / "listener"):
        with atomic_path(folder / ".DS_Store") as tmp:
            tmp.write_bytes(DS_STORE)
    save_text(base / "listener" / listener.session / "PaxHeader" / f"{listener.stem}.npy", "30 mtime=1718962281.5\n")


def write_video(path: Path, frames: np.ndarray) -> None:
    """A 64x64 30 fps H.264 mp4 (ffmpeg scales the drawn 128x128 frames down)."""
    import imageio_ffmpeg

    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (frames.shape[2], frames.shape[1]),
            fps=MARS_FPS,
            codec="libx264",
            quality=None,
            macro_block_size=1,
            output_params=[
                "-vf", f"scale={VIDEO_SIDE}:{VIDEO_SIDE}:flags=area",
                "-preset", "ultrafast", "-crf", "30", "-threads", "1", "-f", "mp4",
            ],
        )  # fmt: skip
        writer.send(None)
        writer.send(np.ascontiguousarray(frames).tobytes())
        writer.close()


def parse_dyads(text: str) -> dict[str, int]:
    """``--dyads 4,2,2`` -> dyads per split (train, val, test)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != len(SPLITS) or not all(p.isdigit() for p in parts):
        raise ReactError(f"--dyads {text}: expected three counts TRAIN,VAL,TEST such as 4,2,2")
    return {split: int(p) for split, p in zip(SPLITS, parts, strict=True)}


def parse_frames(text: str) -> tuple[int, int]:
    """``--frames 58-600`` -> (58, 600)."""
    low, sep, high = text.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ReactError(f"--frames {text}: expected MIN-MAX such as {MARS_MIN_FRAMES}-600")
    return int(low), int(high)


def check_options(edition: str, dyads: dict[str, int], sessions: int, frames: tuple[int, int], video: str) -> None:
    if edition not in ("2025", "2026"):
        raise ReactError(f"--edition {edition}: the MARS generator writes 2025 or 2026")
    if video not in ("mp4", "none"):
        raise ReactError(f"--video {video}: the MARS generator writes mp4 or none")
    unknown = sorted(set(dyads) - set(SPLITS))
    if unknown or any(n < 0 for n in dyads.values()) or not any(dyads.values()):
        raise ReactError(f"--dyads {dyads}: expected counts >= 0 for {', '.join(SPLITS)}, at least one above 0")
    session_numbers(sessions)
    low, high = frames
    if low < MARS_MIN_FRAMES or high < low:
        raise ReactError(f"--frames {low}-{high}: expected MIN-MAX with {MARS_MIN_FRAMES} <= MIN <= MAX")


def make_mars_dataset(
    out: str | Path,
    edition: str = "2026",
    dyads: dict[str, int] | None = None,
    sessions: int = 4,
    frames: tuple[int, int] = DEFAULT_FRAMES,
    video: str = "mp4",
    seed: int = 0,
    on_recording: Callable[[], None] | None = None,
    latents: dict[str, dict[str, dict]] | None = None,
) -> dict[str, list[Recording]]:
    """Write a synthetic MARS release under ``out``; returns each split's recordings (sorted).

    ``dyads`` maps split -> dyads (default 4 / 2 / 2), ``sessions`` how many scripted sessions each
    dyad records, ``frames`` the (min, max) recording length. ``on_recording`` is called after each
    dyad-session (both roles). A ``latents`` dict is filled with ``split -> {recording id:
    {"person", "traits", "gains", "delay", "behaviour"}}``, the hidden truth for tests.
    """
    dyads = dict(DEFAULT_DYADS if dyads is None else dyads)
    check_options(edition, dyads, sessions, frames, video)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReactError(path=out, problem="already exists and is not empty (the synthetic dataset is written whole)")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        written = _write_dataset(stage, edition, dyads, sessions, frames, video, seed, on_recording, latents)
        if out.exists():
            out.rmdir()
        os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    return written


def _write_dataset(
    out: Path,
    edition: str,
    dyads: dict[str, int],
    sessions: int,
    frames: tuple[int, int],
    video: str,
    seed: int,
    on_recording: Callable[[], None] | None,
    latents: dict[str, dict[str, dict]] | None,
) -> dict[str, list[Recording]]:
    mean, std = face_stats()
    numbers = session_numbers(sessions)
    written: dict[str, list[Recording]] = {}
    for split_no, split in enumerate(SPLITS):
        if dyads.get(split, 0) <= 0:
            continue
        base = out / split
        recordings: list[Recording] = []
        traits_rows: dict[str, list[tuple[Recording, Participant]]] = {role: [] for role in ROLES}
        hidden: dict[str, dict] = {}
        for dyad in range(dyads[split]):
            people = make_people(seed, split_no, dyad)
            for s_index, session in enumerate(numbers):
                rng = np.random.default_rng([seed, 101, split_no, dyad, session])
                length = int(rng.integers(frames[0], frames[1] + 1))
                stem = stem_name(split_no, dyad, s_index, length, int(rng.integers(0, 600)))
                behaviour = {"speaker": session_behaviour(session)}
                behaviour["listener"] = (behaviour["speaker"] + 1 + int(rng.integers(N_BEHAVIOURS - 1))) % N_BEHAVIOURS
                floors = turn_taking(rng, behaviour["speaker"], behaviour["listener"], length, MARS_FPS)
                actors = {
                    role: make_person(
                        rng,
                        behaviour[role],
                        0,
                        people[role].delay,
                        people[role].f0,
                        floor,
                        MARS_FPS,
                        people[role].gains,
                    )
                    for role, floor in zip(ROLES, floors, strict=True)
                }
                for role_no, role in enumerate(ROLES):
                    rec = Recording(role, f"session{session}", stem)
                    face = make_face(rng, actors[role], actors[ROLES[1 - role_no]], mean, std)
                    face += resting_offset(people[role].traits, std)
                    face[:, :EXPRESSION_DIM] = np.clip(face[:, :EXPRESSION_DIM], 0.0, 1.0)
                    attributes = emotion_from_face(np.concatenate([face, face[-1:]]), mean, std, rows=length)
                    quirks = None
                    if role == "listener" and dyad == 0:
                        quirks = {0: "bad-cells", 1: "short"}.get(s_index)
                    _write_recording(
                        base, rec, face, attributes, actors[role], people[role], rng, video, edition, quirks, mean,
                        stereo=(dyad + s_index + role_no) % 2 == 0,
                    )  # fmt: skip
                    recordings.append(rec)
                    traits_rows[role].append((rec, people[role]))
                    hidden[rec.id] = {
                        "person": people[role].name,
                        "traits": people[role].traits,
                        "gains": people[role].gains,
                        "delay": people[role].delay,
                        "behaviour": behaviour[role],
                    }
                if on_recording:
                    on_recording()
        if edition == "2026":
            for role in ROLES:
                save_text(base / "personality" / f"{role}.csv", personality_csv(traits_rows[role]))
        first = min(recordings, key=lambda r: r.sort_key)
        write_junk(base, first, recordings[-1])  # the last one written is a listener
        written[split] = sorted(recordings, key=lambda r: r.sort_key)
        if latents is not None:
            latents[split] = hidden
    return written


def _write_recording(
    base: Path,
    rec: Recording,
    face: np.ndarray,
    attributes: np.ndarray,
    actor: Person,
    person: Participant,
    rng: np.random.Generator,
    video: str,
    edition: str,
    quirks: str | None,
    mean: np.ndarray,
    stereo: bool,
) -> None:
    from scipy.io import wavfile

    length = len(face)
    save_npy(base / "facial-attributes" / f"{rec.id}.npy", attributes)
    save_npy(base / "coefficients" / f"{rec.id}.npy", face if length % 3 == 0 else face[:, None, :])
    pcm = voice_audio(rng, actor, stereo=stereo, rate=AUDIO_RATE, seconds=length / MARS_FPS)
    with atomic_path(base / "audio" / f"{rec.id}.wav") as tmp:
        wavfile.write(tmp, AUDIO_RATE, pcm)
    mono = (pcm if pcm.ndim == 1 else pcm.mean(axis=1)).astype(np.float32) / 32768.0
    save_npy(base / "audio-features" / f"{rec.id}.npy", audio_features(mono, AUDIO_RATE, length))
    if video == "mp4":
        write_video(base / "video-face-crop" / f"{rec.id}.mp4", draw_video(face, mean))
    if edition == "2026":
        save_text(base / "eeg_processed" / f"{rec.id}.csv", eeg_table(rng, attributes, person, quirks))
