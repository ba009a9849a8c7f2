"""``reactcli.atomic`` (files and folders all or nothing, strict JSON, write errors in one line) and
``reactcli.freshness`` (identity records)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from reactcli import atomic
from reactcli.errors import ReactError
from reactcli.freshness import identities, identity, read_record, same_sources, sha256_file


def make_set(folder: Path, tag: str) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text(f"a {tag}")
    (folder / "b.txt").write_text(f"b {tag}")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("exchange", [True, False])
def test_atomic_folder_replaces_a_set_as_a_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    """With the one-call exchange (Linux) and with the two-rename fallback."""
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    target = tmp_path / "set"
    make_set(target, "old")
    with atomic.atomic_folder(target, replaces={"a.txt", "b.txt"}) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".set.")
        (tmp / "a.txt").write_text("a new")
        assert (target / "a.txt").read_text() == "a old"  # nothing visible before the end
    assert contents(target) == {"a.txt": b"a new"}  # the old b.txt went with the old set
    with pytest.raises(RuntimeError), atomic.atomic_folder(target, replaces={"a.txt", "b.txt"}) as tmp:
        (tmp / "a.txt").write_text("a newer")
        raise RuntimeError("killed half-way")
    assert contents(target) == {"a.txt": b"a new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    assert (target.stat().st_mode & 0o777) == (0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_folder_write_errors_are_one_line_and_keep_the_old_set(tmp_path: Path) -> None:
    target = tmp_path / "set"
    before = make_set(target, "old")
    with pytest.raises(ReactError) as exc, atomic.atomic_folder(target, replaces={"a.txt", "b.txt"}) as tmp:
        (tmp / "a.txt").write_text("a new")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(exc.value) == f"{target}: could not write (No space left on device); nothing was changed there"
    # an error about a file inside the staged folder names it where it was going to be
    with pytest.raises(ReactError) as exc, atomic.atomic_folder(target, replaces={"a.txt", "b.txt"}) as tmp:
        atomic.save_json(tmp / "sub" / "x.json", {"v": float("nan")})
    assert str(exc.value) == f"{target / 'sub' / 'x.json'}: not written: v is not a finite number (JSON cannot hold it)"
    assert contents(target) == before
    with pytest.raises(ReactError, match="holds other files \\(c.txt, d.txt\\); give an empty folder"):
        (target / "c.txt").write_text("mine")
        (target / "d.txt").write_text("mine")
        atomic.StagedFolder(target, replaces={"a.txt", "b.txt"})
    with pytest.raises(ReactError, match="is a file; expected a folder"):
        atomic.StagedFolder(target / "a.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_atomic_path_reports_a_full_disk_against_the_target(tmp_path: Path) -> None:
    target = tmp_path / "x.npy"
    atomic.save_npy(target, np.zeros(3))
    old = target.read_bytes()
    atomic.check_space(target, 10)  # an existing (non-executable) file: its folder is what must be writable
    with pytest.raises(ReactError) as exc, atomic.atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(exc.value) == f"{target}: could not write (No space left on device); nothing was changed there"
    assert target.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]
    # an input that cannot be read is its reader's error, not a write error
    with pytest.raises(FileNotFoundError), atomic.atomic_path(target):
        open(tmp_path / "input.csv")  # noqa: SIM115


def test_read_only_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EACCES/EROFS where the temp file or folder is made (simulated: the tests may run as root)."""
    import tempfile

    def refused(*args, dir=None, **kwargs):  # noqa: A002 (tempfile's name)
        raise OSError(errno.EROFS, "Read-only file system", dir)

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    with pytest.raises(ReactError) as exc:
        atomic.save_json(tmp_path / "m.json", {})
    target = tmp_path / "m.json"
    assert str(exc.value) == f"{target}: could not write (Read-only file system); nothing was changed there"
    with pytest.raises(ReactError, match="could not write \\(Read-only file system\\)"):
        atomic.StagedFolder(tmp_path / "set")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ReactError, match=f"{tmp_path / 'out'}: cannot write there \\({tmp_path} is not writable\\)"):
        atomic.check_space(tmp_path / "out", 10)
    assert list(tmp_path.iterdir()) == []


def test_save_json_refuses_nan_naming_the_key(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    atomic.save_json(target, {"ok": 1})
    for value, where in ((float("inf"), "rows.GT[1]"), (float("nan"), "rows.GT[1]")):
        with pytest.raises(ReactError) as exc:
            atomic.save_json(target, {"rows": {"GT": [0.5, value]}})
        assert str(exc.value) == f"{target}: not written: {where} is not a finite number (JSON cannot hold it)"
    assert json.loads(target.read_text()) == {"ok": 1}


def test_identity_records(tmp_path: Path) -> None:
    a = tmp_path / "a.bin"
    a.write_bytes(b"12345")
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "1.png").write_bytes(b"x" * 10)
    (frames / "2.png").write_bytes(b"y" * 7)
    record = identities([a, frames])
    assert record[0]["size"] == 5 and record[1]["size"] == 17 and record[1]["files"] == 2
    stored = json.loads(json.dumps(record))
    assert same_sources(stored, identities([a, frames]))
    stamp = a.stat().st_mtime_ns
    os.utime(a, ns=(stamp - 10**9, stamp - 10**9))  # an OLDER file is another file, not a fresh one
    assert not same_sources(stored, identities([a, frames]))
    os.utime(a, ns=(stamp, stamp))
    assert same_sources(stored, identities([a, frames]))
    (frames / "3.png").write_bytes(b"z")
    assert not same_sources(stored, identities([a, frames]))
    missing = identity(tmp_path / "gone")
    assert missing["size"] is None and not same_sources([missing], [identity(tmp_path / "gone")])
    assert read_record(tmp_path / "none.json") == {} and sha256_file(a) == (
        "5994471abb01112afcc18159f6cc74b4f511b99806da59b3caf5a9c173cacfc5"
    )
    (tmp_path / "list.json").write_text("[1]")
    assert read_record(tmp_path / "list.json") == {}


def test_a_linked_target_is_replaced_where_the_link_points(tmp_path: Path) -> None:
    real = tmp_path / "disk" / "set"
    make_set(real, "old")
    link = tmp_path / "set"
    link.symlink_to(real)
    with atomic.atomic_folder(link, replaces={"a.txt", "b.txt"}) as tmp:
        (tmp / "a.txt").write_text("a new")
    assert link.is_symlink() and contents(real) == {"a.txt": b"a new"}
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["set"]


def test_torch_save_on_a_full_disk_is_the_one_line_error(tmp_path, monkeypatch) -> None:
    """A full disk under torch.save was "basic_ios::clear: iostream error" (issue 26 item 6): written
    through a Python file, the write's ENOSPC becomes the one line naming the target."""
    import builtins

    import torch

    real_open = builtins.open

    def full_disk_open(file, mode="r", *args, **kwargs):
        if "w" in mode and str(file).startswith(str(tmp_path)):
            return real_open("/dev/full", mode, *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk_open)
    target = tmp_path / "predictor.ckpt"
    with pytest.raises(ReactError) as info:
        atomic.save_torch(target, {"w": torch.zeros(100_000)})
    assert str(info.value) == f"{target}: could not write (No space left on device); nothing was changed there"
    assert list(tmp_path.iterdir()) == []
