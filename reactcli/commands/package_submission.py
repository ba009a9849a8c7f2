"""``react package-submission``: build a validated submission zip from a run folder, or check one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def package_submission(
    run: Annotated[
        Path | None,
        typer.Option("--run", help="Run folder: predictions/, videos/, metrics.json, *.ckpt (see the docs)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Archive to write (default: RUN/submission.zip).")] = None,
    check: Annotated[
        Path | None, typer.Option("--check", help="Verify an existing archive (hashes, shapes, rules) instead.")
    ] = None,
) -> None:
    """Package predictions, videos, metrics, configs and checkpoints with a manifest, after
    validating them (K = 10, T = 750, no NaN, the four submission videos); or --check an archive.

    Nothing is written when validation fails. --check prints OK or every problem and exits 1.
    """
    from rich.table import Table

    from reactcli.errors import ReactError
    from reactcli.progress import console
    from reactcli.submission import check_archive, package_run

    if check is not None:
        if run is not None or out is not None:
            raise ReactError("--check takes an archive on its own (no --run/--out)")
        problems, manifest = check_archive(check)
        if problems:
            for problem in problems:
                console.print(f"[red]- {problem}[/]")
            raise ReactError(f"{check}: {len(problems)} problem(s); first: {problems[0]}")
        assert manifest is not None
        console.print(
            f"[green]OK[/] {check}: {len(manifest['files'])} files verified (sha256, shapes), split "
            f"{manifest['split']}, N = {manifest['N']}, K = {manifest['K']}, T = {manifest['T']}, "
            f"{manifest['model_type']}, reactcli {manifest['toolkit_version']}"
        )
        return
    if run is None:
        raise ReactError("give --run DIR (to package) or --check ARCHIVE (to verify)")
    target = out if out is not None else Path(run) / "submission.zip"
    manifest = package_run(Path(run), target)
    table = Table(title=f"submission {target}")
    for col in ("file", "bytes", "shape"):
        table.add_column(col)
    for entry in manifest["files"]:
        table.add_row(entry["path"], f"{entry['bytes']:,}", str(tuple(entry["shape"])) if "shape" in entry else "")
    console.print(table)
    console.print(
        f"[green]wrote[/] {target} (split {manifest['split']}, N = {manifest['N']}, K = {manifest['K']}, "
        f"T = {manifest['T']}); verify with `react package-submission --check {target}`"
    )
