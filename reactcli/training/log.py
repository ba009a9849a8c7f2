"""Training logs a researcher can read: ``<stage>_log.csv``, ``<stage>_curves.png``, TensorBoard.

Why a CSV first: it survives a kill (one flushed line per logged step), continues across
``--resume`` (rows after the step the run resumes from are dropped, since those steps are trained
again: one row per step), opens in pandas, a spreadsheet or ``grep``, and two runs compare with one
``diff``. The curves PNG is drawn from that CSV at the end of a run (so a resumed run's plot covers
the whole history). A stage whose loss changes meaning part-way (the tokenizer's emotion-only
phase) logs a ``phase`` column, gets a row at the last step of each phase, and its curves mark
where the next begins. TensorBoard event files are optional (``--tensorboard`` /
``training.tensorboard``; needs the ``tensorboard`` extra).

Only rank 0 of a torchrun job logs: the loop hands the other ranks no log object.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from reactcli.errors import ReactError, file_error

PHASE = "phase"  # the column (after step) of a stage whose loss changes meaning part-way
TAIL_COLUMNS = ("lr", "grad_norm", "frames_per_s", "mfu", "val_loss")
ADDED_COLUMNS = ("mfu",)  # columns a log of an older version lacks; --resume adds them (empty) to its rows


def log_path(out_dir: Path, stage: str) -> Path:
    return Path(out_dir) / f"{stage}_log.csv"


def curves_path(out_dir: Path, stage: str) -> Path:
    return Path(out_dir) / f"{stage}_curves.png"


class TrainingLog:
    """One stage's CSV log (one row per logged step) and optional TensorBoard writer.

    ``parts`` names the loss components the stage reports (e.g. ``ce``, ``emotion_mse``) and
    ``val_parts`` the validation figures besides ``val_loss``; ``phases`` adds the ``phase`` column.
    The header is fixed at creation so every row has the same columns, and a resumed run must log
    the same ones. ``resume_step`` (the step the run resumes from) continues an existing log: its
    rows up to that step are kept, later ones dropped.
    """

    def __init__(
        self,
        out_dir: Path,
        stage: str,
        parts: Sequence[str] = (),
        val_parts: Sequence[str] = (),
        resume_step: int | None = None,
        tensorboard: bool = False,
        phases: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.stage = stage
        self.path = log_path(out_dir, stage)
        self.columns = ["step", *([PHASE] if phases else []), "loss", *parts, *TAIL_COLUMNS, *val_parts]
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.is_file():
            _keep_rows_until(self.path, self.columns, resume_step)
            self._fh = open(self.path, "a", newline="")  # noqa: SIM115  (kept open for the whole run)
        else:
            self._fh = open(self.path, "w", newline="")  # noqa: SIM115
            csv.writer(self._fh).writerow(self.columns)
            self._fh.flush()
        self._writer = csv.writer(self._fh)
        self._tb = _tensorboard_writer(self.out_dir / "tb" / stage) if tensorboard else None

    def write(self, step: int, values: Mapping[str, float | str | None]) -> None:
        """Append one row; missing or non-finite values are left blank (a part not computed that step)."""
        unknown = set(values) - set(self.columns)
        if unknown:
            raise ValueError(f"{self.stage} log has no columns {sorted(unknown)}")
        row = {"step": step, **values}
        self._writer.writerow([_cell(row.get(c)) for c in self.columns])
        self._fh.flush()
        if self._tb is not None:
            for name, value in values.items():
                if isinstance(value, float | int) and math.isfinite(value):
                    self._tb.add_scalar(f"{self.stage}/{name}", value, step)

    def close(self) -> Path | None:
        """Close the files and draw the curves PNG; returns its path (None if nothing was logged)."""
        self._fh.close()
        if self._tb is not None:
            self._tb.close()
        return plot_curves(self.path, curves_path(self.out_dir, self.stage), self.stage)


def _keep_rows_until(path: Path, columns: list[str], step: int) -> None:
    """Check a resumed log's header and drop its rows after ``step`` (rewritten atomically)."""
    from reactcli.atomic import atomic_path

    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0] if rows else []
    added = [c for c in ADDED_COLUMNS if c in columns and c not in header]
    if added and header == [c for c in columns if c not in added]:
        # a log written before these columns existed: they are added, empty in its rows
        at = [columns.index(c) for c in added]
        rows = [columns] + [_insert_blanks(row, at) for row in rows[1:]]
        header = columns
        upgraded = True
    else:
        upgraded = False
    if header != columns:
        raise file_error(path, f"--resume: log columns {header} differ from this run's {columns}")
    try:
        kept = [row for row in rows[1:] if int(row[0]) <= step]
    except (ValueError, IndexError):
        raise file_error(path, "--resume: a row of the log has no step number; move the log away") from None
    if len(kept) == len(rows) - 1 and not upgraded:
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *kept])


def _insert_blanks(row: list[str], at: list[int]) -> list[str]:
    out = list(row)
    for i in at:
        out.insert(i, "")
    return out


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def _tensorboard_writer(folder: Path):  # noqa: ANN202  (SummaryWriter is an optional import)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ReactError(
            "--tensorboard needs the tensorboard package: pip install 'reactcli[tensorboard]'"
        ) from None
    return SummaryWriter(log_dir=str(folder))


def read_log(path: Path):  # noqa: ANN201  (a pandas DataFrame; pandas is imported lazily)
    """The log as a DataFrame; a resumed run's repeated steps keep their latest row."""
    import pandas as pd

    frame = pd.read_csv(path)
    return frame.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)


def plot_curves(log: Path, out: Path, stage: str) -> Path | None:
    """Train and val loss (log scale) and the learning rate against the step, as one PNG."""
    frame = read_log(log)
    if frame.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reactcli.atomic import atomic_path

    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, height_ratios=(3, 1))
    for step, phase in phase_starts(frame):
        ax_loss.axvline(step, color="tab:red", ls="--", lw=1)
        ax_loss.text(step, 0.03, f" train loss: {phase.replace('_', ' ')} from here", rotation=90, va="bottom",
                     ha="right", fontsize=8, color="tab:red", transform=ax_loss.get_xaxis_transform())
    train = frame.dropna(subset=["loss"])
    ax_loss.plot(train["step"], train["loss"], label="train loss", lw=1)
    val = frame.dropna(subset=["val_loss"])
    if not val.empty:
        ax_loss.plot(val["step"], val["val_loss"], "o-", label="val loss", lw=1.5, ms=3)
    if (train["loss"] > 0).all() and (val["val_loss"] > 0).all():
        ax_loss.set_yscale("log")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_loss.set_title(f"{stage} training")
    lr = frame.dropna(subset=["lr"])
    ax_lr.plot(lr["step"], lr["lr"], color="tab:gray", lw=1)
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("step")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out


def phase_starts(frame) -> list[tuple[int, str]]:  # noqa: ANN001  (a pandas DataFrame)
    """(step, phase) where a new phase begins: the step of the last row of the phase before it."""
    if PHASE not in frame:
        return []
    rows = frame.dropna(subset=[PHASE])
    steps, phases = rows["step"].tolist(), rows[PHASE].tolist()
    return [(int(steps[i - 1]), str(phases[i])) for i in range(1, len(rows)) if phases[i] != phases[i - 1]]
