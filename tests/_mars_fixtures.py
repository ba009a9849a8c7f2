"""A MARS-layout val split written independently of ``reactcli/data/synth_mars.py``.

The reader must not pass only because the generator and the reader share a misreading of the
layout, so this writer uses nothing of the package: plain ``np.save`` of random arrays, the stdlib
``wave`` module at 22.05 kHz, hand-written CSVs and a ``tarfile`` archive. It puts in the quirks a
real copy has: junk files of macOS archives and tar, lengths 58-900, one listener two frames
shorter than its speaker, one speaker without a listener, audio features one frame longer than
their recording, EEG with blanks, text and ``nan`` cells, one EEG file missing and some only in
``eeg_processed.tar.gz`` (both member spellings, with metadata members beside them), and
personality keys with and without extension and session.
"""

from __future__ import annotations

import io
import tarfile
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

EEG_HEADER = [
    "TimeStamp", "TP9", "AF7", "AF8", "TP10",
    "Delta_TP9", "Theta_TP9", "Alpha_TP9", "Beta_TP9", "Gamma_TP9",
    "Delta_TP10", "Theta_TP10", "Alpha_TP10", "Beta_TP10", "Gamma_TP10", "Right_AUX",
]  # fmt: skip
TRAITS = ["Extraversion", "Agreeableness", "Conscientiousness", "Neuroticism", "Openness"]
RATE = 22050


@dataclass
class MarsFixture:
    """What was written, for the assertions of the tests."""

    root: Path
    lengths: dict[str, int] = field(default_factory=dict)  # recording id -> frames
    junk: list[Path] = field(default_factory=list)
    short_listener: str = ""  # two frames shorter than its speaker
    lonely_speaker: str = ""  # no listener recording
    longer_features: str = ""  # audio-features one frame longer than the attributes
    eeg_in_tar: list[str] = field(default_factory=list)
    eeg_missing: str = ""
    eeg_text_cells: str = ""  # has 'nan', 'n/a' and '' cells
    traits: dict[str, list[float]] = field(default_factory=dict)  # listener id -> raw 1-5 traits


def _attributes(rng: np.random.Generator, frames: int) -> np.ndarray:
    aus = (rng.random((frames, 15)) < 0.3).astype(np.float32)
    va = rng.uniform(-1, 1, (frames, 2)).astype(np.float32)
    logits = rng.standard_normal((frames, 8))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    return np.concatenate([aus, va, probs], axis=1)


def _wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((np.clip(samples, -1, 1) * 32000).astype("<i2").tobytes())


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def _eeg_csv(rng: np.random.Generator, seconds: int, text_cells: bool) -> str:
    rows = [",".join(EEG_HEADER)]
    for r in range(seconds):
        raw = [f"{v:.3f}" for v in rng.uniform(700, 900, 4)]
        bands = [f"{v:.4f}" for v in rng.uniform(0, 1.5, 10)]
        cells = [f"{r}", *raw, *bands, "0"]
        if r % 3 == 1:
            cells[6] = ""  # a blank Theta_TP9 every third second
        if text_cells and r == 0:
            cells[1], cells[2], cells[14] = "nan", "n/a", ""  # TP9, AF7, Gamma_TP10
        rows.append(",".join(cells))
    return "\ufeff" + "\n".join(rows) + "\n"  # utf-8 BOM, as Excel writes it


def write_mars_val(root: Path, seed: int = 0, split: str = "val") -> MarsFixture:
    """Write ``<root>/<split>`` (three sessions, three dyads each, plus one speaker alone); another
    ``split`` (``train``) with another ``seed`` gives a second split of the same shape."""
    rng = np.random.default_rng(seed)
    fx = MarsFixture(root)
    val = root / split
    stems: list[tuple[str, str]] = []
    for hour, session in enumerate(("session1", "session10", "session4"), start=9):
        for dyad in range(3):
            stems.append((session, f"Camera-2024-06-{10 + dyad:02d}-{hour:02d}3121-{hour:02d}4102"))
    lonely = ("session4", "Camera-2024-06-20-160000-160101")
    tar_members: dict[str, bytes] = {}
    for n, (session, stem) in enumerate([*stems, lonely]):
        frames = {0: 58, 1: 900, 4: int(rng.integers(120, 901))}.get(n, int(rng.integers(58, 901)))
        roles = ("speaker",) if (session, stem) == lonely else ("speaker", "listener")
        for role in roles:
            rid = f"{role}/{session}/{stem}"
            length = frames - 2 if (role == "listener" and n == 4) else frames
            fx.lengths[rid] = length
            _save(val / "facial-attributes" / f"{rid}.npy", _attributes(rng, length))
            coeff = rng.standard_normal((length, 1, 58)).astype(np.float32)
            _save(val / "coefficients" / f"{rid}.npy", coeff if n % 2 else coeff[:, 0, :])
            extra = 1 if (role == "speaker" and n == 2) else 0
            _save(val / "audio-features" / f"{rid}.npy", rng.standard_normal((length + extra, 768)).astype(np.float32))
            _wav(val / "audio" / f"{rid}.wav", 0.1 * rng.standard_normal(int(length / 30 * RATE)))
            seconds = -(-length // 30)
            if role == "listener":
                text = _eeg_csv(rng, seconds, text_cells=(n == 1))
                if n == 3:
                    fx.eeg_missing = rid
                elif n in (5, 6):
                    name = f"eeg_processed/{rid}.csv" if n == 5 else f"{rid}.csv"
                    tar_members[name] = text.encode("utf-8")
                    fx.eeg_in_tar.append(rid)
                else:
                    path = val / "eeg_processed" / f"{rid}.csv"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")
                if n == 1:
                    fx.eeg_text_cells = rid
        if n == 2:
            fx.longer_features = f"speaker/{session}/{stem}"
        if n == 4:
            fx.short_listener = f"listener/{session}/{stem}"
    fx.lonely_speaker = f"speaker/{lonely[0]}/{lonely[1]}"
    # metadata members the tar reader must skip (one shadows a real member's name)
    first = fx.eeg_in_tar[0]
    tar_members[f"eeg_processed/{first.rsplit('/', 1)[0]}/._{first.rsplit('/', 1)[1]}.csv"] = b"\x00\x05\x16\x07junk"
    tar_members[f"PaxHeader/{fx.eeg_in_tar[1]}.csv"] = b"30 mtime=1718962281.5\n"
    write_tar_gz(val / "eeg_processed.tar.gz", tar_members)
    _personality(rng, val, stems, fx)
    _junk(val, stems[0], fx)
    return fx



def write_tar_gz(path: Path, members: dict[str, bytes]) -> None:
    """A gzipped tar of plain-file ``members`` (member name -> bytes), in the given order."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

def _personality(rng: np.random.Generator, val: Path, stems: list[tuple[str, str]], fx: MarsFixture) -> None:
    lines = [",".join(["video_name", "session", *TRAITS])]
    for i, (session, stem) in enumerate(stems):
        traits = [round(float(v), 1) for v in rng.uniform(1, 5, 5)]
        fx.traits[f"listener/{session}/{stem}"] = traits
        name = f"{stem}.mp4" if i % 2 else stem
        lines.append(",".join([name, session if i % 3 else "", *(str(t) for t in traits)]))
    (val / "personality").mkdir(parents=True, exist_ok=True)
    (val / "personality" / "listener.csv").write_text("\n".join(lines) + "\n")


def _junk(val: Path, first: tuple[str, str], fx: MarsFixture) -> None:
    session, stem = first
    base = val / "facial-attributes"
    paths = {
        base / "speaker" / session / f"._{stem}.npy": b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X",
        base / ".DS_Store": b"\x00\x00\x00\x01Bud1",
        base / "listener" / session / ".DS_Store": b"\x00\x00\x00\x01Bud1",
        base / "__MACOSX" / "listener" / session / f"._{stem}.npy": b"\x00\x05\x16\x07",
        base / "speaker" / session / "PaxHeaders.4242" / f"{stem}.npy": b"30 mtime=1718962281.5\n",
        base / "speaker" / session / "notes.txt": b"recorded twice\n",
    }
    for path, data in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    fx.junk = [
        base / ".DS_Store",
        base / "__MACOSX",
        base / "listener" / session / ".DS_Store",
        base / "speaker" / session / f"._{stem}.npy",
        base / "speaker" / session / "PaxHeaders.4242",
        base / "speaker" / session / "notes.txt",
    ]
