"""``react preprocess``: validate a dataset and fill the feature cache (resumable)."""

from __future__ import annotations

from typing import Annotated

import typer

from reactcli.commands.common import ConfigOption, DataOption, DeviceOption, SeedOption, SetOption, build_config
from reactcli.errors import ReactError


def preprocess(
    data: DataOption,
    config: ConfigOption = None,
    splits: Annotated[str, typer.Option("--splits", help="Comma-separated splits to check and cache.")] = "train,val",
    set_: SetOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
) -> None:
    """Check every clip (table of problems), compute train 3DMM mean/std, cache per-frame audio features."""
    from rich.table import Table

    from reactcli.data.preprocess import preprocess_dataset
    from reactcli.progress import console, print_problems
    from reactcli.runtime import resolve_device, seed_everything

    cfg = build_config(config, set_)
    seed_everything(seed)
    chosen = [s.strip() for s in splits.split(",") if s.strip()]
    result = preprocess_dataset(data, cfg, chosen, str(resolve_device(device)))

    summary = Table(title=f"preprocess {result.root} ({result.feature_tag})")
    for column in ("split", "clips", "cached now", "already cached", "problems"):
        summary.add_column(column, justify="right" if column != "split" else "left")
    for split, c in result.counts.items():
        n_problems = sum(p.split == split for p in result.problems)
        summary.add_row(split, str(c.clips), str(c.cached), str(c.skipped), str(n_problems))
    console.print(summary)
    if result.problems:
        print_problems("problems", [(p.split, p.path, p.problem) for p in result.problems])
        raise ReactError(f"{result.root}: {len(result.problems)} problem(s) found (listed above); fix them and rerun")
    if result.face_stats is not None:
        console.print(f"train 3DMM statistics: {result.face_stats}")
