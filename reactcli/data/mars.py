"""Identifiers of a REACT 2025/2026 (MARS) release: one recording, one input -> target sample.

MARS has no pair list. A recording is ``<role>/session<k>/<stem>`` under every modality folder of a
split (``<root>/<split>/<modality>/<role>/session<k>/<stem>.<ext>``); a dyad is the same stem under
``speaker/`` and ``listener/`` of one session. docs/mars.md describes the layout.

The official naive-baseline script lists recordings **sorted as path strings** (so ``session10``
sorts before ``session2``), every speaker input first, then, when bidirectional, every listener
input. :attr:`Recording.sort_key` is that order; the ground-truth rule (which consumes one seeded
random generator in this order) depends on it, so nothing else may define another order.

:func:`list_recordings` walks a split's ``facial-attributes`` folder with the official personalised
loader's junk rules and returns the recordings in that order plus everything it skipped;
:func:`mars_samples` pairs them (bidirectional on or off).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reactcli.editions import MARS_LISTING_MODALITY
from reactcli.errors import file_error

ROLES = ("speaker", "listener")


@dataclass(frozen=True)
class Recording:
    """One recording of one person: ``role`` ("speaker" or "listener"), ``session`` (the folder name,
    e.g. "session3") and ``stem`` (the file name without extension)."""

    role: str
    session: str
    stem: str

    @property
    def id(self) -> str:
        """``"<role>/<session>/<stem>"``: the recording's path below a modality folder, without extension."""
        return f"{self.role}/{self.session}/{self.stem}"

    @property
    def sort_key(self) -> tuple[int, str, str]:
        """Official listing order: role (speaker first), then session and stem as strings."""
        return (ROLES.index(self.role), self.session, self.stem)

    def opposite(self) -> Recording:
        """The other person of the same dyad (same session and stem, the other role)."""
        return Recording(ROLES[1 - ROLES.index(self.role)], self.session, self.stem)

    @classmethod
    def from_id(cls, text: str) -> Recording:
        """Parse ``"<role>/<session>/<stem>"`` (as written by :attr:`id`); a ValueError names what is wrong."""
        parts = text.strip().strip("/").split("/")
        if len(parts) != 3 or parts[0] not in ROLES or not parts[1] or not parts[2]:
            raise ValueError(f"'{text}' is not '<speaker|listener>/<session>/<stem>'")
        return cls(*parts)


@dataclass(frozen=True)
class MarsSample:
    """One evaluation/training sample: the ``input`` recording drives, the ``target`` (its dyad
    partner, the opposite role of the same session and stem) is the reaction to generate."""

    input: Recording
    target: Recording

    @property
    def id(self) -> str:
        """The input's id: unique per sample, since each recording is an input at most once."""
        return self.input.id


# -- enumerating a split --------------------------------------------------------------------------


@dataclass(frozen=True)
class Junk:
    """A file or folder under the listing folder that is not a recording, and why it was skipped."""

    path: str
    reason: str


@dataclass(frozen=True)
class MarsListing:
    """The recordings of one split in the official sorted order, and what the walk skipped."""

    split: str
    folder: Path  # <root>/<split>/facial-attributes
    recordings: tuple[Recording, ...]
    junk: tuple[Junk, ...]

    def samples(self, bidirectional: bool) -> list[MarsSample]:
        """Inputs in the official order whose partner exists: speakers first, then (when
        ``bidirectional``) listeners; each target is the input's dyad partner."""
        return mars_samples(self.recordings, bidirectional)

    def unpaired(self) -> list[Recording]:
        """Recordings whose dyad partner (same session and stem, other role) is not listed."""
        present = set(self.recordings)
        return [r for r in self.recordings if r.opposite() not in present]


def _junk_dir(name: str) -> str | None:
    """Why a folder is pruned: the official loader prunes ``.*``, ``__MACOSX`` and ``PaxHeader``;
    we prune names *starting* with the latter two as well, so GNU tar's ``PaxHeaders.<n>`` go too."""
    if name.startswith("."):
        return "hidden folder"
    if name.startswith("__MACOSX"):
        return "macOS zip metadata folder (__MACOSX)"
    if name.startswith("PaxHeader"):
        return "tar metadata folder (PaxHeader)"
    return None


def _junk_file(name: str) -> str | None:
    if name == ".DS_Store":
        return "macOS Finder metadata (.DS_Store)"
    if name.startswith("._"):
        return "AppleDouble metadata (._*) from a macOS archive"
    if name.startswith("."):
        return "hidden file"
    if not name.lower().endswith(".npy"):
        return "not a .npy file"
    return None


def list_recordings(root: str | Path, split: str, modality: str = MARS_LISTING_MODALITY) -> MarsListing:
    """Walk ``<root>/<split>/<modality>`` with the official personalised loader's rules.

    Folders starting with ``.``, ``__MACOSX`` or ``PaxHeader`` are pruned; files starting with
    ``.`` (``._*`` AppleDouble, ``.DS_Store``) and files that are not ``.npy`` are skipped; a file
    counts only at ``<role>/<session>/<stem>.npy`` with role ``speaker`` or ``listener``. Every
    skipped entry is returned as :class:`Junk` so a report can list it. The recordings come sorted
    by :attr:`Recording.sort_key`, the order the ground-truth rule consumes its random generator in.
    """
    folder = Path(root) / split / modality
    if not folder.is_dir():
        raise file_error(
            folder, f"MARS {modality} folder not found (expected <root>/<split>/{modality}/<role>/session<k>/)"
        )
    found: list[Recording] = []
    junk: list[Junk] = []
    for current, dirs, files in os.walk(folder):
        here = Path(current)
        keep = []
        for name in sorted(dirs):
            reason = _junk_dir(name)
            if reason:
                junk.append(Junk(str(here / name), reason))
            else:
                keep.append(name)
        dirs[:] = keep
        parts = here.relative_to(folder).parts
        for name in sorted(files):
            path = here / name
            reason = _junk_file(name)
            if reason is None and len(parts) != 2:
                reason = "not at <role>/<session>/<stem>.npy"
            if reason is None and parts[0] not in ROLES:
                reason = f"role folder '{parts[0]}' is neither speaker nor listener"
            if reason:
                junk.append(Junk(str(path), reason))
            else:
                found.append(Recording(parts[0], parts[1], Path(name).stem))
    junk.sort(key=lambda j: j.path)
    return MarsListing(split, folder, tuple(sorted(found, key=lambda r: r.sort_key)), tuple(junk))


def mars_samples(recordings: Iterable[Recording], bidirectional: bool) -> list[MarsSample]:
    """The samples of a set of recordings in the official order: every speaker whose listener
    exists, then (``bidirectional``) every listener whose speaker exists, each group sorted."""
    present = set(recordings)
    inputs = sorted((r for r in present if bidirectional or r.role == ROLES[0]), key=lambda r: r.sort_key)
    return [MarsSample(r, r.opposite()) for r in inputs if r.opposite() in present]
