"""``react render``: mesh videos (with the speaker's sound) and emotion plots of generated reactions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.commands.common import (
    ConfigOption,
    DataOption,
    DeviceOption,
    PirenderOption,
    SeedOption,
    SetOption,
    SplitOption,
    ThreadsOption,
    apply_threads,
)


def render(
    data: DataOption,
    predictions: Annotated[
        Path, typer.Option("--predictions", help="Folder of `react generate` (face3dmm.npy, emotion.npy).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the mp4s and PNG plots.")],
    split: SplitOption = "val",
    submit_only: Annotated[
        bool, typer.Option("--submit-only", help="Only the four clips the challenge asks teams to render.")
    ] = False,
    face_model: Annotated[
        Path | None, typer.Option("--face-model", help="faceverse_simple_v2.npy (default: the built-in face).")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option("--reference", help="reference_full.npy: identity for --face-model.")
    ] = None,
    sample: Annotated[
        int | None, typer.Option("--sample", min=0, help="Which of the K reactions to show (default: drawn by seed).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Render at most this many clips.")] = None,
    max_frames: Annotated[
        int | None, typer.Option("--max-frames", min=1, help="Only the first N frames of each clip (preview).")
    ] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="builtin (default) or pytorch3d.")] = None,
    photo: Annotated[
        bool, typer.Option("--photo", help="Add a photo-realistic panel rendered by PIRender (needs --pirender).")
    ] = False,
    pirender: PirenderOption = None,
    reference_image: Annotated[
        Path | None,
        typer.Option("--reference-image", help="Photo reference (PNG/JPG) instead of the listener's first frame."),
    ] = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    config: ConfigOption = None,
    sets: SetOption = None,
    threads: ThreadsOption = None,
) -> None:
    """One 25 fps mp4 per clip with the speaker's audio: speaker video, listener video, listener
    ground-truth mesh and generated mesh side by side, plus a PNG of the emotion curves.

    With --photo --pirender cur_model_fold.pth a fifth panel shows the generated reaction rendered
    by PIRender as the official renderer drives it (reference: the listener's first video frame).
    Videos are named after the speaker clip (OUT/<clip>.mp4); OUT/render.json records each finished
    one (what it shows, made from what), and a rerun skips those it still vouches for.
    """
    apply_threads(threads)
    import torch

    from reactcli.commands.common import build_config
    from reactcli.data.layout import DatasetLayout
    from reactcli.errors import ReactError
    from reactcli.progress import console
    from reactcli.render.build import build_renderer
    from reactcli.render.clips import RenderContext, open_predictions, render_jobs, select_jobs
    from reactcli.runtime import resolve_device, seed_everything

    cfg = build_config(
        config, sets, render={"backend": backend, "face_model": face_model, "reference": reference}
    ).render
    if not photo and (pirender is not None or reference_image is not None):
        raise ReactError("--pirender and --reference-image are for the photo panel: add --photo")
    if photo and pirender is None:
        raise ReactError("--photo needs --pirender cur_model_fold.pth (the REACT organisers' PIRender weights)")
    dev = resolve_device(device)
    seed_everything(seed)
    layout = DatasetLayout(data)
    jobs, missing = select_jobs(data, split, submit_only, limit)
    if missing:
        console.print(
            f"[yellow]submission clips not in {split}: {', '.join(missing)}; rendering the first "
            f"{len(jobs)} samples instead[/]"
        )
    preds = open_predictions(predictions, data, split)
    if not preds.has_emotion:
        console.print(f"[yellow]no emotion.npy in {predictions}: emotion plots are skipped[/]")
    model, camera, renderer = build_renderer(cfg, dev)
    photo_renderer, reference = None, None
    if photo:
        from reactcli.render.photo import PhotoRenderer, read_reference_image

        reference = None if reference_image is None else read_reference_image(reference_image)
        photo_renderer = PhotoRenderer.load(pirender, dev, batch=cfg.chunk)  # type: ignore[arg-type]
    ctx = RenderContext(
        layout=layout, split=split, predictions=preds, model=model, renderer=renderer, camera=camera,
        out=Path(out), fps=cfg.fps, chunk=cfg.chunk, max_frames=max_frames, sample=sample, seed=seed, device=dev,
        photo=photo_renderer, reference_image=reference,
    )  # fmt: skip
    threads = torch.get_num_threads()
    if dev.type == "cpu" and cfg.threads and not photo:
        # small tensors: one thread beats two (ffmpeg uses the other core); PIRender's large
        # convolutions do use every core, so --photo keeps torch's thread count
        torch.set_num_threads(cfg.threads)
    try:
        results = render_jobs(ctx, jobs)
    finally:
        torch.set_num_threads(threads)

    from rich.table import Table

    extra = ", photo panel (PIRender)" if photo else ""
    table = Table(title=f"react render: {split}, {model.name}, {cfg.backend} backend{extra}")
    for col in ("sample", "speaker clip", "reaction", "video", "plot", "status"):
        table.add_column(col)
    for r in results:
        table.add_row(
            str(r.job.index), r.job.speaker, str(r.reaction), r.video.name,
            r.plot.name if r.plot else "(no emotion.npy)", r.status,
        )  # fmt: skip
    console.print(table)
    console.print(f"videos in [bold]{out}[/]")
