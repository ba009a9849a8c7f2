"""``--resume``: the last checkpoint of an interrupted run, read back as the same run.

Both stages write ``<stage>_last.ckpt`` with a ``training_state`` (optimiser, scheduler, step, seed)
at every validation and when stopped by a signal. Batches and dropout noise are functions of
(seed, step, rank), so a resumed run continues the very same run, bit for bit. A resumed run must be
that run: every setting the stage reads is taken from the checkpoint, and one the command line
changed is refused, except the few a stage lets the command line set (more steps, how often to
validate and log).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reactcli.config import ReactConfig, config_to_dict
from reactcli.errors import file_error
from reactcli.models.checkpoint import read_checkpoint, stored_config

# Settings of section.key that belong to a stage's run (a change to them is refused on resume).
RunKey = Callable[[str, str], bool]


@dataclass(frozen=True)
class ResumePoint:
    path: Path
    config: ReactConfig  # the stored run's settings, with the command line's FROM_COMMAND_LINE keys
    seed: int
    step: int
    data: dict  # the whole checkpoint
    state: dict  # its training_state


def training_state(
    optimizer: torch.optim.Optimizer, scheduler: Any, step: int, seed: int, **extra: Any
) -> dict[str, Any]:
    """What ``--resume`` needs besides the weights (stored as the checkpoint's ``training_state``)."""
    return {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step, "seed": seed,
            **extra}


def read_resume_point(
    path: Path, kind: str, given: ReactConfig, run_key: RunKey, from_command_line: Sequence[str]
) -> ResumePoint:
    """Open ``path`` for ``--resume``; refuse a checkpoint without training state or a changed setting.

    ``run_key(section, key)`` says which settings belong to the run; ``training.<from_command_line>``
    are taken from ``given`` instead of the checkpoint.
    """
    if not path.is_file():
        raise file_error(path, "--resume: no checkpoint of an interrupted run here (train without --resume)")
    data = read_checkpoint(path, kind)
    state = data.get("training_state")
    if not isinstance(state, dict) or not {"step", "seed", "optimizer", "scheduler"} <= set(state):
        raise file_error(path, "--resume: checkpoint holds no training state")
    stored = stored_config(path, data)
    a, b = config_to_dict(stored), config_to_dict(given)
    for section, values in a.items():
        for key, value in values.items():
            if run_key(section, key) and not (section == "training" and key in from_command_line) \
                    and b[section].get(key) != value:
                raise file_error(
                    path, f"--resume: this run used {section}.{key} = {value!r} but the config now says "
                    f"{b[section].get(key)!r}; resume with the same settings or start a new --out folder",
                )
    training = stored.training.model_copy(update={k: getattr(given.training, k) for k in from_command_line})
    return ResumePoint(path, stored.model_copy(update={"training": training}), int(state["seed"]),
                       int(state["step"]), data, state)


def restore_optimizer(point: ResumePoint, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    try:
        optimizer.load_state_dict(point.state["optimizer"])
        scheduler.load_state_dict(point.state["scheduler"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise file_error(point.path, f"--resume: optimiser state does not fit the model ({exc})") from None
