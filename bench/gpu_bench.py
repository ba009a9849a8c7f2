"""One prepared device check: the figures of issue 24 in one run, with random weights and synthetic data
made on the spot; exits 1 if any parity check fails.

    .venv/bin/python bench/gpu_bench.py --device cuda          # the full run (one GPU)
    .venv/bin/python bench/gpu_bench.py --device cpu           # a smoke run: fewer clips and frames

Each section is a function ``(ctx, report) -> None`` in :data:`SECTIONS` that adds tables
(:class:`Table`, printed by :func:`print_table`) and parity checks (:meth:`Report.check`) to the
report; add a section by writing such a function and listing it there. Sections:

- ``generation``: a demo-size split (24 clips x 751 frames, K = 10, tiny preset) generated one clip
  at a time and as batched streams (``reactcli.generate.generate_batch``, automatic batch size);
  parity: the batched reactions equal the one-clip ones (same tokens, values within 1e-3).
- ``step``: the per-frame step (one speaker frame in, one listener frame out, the ``react live``
  loop) for the tiny and paper presets at K = 1 and 3: p50/p95 with the dynamic KV cache (the
  earlier eager path), the static ring cache, and on CUDA the captured step (CUDA graph); parity:
  static vs dynamic outputs, and captured vs eager static outputs.
- ``training``: both stages of both presets with random weights on synthetic clips (``bench/
  train_bench.py``), at the presets' published batches, eager and with ``training.compile``:
  frames/s, ms per step, MFU (``training/flops.py``'s count against the device's dense bf16 peak);
  the paper predictor at larger batches (where MFU reaches 30 %); on CUDA the host syncs in 8
  steps (one log row: a count near 8 would be a per-step wait); the share of attention work a
  fused kernel may take; parity: the CUDA step form's loss equals the CPU form's. The CPU smoke run
  uses small batches for the paper preset, a few steps, and no compile (inductor needs about a
  minute per model on 2 cores).
- ``frd``: FRD on the device (``metrics/dtw_torch.py`` through ``frd_per_reaction`` /
  ``frd_set_minima`` with ``device=``) for a val-size REACT 2024 case (N = 1 124 samples, K = 10,
  four latent groups, so ~281 neighbours each, T = 750: ~3.2 million DTW pairs; model-like
  predictions, ``bench/metrics_bench.py``'s) and 1 000 pairs of 20 000-frame series (10 samples x
  K = 10 x 10 ground truths); parity: the device's minima equal the CPU engine's (numba) on a
  subset, relative difference <= 1e-6. The CPU smoke run runs the same wavefront on the CPU
  (``device="torch-cpu"``) on a small case.

Targets (issue 24, one H200): per-frame p95 <= 15 ms for the paper preset at K = 3, <= 2 ms for
the tiny preset; FRD val-size <= 10 s, 1 000 pairs of 20 000 frames <= 30 s; training >= 5x the
frames/s measured before (paper predictor 14-18 k, tokenizer 50-80 k frames/s). A missed target is
reported, not a failure: failures are broken parity.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_bench import build, compare, run_batched, step_times, synthetic_clips  # noqa: E402
from train_bench import aligned_parity, attention_calls, count_syncs, time_training  # noqa: E402

from reactcli.generate import auto_batch_clips  # noqa: E402


@dataclass
class Table:
    """One printed table: a title, column names, rows of values (numbers are formatted by
    :func:`print_table`) and notes printed under it."""

    title: str
    columns: list[str]
    rows: list[list[object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    tables: list[Table] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def table(self, title: str, columns: list[str]) -> Table:
        table = Table(title, columns)
        self.tables.append(table)
        return table

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append((name, bool(ok), detail))
        print(f"  parity {'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)


@dataclass
class Context:
    device: torch.device
    smoke: bool  # a CPU run: fewer clips and frames

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def print_table(table: Table) -> None:
    cells = [[_cell(v) for v in row] for row in table.rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(table.columns)]
    print(f"\n## {table.title}")
    print("  ".join(c.rjust(w) for c, w in zip(table.columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    for note in table.notes:
        print(f"  {note}")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- sections ---------------------------------------------------------------------------------------
def section_generation(ctx: Context, report: Report) -> None:
    clips_n, frames, k = (6, 160, 4) if ctx.smoke else (24, 751, 10)
    model = build("tiny", ctx.device)
    clips = synthetic_clips(model, clips_n, frames)
    auto = auto_batch_clips(model, k, frames, clips_n)
    run_batched(model, clips[:1], k, 1)  # first-use costs (kernels, capture) outside the timings
    one, reference = run_batched(model, clips, k, 1)
    batched, out = run_batched(model, clips, k, auto)
    table = report.table(
        f"generation: {clips_n} clips x {frames} frames, K = {k}, tiny preset, {ctx.device}",
        ["path", "clips/batch", "wall s", "clips/s", "vs one clip"],
    )
    table.rows.append(["one clip at a time", 1, one, clips_n / one, "1.00x"])
    table.rows.append(["batched (automatic size)", auto, batched, clips_n / batched, f"{one / batched:.2f}x"])
    worst, same = compare(out, reference)
    table.notes.append(f"batched vs one clip: max |diff| {worst:.1e}, {same:.1%} of the clip x sample series equal")
    report.check("batched generation equals one clip at a time", same >= 0.98,
                 f"{same:.1%} of series within 1e-3 (>= 98 % required: a float-rounding tie may flip one token)")


def section_step(ctx: Context, report: Report) -> None:
    table = report.table(
        f"per-frame step (one frame in, one listener frame out), {ctx.device}",
        ["preset", "K", "step", "p50 ms", "p95 ms", "frames", "H200 target p95"],
    )
    targets = {"tiny": 2.0, "paper": 15.0}
    for preset in ("tiny", "paper"):
        model = build(preset, ctx.device)
        frames = (30 if preset == "tiny" else 5) if ctx.smoke else 300
        warmup = 3 if ctx.smoke else 10
        for k in (1, 3):
            modes = [("eager, dynamic cache", "dynamic", False), ("eager, static cache", "static", False)]
            if ctx.cuda:
                modes.append(("captured (CUDA graph)", "static", True))
            outputs = {}
            for label, cache, capture in modes:
                ms, outputs[label] = step_times(model, k, cache, frames, capture=capture, warmup=warmup)
                target = f"<= {targets[preset]:g} ms" if k == 3 or preset == "tiny" else ""
                table.rows.append([preset, k, label, float(np.percentile(ms, 50)), float(np.percentile(ms, 95)),
                                   frames, target])
            static = outputs["eager, static cache"]
            diff = float(np.abs(outputs["eager, dynamic cache"] - static).max())
            report.check(f"{preset} K={k}: static vs dynamic cache", diff <= 1e-3, f"max |diff| {diff:.1e}")
            if ctx.cuda:
                diff = float(np.abs(outputs["captured (CUDA graph)"] - static).max())
                report.check(f"{preset} K={k}: captured vs eager step", diff <= 1e-3, f"max |diff| {diff:.1e}")
        del model
        if ctx.cuda:
            torch.cuda.empty_cache()


def section_training(ctx: Context, report: Report) -> None:
    modes = (False, True) if ctx.cuda else (False,)
    smoke_batch = {("paper", "tokenizer"): 4, ("paper", "predictor"): 1}  # the CPU run: a step in seconds
    before = {("paper", "predictor"): "14-18 k", ("paper", "tokenizer"): "50-80 k"}  # issue 24, H200, eager
    table = report.table(
        f"training, random weights, synthetic clips, {ctx.device}",
        ["preset", "stage", "batch", "frames/step", "mode", "warm-up s", "ms/step", "frames/s", "MFU",
         "H200 before"],
    )
    for preset in ("tiny", "paper"):
        for stage in ("tokenizer", "predictor"):
            batch = smoke_batch.get((preset, stage)) if ctx.smoke else None
            steps, warmup = ((2 if preset == "tiny" else 1), 1) if ctx.smoke else (10, 3)
            for compile_ in modes:
                t = time_training(preset, stage, ctx.device, batch, compile_, steps, warmup)
                table.rows.append([preset, stage, t.batch, t.frames_per_step, "compile" if compile_ else "eager",
                                   t.first_seconds, t.step_ms, t.frames_per_s, _pct(t.mfu),
                                   before.get((preset, stage), "")])
    if ctx.smoke:
        table.notes.append("smoke run: the paper preset at batch 4 (tokenizer) and 1 (predictor), not its "
                           "published 184 / 16, one timed step; no compile rows (inductor takes about a minute per "
                           "model on 2 cores)")
        table.notes.append("MFU: none on a CPU (no peak; bench/train_bench.py time_training(peak_tflops=...) sets one)")
    else:
        table.notes.append("MFU: model FLOPs (training/flops.py, windowed attention) per second / the device's dense "
                           "bf16 peak; warm-up s holds the compile in compile rows")
        sweep = report.table(f"paper predictor by batch (288-frame crops), {ctx.device}",
                             ["batch", "mode", "ms/step", "frames/s", "MFU"])
        for batch, compile_ in [(b, False) for b in (16, 32, 64, 128, 256)] + [(64, True), (256, True)]:
            t = time_training("paper", "predictor", ctx.device, batch, compile_, 6, 3 if compile_ else 2)
            sweep.rows.append([batch, "compile" if compile_ else "eager", t.step_ms, t.frames_per_s, _pct(t.mfu)])
    kernels = report.table(f"attention calls of a training step (CUDA form), {ctx.device}",
                           ["preset", "stage", "calls", "fused-eligible calls", "fused share of work"])
    for preset in ("tiny", "paper"):
        for stage in ("tokenizer", "predictor"):
            calls = attention_calls(preset, stage, ctx.device, batch=1 if ctx.smoke and preset == "paper" else 2)
            work = sum(c["work"] for c in calls)
            fused = sum(c["work"] for c in calls if c["fused"])
            kernels.rows.append([preset, stage, len(calls), sum(c["fused"] for c in calls), _pct(fused / work)])
            if not (preset == "paper" and stage == "predictor"):  # its 32 frames past the 256-frame window: masked
                report.check(f"{preset} {stage}: every attention call fused-eligible", fused == work,
                             f"{fused / work:.1%} of the attention work")
    kernels.notes.append("on CUDA: torch.backends.cuda.can_use_{flash,efficient,cudnn}_attention on each call; on a "
                         "CPU the flash rules that depend on the call (no mask; is_causal only when square)")
    for preset in ("tiny",) if ctx.smoke else ("tiny", "paper"):
        worst = aligned_parity(preset, ctx.device)
        report.check(f"{preset} predictor: CUDA step form equals the CPU form", worst <= 1e-4,
                     f"loss max relative difference {worst:.1e} (float32, no dropout)")
    if ctx.cuda:
        syncs = report.table("host syncs in 8 training steps with one log row (CUDA sync debug mode)",
                             ["preset", "stage", "syncs"])
        for preset in ("tiny", "paper"):
            for stage in ("tokenizer", "predictor"):
                n = count_syncs(preset, stage, ctx.device, steps=8)
                syncs.rows.append([preset, stage, n])
                report.check(f"{preset} {stage}: no host sync per step", n < 8, f"{n} syncs in 8 steps")
        torch.cuda.empty_cache()


def section_frd(ctx: Context, report: Report) -> None:
    import os

    from metrics_bench import K, emotion_series, model_like, perturbed

    from reactcli.metrics.appropriateness import frd_per_reaction, frd_set_minima

    device = str(ctx.device) if ctx.cuda else "torch-cpu"  # the wavefront itself, on the CPU in the smoke run
    workers = os.cpu_count() or 1
    rng = np.random.default_rng(0)
    table = report.table(f"FRD on {ctx.device} (torch wavefront, float64)",
                         ["case", "DTW pairs", "frames", "s", "pairs/s", "abandoned", "H200 target"])
    n, t, check = (48, 120, 8) if ctx.smoke else (1124, 750, 16)
    listener = emotion_series(rng, n, t)
    group = rng.integers(0, 4, n)  # the real rule: listeners of speakers with the same latent behaviour
    nbrs = [np.flatnonzero(group == group[i]) for i in range(n)]
    preds = model_like(listener, nbrs, rng)
    frd_per_reaction(preds[:2, :, :40], listener[:, :40], nbrs[:2], device=device)  # first-use costs
    sync(ctx.device)
    start = time.perf_counter()
    ours, counts = frd_per_reaction(preds, listener, nbrs, device=device)
    sync(ctx.device)
    seconds = time.perf_counter() - start
    pairs = K * sum(len(x) for x in nbrs)
    table.rows.append([f"val-size: N = {n}, K = {K}, ~{pairs // (K * n)} neighbours", pairs, t, seconds,
                       pairs / seconds, counts.get("abandoned", ""), "<= 10 s"])
    cpu, _ = frd_per_reaction(preds[:check], listener, nbrs[:check], workers=workers)
    worst = float(np.max(np.abs(ours[:check] - cpu) / np.abs(cpu)))
    report.check("FRD val-size: device minima equal the CPU engine's", worst <= 1e-6,
                 f"max relative difference {worst:.1e} on {check} speakers x {K} reactions")
    samples, length = (2, 300) if ctx.smoke else (10, 20000)
    gts = [emotion_series(rng, 10, length) for _ in range(samples)]
    preds_long = [np.stack([perturbed(gt[rng.integers(10)], rng) for _ in range(K)]) for gt in gts]
    sync(ctx.device)
    start = time.perf_counter()
    minima, counts = frd_set_minima(preds_long, gts, device=device)
    sync(ctx.device)
    seconds = time.perf_counter() - start
    pairs = samples * K * 10
    table.rows.append([f"long: {samples} samples x K = {K} x 10 ground truths", pairs, length, seconds,
                       pairs / seconds, counts.get("abandoned", ""), "<= 30 s"])
    cpu_long, _ = frd_set_minima([preds_long[0][:2]], [gts[0]], workers=workers)
    worst = float(np.max(np.abs(minima[0][:2] - cpu_long[0]) / np.abs(cpu_long[0])))
    report.check("FRD long series: device minima equal the CPU engine's", worst <= 1e-6,
                 f"max relative difference {worst:.1e} on 2 predictions x 10 ground truths of {length} frames")
    if ctx.smoke:
        table.notes.append("smoke run: small cases, the wavefront run on the CPU (device 'torch-cpu')")


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f} %"


SECTIONS: dict[str, Callable[[Context, Report], None]] = {
    "generation": section_generation,
    "step": section_step,
    "training": section_training,
    "frd": section_frd,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: a smoke run)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available (use --device cpu for the smoke run)")
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.sections.split(",")
    for name in names:
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r}; expected {', '.join(SECTIONS)}")
    ctx = Context(device, smoke=device.type == "cpu")
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"gpu_bench on {what}, torch {torch.__version__}{' (smoke run)' if ctx.smoke else ''}")
    report = Report()
    t0 = time.perf_counter()
    for name in names:
        start = time.perf_counter()
        print(f"\n# section {name}", flush=True)
        SECTIONS[name](ctx, report)
        sync(device)
        print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    for table in report.tables:
        print_table(table)
    failed = [name for name, ok, _ in report.checks if not ok]
    print(f"\n{len(report.checks) - len(failed)}/{len(report.checks)} parity checks passed "
          f"in {time.perf_counter() - t0:.0f} s")
    for name in failed:
        print(f"FAILED: {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
