"""Looking up the metrics by name: selections from the command line and the best value.

The names, directions and display order themselves are defined once: REACT 2024's in
:mod:`reactcli.vocab` (``METRICS``), the MARS editions' (2025/2026) in :mod:`reactcli.editions`
(``MARS_METRIC_INFO``; the names both share have the same direction);
every table the toolkit prints or exports (``react evaluate``, ``react baselines``, ``react
compare``) and every metrics.json key comes from there, so that an arrow or a bold "best" value can
never disagree between two tables, and a new metric is added in one place.
"""

from __future__ import annotations

from collections.abc import Iterable

from reactcli.editions import MARS_METRIC_INFO
from reactcli.errors import ReactError
from reactcli.vocab import METRIC_KEYS, METRICS, Metric

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
BY_NAME.update({m.name: m for m in MARS_METRIC_INFO if m.name not in BY_NAME})
#: Every known metric name: REACT 2024's in their order, then the MARS-only ones.
ALL_KEYS: tuple[str, ...] = tuple(BY_NAME)


def metric(name: str) -> Metric:
    """The metric called ``name``; an unknown name is a user error listing the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ReactError(f"unknown metric '{name}' (known: {', '.join(ALL_KEYS)})") from None


def parse_metrics(text: str | None, default: tuple[str, ...] = METRIC_KEYS) -> tuple[str, ...]:
    """A comma-separated selection such as ``"FRC,FRD"`` in the user's order; None or "" = ``default``.

    Names are matched exactly first and then case-insensitively, so ``frd`` works on the command
    line; anything else is one error naming the bad entry.
    """
    if text is None or not text.strip():
        return default
    folded = {name.lower(): name for name in ALL_KEYS}
    chosen: list[str] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name = entry if entry in BY_NAME else folded.get(entry.lower(), entry)
        metric(name)  # raises for an unknown name
        if name in chosen:
            raise ReactError(f"metric '{name}' is listed twice in '{text}'")
        chosen.append(name)
    if not chosen:
        raise ReactError(f"no metric named in '{text}' (known: {', '.join(ALL_KEYS)})")
    return tuple(chosen)


def best(name: str, values: Iterable[float | None]) -> float | None:
    """The best of ``values`` in the metric's direction, ignoring nulls (None when all are null)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return max(present) if metric(name).higher_is_better else min(present)
