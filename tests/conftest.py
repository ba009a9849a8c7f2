"""Shared fixtures: small synthetic datasets in the real REACT layout, built once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reactcli.data.synth import make_synthetic_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def make_synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``make_synth(train=2, val=4, test=0, video="none", emotion_dirs="roles", seed=0)``."""
    made: dict[tuple, Path] = {}

    def build(
        train: int = 2, val: int = 4, test: int = 0, video: str = "none", emotion_dirs: str = "roles", seed: int = 0
    ) -> Path:
        key = (train, val, test, video, emotion_dirs, seed)
        if key not in made:
            root = tmp_path_factory.mktemp("synth")
            make_synthetic_dataset(
                root, {"train": train, "val": val, "test": test}, video=video, emotion_dirs=emotion_dirs, seed=seed
            )
            made[key] = root
        return made[key]

    return build


@pytest.fixture(scope="session")
def synth_root(make_synth: Callable[..., Path]) -> Path:
    """train 6, val 6 (incl. the four submission clips), test 2 pairs; mp4 video. Do not modify it."""
    return make_synth(train=6, val=6, test=2, video="mp4")


@pytest.fixture(scope="session")
def preprocessed_root(synth_root: Path) -> Path:
    """``synth_root`` after ``react preprocess --splits train,val,test`` (default MFCC features)."""
    from reactcli.cli import main

    try:
        main(["preprocess", "--data", str(synth_root), "--splits", "train,val,test"])
    except SystemExit as exc:  # typer exits 0 on success
        if exc.code not in (0, None):
            raise
    return synth_root


@pytest.fixture(scope="session")
def pirender(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random PIRender weights (seed 0) in the official layout, ``{"state_dict": ...}``. Read-only:
    a test that changes the file works on a copy."""
    import torch

    from reactcli.render.pirender import PIRender

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "cur_model_fold.pth"
    torch.save({"state_dict": PIRender().state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def inception(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random FID Inception weights in the official layout (``_weight_fixtures.save_random_inception``). Read-only."""
    from _weight_fixtures import save_random_inception

    return save_random_inception(tmp_path_factory.mktemp("weights") / "pt_inception-2015-12-05-6726825d.pth")


def copy_dataset(src: Path, dst: Path) -> Path:
    """A private copy of a fixture dataset for tests that damage files."""
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".react_cache"))
    return dst


def one_line_error(capsys: pytest.CaptureFixture[str], needle: str) -> None:
    """What the command printed on stderr (progress bars aside) is one ``error: ...`` line holding
    ``needle``, without a traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "━" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err


def run_cli(args: list[str]) -> int:
    """Run ``react`` in-process and return its exit code (0 when it returns normally)."""
    from reactcli.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
