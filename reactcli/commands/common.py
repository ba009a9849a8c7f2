"""Options shared by several commands, so that flags are spelled the same everywhere."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from reactcli.config import ReactConfig, load_config, parse_overrides
from reactcli.errors import ReactError, file_error

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config (e.g. configs/tiny.toml); flags and REACT_* env win."),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override one setting: --set section.key=value (repeatable)."),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same output.")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
DataOption = Annotated[Path, typer.Option("--data", help="Dataset root (holds train.csv, val.csv, ...).")]
SplitOption = Annotated[str, typer.Option("--split", help="train, val or test.")]
PirenderOption = Annotated[
    Path | None, typer.Option("--pirender", help="The REACT organisers' PIRender weights, cur_model_fold.pth.")
]
InceptionOption = Annotated[
    Path | None, typer.Option("--inception", help="pytorch-fid's weights, pt_inception-2015-12-05-6726825d.pth.")
]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="Threads for FRD (default: all CPU cores).")
]
# -- REACT 2025/2026 (MARS): evaluate and baselines (docs/mars.md) ---------------------------------
EditionOption = Annotated[
    str | None,
    typer.Option("--edition", help="2024, 2025 or 2026; needed only for a MARS root without EEG or personality."),
]
PostProcessorOption = Annotated[
    Path | None,
    typer.Option("--post-processor", help="MARS: the organisers' post-processor checkpoint.pth (length alignment)."),
]
AlignmentOption = Annotated[
    str | None,
    typer.Option(
        "--alignment",
        help="MARS: official (seeded stochastic call, default), mean (latent mean) or resample "
        "(non-official, no checkpoint).",
    ),
]
AlignmentSeedOption = Annotated[
    int | None,
    typer.Option("--alignment-seed", help="MARS: torch seed of the official alignment (default 1234, the script's)."),
]
GtSeedOption = Annotated[
    int | None, typer.Option("--gt-seed", help="MARS: seed of the ground-truth draw (default 1234, the script's).")
]
GtListOption = Annotated[
    Path | None, typer.Option("--gt-list", help="MARS: replay these ground-truth sets (JSON) instead of drawing.")
]
BidirectionalOption = Annotated[
    bool | None,
    typer.Option(
        "--bidirectional/--no-bidirectional",
        help="MARS: listeners as inputs too (default: 2025 yes, 2026 no).",
        show_default=False,
    ),
]
#: The MARS scoring options (``metrics.mars_truth.ScoringOptions``' fields) by the flags that set them.
MARS_FLAGS = {
    "post_processor": "--post-processor", "alignment": "--alignment", "alignment_seed": "--alignment-seed",
    "gt_seed": "--gt-seed", "gt_list": "--gt-list", "bidirectional": "--bidirectional/--no-bidirectional",
    "device": "--device",
}  # fmt: skip


def refuse_mars_options(data: Path, given: Mapping[str, Any]) -> None:
    """On a REACT 2024 root, the MARS options given (``None`` = not given) are one error naming them all."""
    flags = [MARS_FLAGS[key] for key, value in given.items() if value is not None]
    if flags:
        raise ReactError(f"{', '.join(flags)}: for MARS datasets (REACT 2025/2026) only; {data} is REACT 2024")


TensorboardOption = Annotated[
    bool, typer.Option("--tensorboard", help="Also write TensorBoard events under OUT/tb/ (needs the extra).")
]
PeakTflopsOption = Annotated[
    float | None,
    typer.Option("--peak-tflops", min=0.001, help="The device's peak TFLOPS for the log's mfu column "
                 "(training.peak_tflops; default: the CUDA device's dense bf16 peak when known, none on a CPU)."),
]


def build_config(
    config: Path | None,
    assignments: list[str] | None,
    base: tuple[str, Mapping[str, Any]] | None = None,
    only: frozenset[str] | None = None,
    **direct: dict[str, Any] | None,
) -> ReactConfig:
    """Load a config through the one layered loader, ``--set`` and a command's own flags on top (flags win).

    ``direct`` maps a section name to the settings a command's dedicated options set; ``None``
    values mean "flag not given" and are dropped so they do not mask the file or environment.
    ``base`` and ``only`` are passed to :func:`reactcli.config.load_config` (``react generate``:
    the checkpoint's configuration, of which only ``generation.*`` may change).
    """
    return load_config(config, collect_overrides(assignments, **direct), base=base, only=only)


def collect_overrides(assignments: list[str] | None, **direct: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The command-line layer: ``--set`` assignments with the command's own flags on top (``None`` = not given)."""
    overrides = parse_overrides(assignments or [])
    for section, values in direct.items():
        for key, value in (values or {}).items():
            if value is not None:
                overrides.setdefault(section, {})[key] = value
    return overrides


def check_writable(path: Path) -> None:
    """Refuse an output file that could not be written, before the work rather than after it.

    Creates and removes a temp file in the nearest existing folder on the way to ``path`` (where
    ``reactcli.atomic`` will write, or create the folders), so nothing is left behind.
    """
    target = Path(path)
    if target.is_dir():
        raise file_error(target, "is a folder, expected a file name")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise file_error(target, f"cannot be written: {folder} is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        raise file_error(target, f"cannot be written: {exc.strerror or exc} ({folder})") from None
    os.close(fd)
    os.unlink(name)


ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="CPU threads for torch and numba (default: the cores this process may use). On a machine shared "
        "with another job, use fewer than the free cores: threads that wait for a busy core stall every step.",
    ),
]


def apply_threads(threads: int | None) -> int:
    """Set the CPU threads (``runtime.configure_threads``) and print its warning, if any, on stderr."""
    from reactcli.runtime import configure_threads

    used, warning = configure_threads(threads)
    if warning:
        typer.secho(f"warning: {warning}", err=True, fg="yellow")
    return used
