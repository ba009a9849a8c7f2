"""Identifiers of a REACT 2025/2026 (MARS) release: one recording, one input -> target sample.

MARS has no pair list. A recording is ``<role>/session<k>/<stem>`` under every modality folder of a
split (``<root>/<split>/<modality>/<role>/session<k>/<stem>.<ext>``); a dyad is the same stem under
``speaker/`` and ``listener/`` of one session. docs/mars.md describes the layout.

The official naive-baseline script lists recordings **sorted as path strings** (so ``session10``
sorts before ``session2``), every speaker input first, then, when bidirectional, every listener
input. :attr:`Recording.sort_key` is that order; the ground-truth rule (which consumes one seeded
random generator in this order) depends on it, so nothing else may define another order.
"""

from __future__ import annotations

from dataclasses import dataclass

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
