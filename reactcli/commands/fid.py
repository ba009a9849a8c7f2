"""``react fid``: the FID of two image folders, the torchvision-free drop-in for ``python -m pytorch_fid``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.commands.common import ThreadsOption, apply_threads, check_writable


def fid(
    real_dir: Annotated[Path, typer.Argument(help="Folder of real images (png, jpg, ...; not recursive).")],
    fake_dir: Annotated[Path, typer.Argument(help="Folder of generated images.")],
    inception: Annotated[
        Path,
        typer.Option("--inception", help="pytorch-fid's weights file pt_inception-2015-12-05-6726825d.pth."),
    ],
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON here.")] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images per forward pass (the FID does not depend on it).")
    ] = 50,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    threads: ThreadsOption = None,
) -> None:
    """Frechet Inception Distance between two image folders, equal to ``python -m pytorch_fid`` on them.

    Uses pytorch-fid 0.3.0's network and preprocessing (2048-d pool3 features, bilinear resize to
    299 x 299) rebuilt in plain torch; the weights file is never downloaded, give its path.
    """
    apply_threads(threads)
    from reactcli.metrics.inception import fid_of_folders, list_images, load_inception
    from reactcli.progress import console, err_console, make_progress
    from reactcli.runtime import resolve_device

    if json_out is not None:
        check_writable(json_out)  # before the features, not after them
    files = (list_images(real_dir), list_images(fake_dir))
    dev = resolve_device(device)
    model = load_inception(inception, dev)
    with make_progress() as progress:
        task = progress.add_task("Inception features", total=len(files[0]) + len(files[1]), info="")
        result = fid_of_folders(real_dir, fake_dir, model, batch_size, dev,
                                on_progress=lambda n: progress.advance(task, n), files=files)
    console.print(f"FID: {result['fid']:.6f}", markup=False, highlight=False)
    err_console.print(
        f"[dim]{result['real_images']} real, {result['fake_images']} fake images; {result['extractor']}[/dim]"
    )
    if json_out is not None:
        from reactcli.atomic import save_json

        save_json(json_out, result)
        err_console.print(f"wrote {json_out}", markup=False)
