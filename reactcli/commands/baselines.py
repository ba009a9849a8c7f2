"""``react baselines``: the naive rows, Ridge and RidgeRes scored with every metric, as one table.

REACT 2024 roots: GT, Mime, Random, MeanSeq, MeanFr, Ridge and RidgeRes (``metrics/baselines.py``,
``metrics/ridge.py``). MARS roots (REACT 2025/2026): the 2026 naive-baseline script's GT_identical,
B_Random, B_Mime and B_MeanFr, plus Ridge and RidgeRes (``metrics/mars_baselines.py``). This module
parses, dispatches and prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reactcli.commands.common import (
    AlignmentOption,
    AlignmentSeedOption,
    BidirectionalOption,
    ConfigOption,
    DataOption,
    EditionOption,
    GtListOption,
    GtSeedOption,
    PostProcessorOption,
    SeedOption,
    SetOption,
    SplitOption,
    ThreadsOption,
    WorkersOption,
    apply_threads,
    build_config,
    check_writable,
    refuse_mars_options,
)
from reactcli.metrics.ridge import DEFAULT_ALPHA, DEFAULT_LOOKBACK, DEFAULT_RESIDUAL_SCALE, DEFAULT_STEP

if TYPE_CHECKING:
    from reactcli.editions import Edition


@dataclass(frozen=True)
class _Request:
    """What both editions' rows are asked for: the split, the output, K, the seed and the Ridge rows' settings."""

    data: Path
    split: str
    out: Path | None
    samples: int | None
    seed: int
    workers: int | None
    config: Path | None
    set_: list[str] | None
    ridge: tuple[int, int, float]  # (lookback, step, alpha)
    residual_scale: float


def baselines(
    data: DataOption,
    split: SplitOption = "val",
    out: Annotated[Path | None, typer.Option("--out", help="Write every row's metrics as JSON here.")] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", min=1, help="Reactions per speaker (K; default generation.samples).")
    ] = None,
    seed: SeedOption = 0,
    workers: WorkersOption = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    ridge_lookback: Annotated[
        int, typer.Option("--ridge-lookback", min=1, help="Ridge: frames of speaker history (<= t) it reads.")
    ] = DEFAULT_LOOKBACK,
    ridge_step: Annotated[int, typer.Option("--ridge-step", min=1, help="Ridge: frames between lags.")] = DEFAULT_STEP,
    ridge_alpha: Annotated[
        float, typer.Option("--ridge-alpha", help="Ridge: strength per training frame (> 0).")
    ] = DEFAULT_ALPHA,
    ridge_residual_scale: Annotated[
        float,
        typer.Option(
            "--ridge-residual-scale", min=0.0, help="RidgeRes: s, the share of a drawn train residual added."
        ),
    ] = DEFAULT_RESIDUAL_SCALE,
    edition: EditionOption = None,
    post_processor: PostProcessorOption = None,
    alignment: AlignmentOption = None,
    alignment_seed: AlignmentSeedOption = None,
    gt_seed: GtSeedOption = None,
    gt_list: GtListOption = None,
    bidirectional: BidirectionalOption = None,
    device: Annotated[
        str, typer.Option("--device", help="MARS: the post-processor's device (auto, cpu, cuda or cuda:N).")
    ] = "auto",
    threads: ThreadsOption = None,
) -> None:
    """Score the naive rows the challenge reports next to every model (K copies each).

    REACT 2024: Mime is the speaker's own emotion without a lag; MeanSeq and MeanFr are the
    per-frame and global means of the train split's emotion; Ridge is a causal linear regression
    fitted on the train split from the speaker's emotion and audio features (the preprocess cache
    of --config's audio settings) over the last --ridge-lookback frames; RidgeRes adds to it, per
    reaction, --ridge-residual-scale times the residual (listener minus Ridge's fit) of a train clip
    drawn with --seed. A row whose inputs are missing is left out with the reason.

    REACT 2025/2026 (MARS root): the 2026 naive-baseline script's GT_identical, B_Random, B_Mime
    and B_MeanFr on the same ground-truth sets and alignment as react evaluate, then Ridge and
    RidgeRes fitted on the train split (facial attributes and, when present, audio-features); K =
    10, the ground truths per sample.
    """
    apply_threads(threads)
    from reactcli.editions import detect_edition
    from reactcli.errors import ReactError

    if ridge_alpha <= 0:
        raise ReactError(f"--ridge-alpha {ridge_alpha}: the ridge strength must be > 0")
    if out is not None:
        check_writable(out)  # before fitting and scoring every row, not after
    chosen = detect_edition(data, edition)
    mars_options = {
        "post_processor": post_processor, "alignment": alignment, "alignment_seed": alignment_seed,
        "gt_seed": gt_seed, "gt_list": gt_list, "bidirectional": bidirectional,
    }  # fmt: skip
    ridge = (ridge_lookback, ridge_step, ridge_alpha)
    request = _Request(data, split, out, samples, seed, workers, config, set_, ridge, ridge_residual_scale)
    if chosen.is_mars:
        _baselines_mars(request, chosen, mars_options, device)
        return
    refuse_mars_options(data, {**mars_options, "device": None if device == "auto" else device})
    _baselines_2024(request)


def _baselines_mars(request: _Request, chosen: Edition, options: dict[str, Any], device: str) -> None:
    """The MARS rows (``metrics.mars_baselines.mars_baselines``), their table and JSON."""
    from reactcli.editions import MARS_GT_COUNT
    from reactcli.errors import ReactError
    from reactcli.metrics.mars_baselines import prepare_mars_baselines, run_mars_baselines
    from reactcli.metrics.mars_truth import ScoringOptions
    from reactcli.progress import console, err_console, stage_bars
    from reactcli.runtime import resolve_device
    from reactcli.tables import mars_title, metrics_table, present_metrics

    samples, out = request.samples, request.out
    if samples is not None and samples != MARS_GT_COUNT:
        raise ReactError(f"--samples {samples}: MARS baselines have K = {MARS_GT_COUNT}, the ground truths per sample")
    if request.config is not None or request.set_:
        raise ReactError("--config/--set: the MARS baselines read no settings (Ridge reads the release's files)")
    scoring = ScoringOptions.given(**options, device=str(resolve_device(device)))
    prepared = prepare_mars_baselines(  # every check before the long part
        request.data, request.split, edition=chosen, options=scoring, workers=request.workers, seed=request.seed,
        ridge=request.ridge, residual_scale=request.residual_scale,
    )  # fmt: skip
    with stage_bars() as (on_stage, on_count):  # one bar per stage; the alignment's counts samples
        payload = run_mars_baselines(prepared, on_stage=on_stage, on_align=on_count)
    rows = payload["rows"]
    keys = present_metrics(list(rows.values()), chosen.name)
    title = mars_title(payload, "baselines")
    console.print(metrics_table(rows, title, keys, reference=[n == "GT_identical" for n in rows]))
    if "ridge" in payload:
        err_console.print(f"Ridge/RidgeRes inputs: {payload['ridge']['inputs']}", markup=False, highlight=False)
    for name, reason in payload.get("skipped", {}).items():
        err_console.print(f"{name} left out: {reason}", markup=False, highlight=False)
    for line in payload["warnings"][:10]:
        err_console.print(f"warning: {line}", markup=False, highlight=False)
    if out is not None:
        from reactcli.atomic import save_json

        save_json(out, payload)
        err_console.print(f"wrote {out}")


def _baselines_2024(request: _Request) -> None:
    """The REACT 2024 rows, their table and JSON."""
    from reactcli.errors import ReactError
    from reactcli.metrics.baselines import EMOTION_BASELINES, baseline_predictions, train_emotion
    from reactcli.metrics.evaluate import evaluate_arrays, load_truth
    from reactcli.metrics.ridge import ridge_from_cache, ridge_predictions, ridge_res_predictions
    from reactcli.progress import console, err_console, make_progress
    from reactcli.tables import metrics_table

    data, split, out, seed, workers = request.data, request.split, request.out, request.seed, request.workers
    ridge_lookback, ridge_step, ridge_alpha = request.ridge
    residual_scale = request.residual_scale
    cfg = build_config(request.config, request.set_, generation={"samples": request.samples})
    samples = cfg.generation.samples
    truth = load_truth(data, split)
    skipped: dict[str, str] = {}
    try:
        train = train_emotion(data)
    except ReactError as exc:
        train = None
        skipped.update({"MeanSeq": str(exc), "MeanFr": str(exc)})
    predictions = {
        name: lambda name=name: baseline_predictions(name, truth.listener, truth.speaker, samples, seed, train)
        for name in EMOTION_BASELINES if name not in skipped
    }
    try:
        model = ridge_from_cache(data, cfg, ridge_lookback, ridge_step, ridge_alpha)
        predictions["Ridge"] = lambda: ridge_predictions(model, data, split, cfg, samples)
        predictions["RidgeRes"] = lambda: ridge_res_predictions(model, data, split, cfg, samples, residual_scale, seed)
    except ReactError as exc:
        skipped["Ridge"] = skipped["RidgeRes"] = f"{exc} (run `react preprocess --splits train,{split}` first)"
    rows: dict[str, dict] = {}
    with make_progress() as progress:
        for name, make in predictions.items():
            try:
                preds = make()
            except ReactError as exc:
                skipped[name] = str(exc)
                continue
            task = progress.add_task(f"{name}: FRD", total=preds.shape[0], info="")
            rows[name] = evaluate_arrays(
                preds, truth, workers, on_frd_progress=lambda amount, t=task: progress.advance(t, amount)
            )
    n = truth.listener.shape[0]
    console.print(metrics_table(rows, f"REACT 2024 baselines, {split} (N={n}, K={samples})"))
    for name, reason in skipped.items():
        err_console.print(f"{name} left out: {reason}", markup=False, highlight=False)
    if out is not None:
        from reactcli.atomic import save_json

        payload = {"split": split, "N": n, "K": samples, "seed": seed, "rows": rows}
        if "Ridge" in rows:
            payload["ridge"] = {"lookback": ridge_lookback, "step": ridge_step, "alpha": ridge_alpha,
                                "audio": cfg.audio.encoder, "residual_scale": residual_scale}
        if skipped:
            payload["skipped"] = skipped
        save_json(out, payload)
        err_console.print(f"wrote {out}")
