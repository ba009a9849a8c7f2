"""The ground-truth sets of REACT 2025/2026 (MARS): which listener reactions each input is scored against.

MARS has no neighbour matrix: every recording of the opposite role in the input's session counts as an
appropriate reaction. The organisers' model test loaders draw 9 of them with the unseeded module-level
``random`` in filesystem order and never save the draw, so their sets cannot be rebuilt. Their
naive-baseline script is the one reproducible rule, and this module implements it:

* inputs in the official sorted listing (:attr:`Recording.sort_key`), every speaker first, then every
  listener when bidirectional; an input whose dyad partner is missing is skipped *without* a draw;
* one ``random.Random(seed)`` (default 1234) consumed in that order;
* ``others`` = the recordings of the target's role in the target's session, in sorted order, minus the
  target itself; the set is ``[target] + rng.sample(others, 9)`` with at least 9 others,
  ``[target] + rng.choices(others, k=9)`` with 1 to 8, and the target 10 times with none.

A drawn (or replayed) list is a JSON file (:func:`write_gt_list`, :func:`read_gt_list`) so a metrics
run can name exactly what it scored against, and so a list recorded from the official loader can be
replayed (``--gt-list``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reactcli.atomic import save_json
from reactcli.data.mars import ROLES, MarsSample, Recording
from reactcli.editions import MARS_GT_COUNT, MARS_GT_SEED
from reactcli.errors import ReactError, file_error

#: ``format`` of the JSON files this module writes.
GT_LIST_FORMAT = "reactcli-mars-gt-list/1"
_ENTRY_KEYS = ("input", "target", "gts")


@dataclass(frozen=True)
class GtSet:
    """One sample and the recordings its reactions are scored against (``gts[0]`` is usually the target)."""

    sample: MarsSample
    gts: tuple[Recording, ...]

    def to_json(self) -> dict[str, Any]:
        """The baseline script's ``sample_ids`` entry: ``{"input", "target", "gts"}`` as recording ids."""
        return {"input": self.sample.input.id, "target": self.sample.target.id, "gts": [g.id for g in self.gts]}


@dataclass
class GtDraw:
    """The result of :func:`draw_gt_sets`: the sets in sample order and the inputs skipped for lack of a partner."""

    sets: list[GtSet]
    unpaired: list[Recording] = field(default_factory=list)
    seed: int = MARS_GT_SEED
    bidirectional: bool = False
    num_gts: int = MARS_GT_COUNT


def input_roles(bidirectional: bool) -> tuple[str, ...]:
    """Roles that drive a sample, in the order the official script walks them."""
    return ROLES if bidirectional else ROLES[:1]


def draw_gt_sets(
    recordings: Iterable[Recording],
    seed: int = MARS_GT_SEED,
    bidirectional: bool = False,
    num_gts: int = MARS_GT_COUNT,
) -> GtDraw:
    """Draw every sample's ground-truth set by the naive-baseline script's rule (module docstring).

    ``recordings`` are all recordings of the split (both roles; order and duplicates do not matter:
    the official sorted order is imposed here). The draw depends only on that set, ``seed``,
    ``bidirectional`` and ``num_gts``.
    """
    if num_gts < 1:
        raise ReactError(f"the number of ground truths per sample must be at least 1, got {num_gts}")
    existing = sorted(set(recordings), key=lambda r: r.sort_key)
    present = set(existing)
    by_session: dict[tuple[str, str], list[Recording]] = {}
    for rec in existing:  # sorted, so every pool is listed in the official order
        by_session.setdefault((rec.role, rec.session), []).append(rec)
    rng = random.Random(seed)
    extra = num_gts - 1
    sets: list[GtSet] = []
    unpaired: list[Recording] = []
    for role in input_roles(bidirectional):
        for rec in (r for r in existing if r.role == role):
            target = rec.opposite()
            if target not in present:
                unpaired.append(rec)  # the official script warns and skips; no draw is consumed
                continue
            others = [r for r in by_session[(target.role, target.session)] if r != target]
            if extra == 0:
                gts = [target]
            elif len(others) >= extra:
                gts = [target, *rng.sample(others, extra)]
            elif others:
                gts = [target, *rng.choices(others, k=extra)]
            else:
                gts = [target] * num_gts
            sets.append(GtSet(MarsSample(rec, target), tuple(gts)))
    return GtDraw(sets, unpaired, seed, bidirectional, num_gts)


def gt_list_document(draw: GtDraw, split: str) -> dict[str, Any]:
    """The JSON document :func:`write_gt_list` writes (also what a metrics JSON can embed)."""
    return {
        "format": GT_LIST_FORMAT,
        "split": split,
        "rule": "naive-baseline script: sorted listing, one random.Random(seed)",
        "seed": draw.seed,
        "bidirectional": draw.bidirectional,
        "num_gts": draw.num_gts,
        "unpaired": [r.id for r in draw.unpaired],
        "samples": [s.to_json() for s in draw.sets],
    }


def write_gt_list(path: str | Path, draw: GtDraw, split: str) -> None:
    """Save a draw as JSON (atomically)."""
    save_json(path, gt_list_document(draw, split))


def read_gt_list(path: str | Path, recordings: Collection[Recording], split: str) -> list[GtSet]:
    """Read a saved GT list and check it against the split's recordings.

    Accepts this module's document (``{"samples": [...]}``), a dict holding the baseline script's
    ``sample_ids`` list, or a bare list of ``{"input", "target", "gts"}`` entries (recording ids
    ``<role>/session<k>/<stem>``). Every problem is one line naming the file and the entry: an id
    that does not parse or does not exist in ``split``, a target that is not the input's dyad
    partner, a GT of the wrong role, an input listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(path, "GT list not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise file_error(path, f"not a JSON GT list ({exc})") from None
    entries = _entries(path, doc)
    present = set(recordings)
    seen: set[Recording] = set()
    sets: list[GtSet] = []
    for i, entry in enumerate(entries):
        where = f"sample {i}"
        if not isinstance(entry, dict):
            raise file_error(
                path, f"{where} is a {type(entry).__name__}, expected an object with {', '.join(_ENTRY_KEYS)}"
            )
        unknown = sorted(set(entry) - set(_ENTRY_KEYS))
        missing = [k for k in _ENTRY_KEYS if k not in entry]
        if unknown or missing:
            problem = f"unknown key '{unknown[0]}'" if unknown else f"no '{missing[0]}'"
            raise file_error(path, f"{where}: {problem} (an entry has exactly {', '.join(_ENTRY_KEYS)})")
        source = _parse(path, where, "input", entry["input"], present, split)
        where = f"sample {i} ({source.id})"
        target = _parse(path, where, "target", entry["target"], present, split)
        if target != source.opposite():
            raise file_error(path, f"{where}: target {target.id} is not the input's partner {source.opposite().id}")
        if source in seen:
            raise file_error(path, f"{where}: this input is listed twice")
        seen.add(source)
        raw_gts = entry["gts"]
        if not isinstance(raw_gts, list) or not raw_gts:
            raise file_error(path, f"{where}: 'gts' must be a non-empty list of recording ids")
        gts = tuple(_parse(path, where, f"GT {j}", g, present, split) for j, g in enumerate(raw_gts))
        for j, gt in enumerate(gts):
            if gt.role != target.role:
                raise file_error(path, f"{where}: GT {j} {gt.id} is a {gt.role}, the target is a {target.role}")
        sets.append(GtSet(MarsSample(source, target), gts))
    return sets


def check_gt_sets_cover(sets: Sequence[GtSet], samples: Sequence[MarsSample], source: str | Path) -> None:
    """Refuse a GT list whose samples are not exactly ``samples`` in that order (the predictions' order)."""
    listed = [s.sample for s in sets]
    if listed == list(samples):
        return
    if len(listed) != len(samples):
        raise file_error(source, f"lists {len(listed)} samples, the split has {len(samples)} in the evaluated order")
    i = next(i for i, (a, b) in enumerate(zip(listed, samples, strict=True)) if a != b)
    raise file_error(source, f"sample {i} is {listed[i].input.id}, the split's sample {i} is {samples[i].input.id}")


def _entries(path: Path, doc: Any) -> list[Any]:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        for key in ("samples", "sample_ids"):
            if key in doc:
                if not isinstance(doc[key], list):
                    raise file_error(path, f"'{key}' must be a list")
                return doc[key]
        raise file_error(path, "no 'samples' (or 'sample_ids') list")
    raise file_error(path, f"expected a JSON object or list, found {type(doc).__name__}")


def _parse(path: Path, where: str, what: str, value: Any, present: set[Recording], split: str) -> Recording:
    if not isinstance(value, str):
        raise file_error(path, f"{where}: {what} is {value!r}, expected a recording id")
    try:
        rec = Recording.from_id(value)
    except ValueError as exc:
        raise file_error(path, f"{where}: {what}: {exc}") from None
    if rec not in present:
        raise file_error(path, f"{where}: {what} {rec.id} does not exist in the {split} split")
    return rec
