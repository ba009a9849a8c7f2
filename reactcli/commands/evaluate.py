"""``react evaluate``: the metrics of a prediction set, as a table and a JSON.

REACT 2024 roots get the seven 2024 metrics (``metrics/evaluate.py``); MARS roots (REACT 2025/2026,
told apart by ``editions.detect_edition``) get the organisers' MARS metrics through
``metrics/mars_evaluate.py``. This module parses, dispatches and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reactcli.commands.common import (
    AlignmentOption,
    AlignmentSeedOption,
    BidirectionalOption,
    DataOption,
    EditionOption,
    GtListOption,
    GtSeedOption,
    InceptionOption,
    PirenderOption,
    PostProcessorOption,
    SplitOption,
    ThreadsOption,
    WorkersOption,
    apply_threads,
    check_writable,
    refuse_mars_options,
)
from reactcli.errors import ReactError

if TYPE_CHECKING:
    from reactcli.editions import Edition


def evaluate(
    data: DataOption,
    predictions: Annotated[
        Path,
        typer.Option(
            "--predictions",
            help="(N, K, T, 25) .npy/.pt, or a react generate folder; MARS: also the organisers' results.pt.",
        ),
    ],
    split: SplitOption = "val",
    out: Annotated[Path | None, typer.Option("--out", help="Write the metrics as JSON here.")] = None,
    workers: WorkersOption = None,
    pirender: PirenderOption = None,
    inception: InceptionOption = None,
    realism_protocol: Annotated[
        str,
        typer.Option("--realism-protocol", help="FRRea frames: official-2024 (the baseline's subset) or all."),
    ] = "official-2024",
    realism_max_images: Annotated[
        int | None,
        typer.Option("--realism-max-images", min=2, help="FRRea on only the first N frames (a quick look)."),
    ] = None,
    device: Annotated[
        str,
        typer.Option("--device", help="auto, cpu, cuda or cuda:N (cuda: FRD on the GPU), FRRea, MARS post-processor."),
    ] = "auto",
    edition: EditionOption = None,
    post_processor: PostProcessorOption = None,
    alignment: AlignmentOption = None,
    alignment_seed: AlignmentSeedOption = None,
    gt_seed: GtSeedOption = None,
    gt_list: GtListOption = None,
    bidirectional: BidirectionalOption = None,
    threads: ThreadsOption = None,
) -> None:
    """Score listener reactions with the metrics of the dataset's edition.

    REACT 2024: FRC, FRD, FRDiv, FRVar, FRDvs, FRSyn (+ FRSyn_all) and FRRea. Predictions are in
    the mirrored sample order of the split (rows as listed, then the roles swapped); T is cut to
    750. FRD and FRC are sums over the K reactions, as in the official scripts. FRRea needs
    --pirender and --inception and a react generate folder (face3dmm.npy): it renders the
    protocol's frames into OUT's folder/fid/{real,fake} and scores them with the FID; without the
    two files it is null and the JSON says why.

    REACT 2025/2026 (MARS root): FRC, FRD, FRSyn (official TLCC) and FRSyn_fixed, FRDiv, FRVar, and
    in 2026 MAE and the EEG metrics when results.pt holds PRED_EEG. The ground truths are the
    naive-baseline script's sets (--gt-seed) or --gt-list, aligned to each prediction's length with
    the post-processor (--post-processor, --alignment); docs/mars.md explains every choice.
    """
    apply_threads(threads)
    from reactcli.editions import detect_edition

    if out is not None:
        check_writable(out)  # before FRD, not after it
    chosen = detect_edition(data, edition)
    mars_options = {
        "post_processor": post_processor, "alignment": alignment, "alignment_seed": alignment_seed,
        "gt_seed": gt_seed, "gt_list": gt_list, "bidirectional": bidirectional,
    }  # fmt: skip
    if chosen.is_mars:
        if realism_protocol != "official-2024":
            raise ReactError(f"--realism-protocol: MARS has one FRRea protocol (prediction 0, every 30th frame); "
                             f"{data} is a MARS dataset")
        job = None
        if _frrea_wanted(pirender, inception, out, realism_protocol, realism_max_images):
            from reactcli.metrics.frrea import prepare_frrea_mars
            from reactcli.runtime import resolve_device

            job = prepare_frrea_mars(
                data, split, predictions, pirender, inception, Path(out).parent / "fid",  # type: ignore[arg-type]
                edition=chosen.name, bidirectional=bidirectional,
                max_images=realism_max_images, device=resolve_device(device),
            )  # fmt: skip
        _evaluate_mars(data, split, predictions, out, workers, device, chosen, mars_options, job)
        return
    refuse_mars_options(data, mars_options)
    _evaluate_2024(data, split, predictions, out, workers, pirender, inception, realism_protocol,
                   realism_max_images, device)  # fmt: skip


def _evaluate_mars(
    data: Path,
    split: str,
    predictions: Path,
    out: Path | None,
    workers: int | None,
    device: str,
    chosen: Edition,
    options: dict[str, Any],
    frrea_job: Any = None,
) -> None:
    """The MARS stage (``metrics.mars_evaluate.evaluate_mars``), FRRea when its job is given, its
    table and its JSON."""
    from reactcli.metrics.mars_evaluate import prepare_mars_evaluation, run_mars_evaluation
    from reactcli.metrics.mars_truth import ScoringOptions
    from reactcli.progress import console, err_console, make_progress, stage_bars
    from reactcli.runtime import resolve_device
    from reactcli.tables import mars_title, metrics_table, present_metrics

    resolved = str(resolve_device(device))
    prepared = prepare_mars_evaluation(  # every check before the long part
        data, split, predictions, edition=chosen, options=ScoringOptions.given(**options, device=resolved),
        workers=workers, frd_device=resolved if device.startswith("cuda") else None,  # auto: FRD on the CPU
    )  # fmt: skip
    with stage_bars() as (on_stage, on_count):  # one bar per stage; the alignment's counts samples
        result = run_mars_evaluation(prepared, on_stage=on_stage, on_align=on_count)
    if frrea_job is not None:
        with make_progress() as progress:
            result = _run_frrea(progress, frrea_job, result, frrea_job.fake_count, frrea_job.real_count)
    name = Path(predictions).name or str(predictions)
    console.print(metrics_table({name: result}, mars_title(result, "metrics"), present_metrics([result])))
    for line in result["warnings"][:10]:
        err_console.print(f"warning: {line}", markup=False, highlight=False)
    if len(result["warnings"]) > 10:
        err_console.print(f"... {len(result['warnings']) - 10} more warnings in the JSON", markup=False)
    times = ", ".join(f"{k} {v:.2f}s" for k, v in result["timings"].items())
    err_console.print(f"[dim]wall time: {times}[/dim]")
    if out is not None:
        from reactcli.atomic import save_json

        save_json(out, result)
        err_console.print(f"wrote {out}")


def _evaluate_2024(
    data: Path,
    split: str,
    predictions: Path,
    out: Path | None,
    workers: int | None,
    pirender: Path | None,
    inception: Path | None,
    realism_protocol: str,
    realism_max_images: int | None,
    device: str,
) -> None:
    """The REACT 2024 stage (``metrics.evaluate``), its table and its JSON."""
    from reactcli.metrics.evaluate import evaluate_arrays, load_predictions, load_truth
    from reactcli.progress import console, err_console, make_progress
    from reactcli.tables import metrics_table

    job = None
    if _frrea_wanted(pirender, inception, out, realism_protocol, realism_max_images):
        from reactcli.metrics.frrea import prepare_frrea
        from reactcli.runtime import resolve_device

        job = prepare_frrea(data, split, predictions, pirender, inception, Path(out).parent / "fid",  # type: ignore[arg-type]
                            realism_protocol, realism_max_images, resolve_device(device))  # fmt: skip
    if out is not None:  # a folder that cannot take the JSON fails now, not after FRD
        from reactcli.atomic import check_space

        check_space(out, 1 << 20)
    from reactcli.runtime import resolve_device

    frd_device = str(resolve_device(device)) if device.startswith("cuda") else None  # auto keeps FRD on the CPU
    truth = load_truth(data, split)
    preds = load_predictions(predictions, truth)
    with make_progress() as progress:
        task = progress.add_task("FRD (DTW)", total=preds.shape[0], info="")
        result = evaluate_arrays(
            preds, truth, workers, on_frd_progress=lambda amount: progress.advance(task, amount),
            frd_device=frd_device,
        )
        if job is not None:
            result = _run_frrea(progress, job, result, job.images, job.images)
    title = f"REACT 2024 metrics, {split} (N={result['N']}, K={result['K']})"
    console.print(metrics_table({Path(predictions).name or str(predictions): result}, title))
    for key, note in result["notes"].items():
        err_console.print(f"{key}: {note}", style="dim", markup=False)
    times = ", ".join(f"{k} {v:.2f}s" for k, v in result["timings"].items() if k != "FRSyn_all")
    err_console.print(f"[dim]wall time: {times}[/dim]")
    if out is not None:
        from reactcli.atomic import save_json

        save_json(out, result)
        err_console.print(f"wrote {out}")


def _frrea_wanted(
    pirender: Path | None, inception: Path | None, out: Path | None, protocol: str, max_images: int | None
) -> bool:
    """Whether FRRea is asked for; its flags checked together (both weights files, an --out for
    the frames), one line for what is missing."""
    if pirender is None and inception is None:
        realism_only = [flag for flag, given in (
            ("--realism-protocol", protocol != "official-2024"),
            ("--realism-max-images", max_images is not None),
        ) if given]  # fmt: skip
        if realism_only:
            raise ReactError(f"{', '.join(realism_only)}: for FRRea only, which needs --pirender and --inception")
        return False
    if pirender is None or inception is None:
        given, lacking = ("--pirender", "--inception") if inception is None else ("--inception", "--pirender")
        raise ReactError(f"{given} is for FRRea, which needs {lacking} too")
    if out is None:
        raise ReactError("FRRea writes its frames next to the metrics JSON: give --out metrics.json")
    return True


def _run_frrea(progress: Any, job: Any, result: dict[str, Any], fake: int, real: int) -> dict[str, Any]:
    """Render the FRRea frames and score them, with a bar for each, into the metrics dict."""
    from reactcli.metrics.frrea import merge_frrea, run_frrea

    frames = progress.add_task("FRRea frames (PIRender)", total=fake, info=getattr(job, "protocol", ""))
    feats = progress.add_task("FRRea features (Inception)", total=fake + real, info="")
    realism = run_frrea(job, lambda n: progress.advance(frames, n), lambda n: progress.advance(feats, n))
    result.setdefault("notes", {})
    return merge_frrea(result, realism)
