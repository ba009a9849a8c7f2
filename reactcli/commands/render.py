"""``react render``: mesh videos (with the speaker's sound) and emotion plots of generated reactions.

REACT 2024 roots render through ``render/clips.py`` (mirrored samples, 25 fps), MARS roots (REACT
2025/2026) through ``render/mars_clips.py`` (input recordings, 30 fps, any length); this module
parses, dispatches and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.commands.common import (
    ConfigOption,
    DataOption,
    DeviceOption,
    EditionOption,
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
        bool, typer.Option("--submit-only", help="REACT 2024: only the four clips the challenge asks teams to render.")
    ] = False,
    clips: Annotated[
        list[str] | None,
        typer.Option("--clips", help="MARS: these samples (input recording ids, comma-separated or repeated)."),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="MARS: every sample of the split (default: 4, one per session).")
    ] = False,
    face_model: Annotated[
        Path | None, typer.Option("--face-model", help="faceverse_simple_v2.npy (default: the built-in face).")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option("--reference", help="reference_full.npy: identity for --face-model.")
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option("--sample", min=0, help="Which of the K reactions to show (default: 2024 drawn by seed, MARS 0)."),
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
    edition: EditionOption = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    threads: ThreadsOption = None,
) -> None:
    """One mp4 per clip at the data's frame rate with the speaker's audio: speaker video, listener
    video, listener ground-truth mesh and generated mesh side by side, plus a PNG of the emotion curves.

    REACT 2024: 25 fps, every sample of the split or --submit-only's four. MARS (REACT 2025/2026):
    30 fps, clips of any length with the sound cut to the video, a ragged prediction set whose ids
    are the split's samples; by default 4 samples (one per session), or --clips, --limit, --all.
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
    from reactcli.render.clips import (
        DatasetClips,
        RenderContext,
        choose_reaction,
        open_predictions,
        render_jobs,
        select_jobs,
    )
    from reactcli.render.face_space import face_space
    from reactcli.render.mars_clips import render_edition
    from reactcli.runtime import resolve_device, seed_everything

    cfg = build_config(
        config, sets, render={"backend": backend, "face_model": face_model, "reference": reference}
    ).render
    if not photo and (pirender is not None or reference_image is not None):
        raise ReactError("--pirender and --reference-image are for the photo panel: add --photo")
    if photo and pirender is None:
        raise ReactError("--photo needs --pirender cur_model_fold.pth (the REACT organisers' PIRender weights)")
    record = None if edition is not None else _peek_record(predictions)
    chosen = render_edition(data, edition, record)
    dev = resolve_device(device)
    seed_everything(seed)
    if chosen.is_mars:
        if submit_only:
            raise ReactError(
                "--submit-only: MARS (REACT 2025/2026) has no submission clip list; use --clips or --limit"
            )
        from reactcli.render.mars_clips import open_mars_clips, parse_clip_ids, select_mars_jobs

        fps_given = "fps" in cfg.model_fields_set
        if fps_given and cfg.fps != chosen.fps:
            raise ReactError(
                f"render.fps = {cfg.fps}: MARS data runs at {chosen.fps} fps, and a video at another rate than its "
                f"frames drifts away from the speaker's audio; drop the setting or set it to {chosen.fps}"
            )
        clip_data, preds = open_mars_clips(data, split, predictions, chosen.name)
        jobs = select_mars_jobs(clip_data, parse_clip_ids(clips), limit, every)
        clip_data.check_jobs(jobs, preds)
        data_source: object = clip_data
        fps = chosen.fps
    else:
        given = [flag for flag, on in (("--clips", bool(clips)), ("--all", every)) if on]
        if given:
            raise ReactError(f"{', '.join(given)}: for MARS datasets (REACT 2025/2026) only; {data} is REACT 2024")
        layout = DatasetLayout(data)
        jobs, missing = select_jobs(data, split, submit_only, limit)
        if missing:
            console.print(
                f"[yellow]submission clips not in {split}: {', '.join(missing)}; rendering the first "
                f"{len(jobs)} samples instead[/]"
            )
        preds = open_predictions(predictions, data, split)
        data_source = DatasetClips(layout, split)
        fps = cfg.fps
    if sample is not None:
        choose_reaction(preds.K, sample, seed, 0)  # an out-of-range --sample fails before any clip
    if not preds.has_emotion:
        console.print(f"[yellow]no emotion.npy in {predictions}: emotion plots are skipped[/]")
    model, camera, renderer = build_renderer(cfg, dev)
    photo_renderer, reference = None, None
    if photo:
        from reactcli.render.photo import REACT_2024, PhotoRenderer, mars_protocol, read_reference_image

        reference = None if reference_image is None else read_reference_image(reference_image)
        protocol = mars_protocol() if chosen.is_mars else REACT_2024
        photo_renderer = PhotoRenderer.load(pirender, dev, batch=cfg.chunk, protocol=protocol)  # type: ignore[arg-type]
    ctx = RenderContext(
        data=data_source, predictions=preds, model=model, renderer=renderer, camera=camera,  # type: ignore[arg-type]
        out=Path(out), fps=fps, chunk=cfg.chunk, max_frames=max_frames, sample=sample, seed=seed, device=dev,
        photo=photo_renderer, reference_image=reference, face_space=face_space(preds.record, preds.path),
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
    where = f"REACT {chosen.name} {split}, {fps} fps"
    table = Table(title=f"react render: {where}, {model.name}, {cfg.backend} backend{extra}")
    clip_column = "input recording" if chosen.is_mars else "speaker clip"
    for col in ("sample", clip_column, "reaction", "video", "plot", "status"):
        table.add_column(col)
    for r in results:
        table.add_row(
            str(r.job.index), r.job.speaker, str(r.reaction), r.video.name,
            r.plot.name if r.plot else "(no emotion.npy)", r.status,
        )  # fmt: skip
    console.print(table)
    console.print(f"videos in [bold]{out}[/]")


def _peek_record(predictions: Path) -> dict | None:
    """The prediction set's record, read only to learn a MARS root's edition when its folders cannot
    tell (errors are left to the real opening of the set)."""
    import json

    from reactcli.vocab import GENERATION_FILE

    try:
        record = json.loads((Path(predictions) / GENERATION_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
