"""Speed of online generation: batched vs one clip at a time, the per-frame step, real-time factors.

Sections (``--sections``, default all but ``rtf``):
- ``batch``: a demo-size split (24 clips x 751 frames, K = 10) generated one clip at a time and as
  batched streams, in the same run; prints each wall time, its ratio to the one-clip path and how
  far the outputs are from it (the same tokens; values within float rounding). Random tiny-preset
  weights by default; ``--checkpoint CKPT --data ROOT`` runs a trained model on a real split.
- ``step``: the per-frame step (one speaker frame pushed, one listener frame back) for the tiny
  preset (``--paper`` adds the paper preset) at K = 1 and 3, p50/p95 over the frames, with the
  dynamic (concatenate + trim) and the static (ring) KV cache, and on CUDA the captured step.
- ``rtf``: real-time factor of one 30 s reaction (K = 1) for both presets, with and without the cache.

Random weights: speed does not depend on training. Timings on a shared machine are noisy; compare
the ratios printed in one run.

    .venv/bin/python bench/generate_bench.py [--threads 1] [--sections batch,step] [--batch-clips 1,8,24]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from reactcli.config import load_config
from reactcli.generate import SpeakerClip, auto_batch_clips, generate_batch, generate_reactions, sample_seed
from reactcli.models.checkpoint import ReactionModel, build_models
from reactcli.models.layers import count_parameters

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FRAMES, FPS = 751, 25
AUDIO_DIM = {"tiny": 78, "paper": 512}  # MFCC+deltas / wav2vec2 conv features


def build(preset: str, device: str | torch.device = "cpu") -> ReactionModel:
    """The preset's tokenizer and predictor with random weights (seed 0), every code valid."""
    torch.manual_seed(0)
    cfg = load_config(CONFIGS / f"{preset}.toml", environ={})
    tokenizer, predictor = build_models(cfg, AUDIO_DIM[preset])
    valid = torch.zeros(predictor.vocab_size, dtype=torch.bool)
    valid[: tokenizer.codebook_size] = True
    return ReactionModel(cfg, tokenizer.eval().to(device), predictor.eval().to(device), valid.to(device),
                         Path(f"{preset}-random"))


def synthetic_clips(model: ReactionModel, count: int, frames: int = FRAMES, seed: int = 0) -> list[SpeakerClip]:
    """Random speaker inputs of the model's sizes (speed does not depend on their content)."""
    rng = np.random.default_rng(seed)
    dim = model.predictor.audio_dim
    return [
        SpeakerClip(rng.normal(size=(frames, dim)).astype(np.float32),
                    (rng.normal(size=(frames, 58)) * 0.1).astype(np.float32),
                    rng.random(size=(frames, 25)).astype(np.float32))
        for _ in range(count)
    ]


def dataset_clips(model: ReactionModel, root: Path, split: str) -> list[SpeakerClip]:
    """The speaker inputs of a preprocessed split, in the mirrored sample order."""
    from reactcli.data.dataset import ReactClipDataset

    dataset = ReactClipDataset(root, split, model.config)
    out = []
    for n in range(len(dataset)):
        clip = dataset.clip(n)
        out.append(SpeakerClip(clip["speaker_audio"], clip["speaker_3dmm"], clip["speaker_emotion"]))
    return out


def run_batched(
    model: ReactionModel, clips: list[SpeakerClip], samples: int, batch_clips: int, seed: int = 0
) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
    """Wall seconds and (face, emotion) per clip of :func:`generate_batch` with ``batch_clips`` per batch."""
    seeds = [sample_seed(seed, n) for n in range(len(clips))]
    out: list = [None] * len(clips)
    sync(model)
    t0 = time.perf_counter()
    for i, face, emotion in generate_batch(model, clips, seeds, samples, batch_clips):
        out[i] = (face.copy(), emotion.copy())
    sync(model)
    return time.perf_counter() - t0, out


def compare(
    got: list[tuple[np.ndarray, np.ndarray]], want: list[tuple[np.ndarray, np.ndarray]], tol: float = 1e-3
) -> tuple[float, float]:
    """(largest absolute difference, share of the clip x sample series equal within ``tol``).

    A sampled token that differs changes the rest of its series by far more than ``tol``: the share
    counts the series whose tokens all agree."""
    worst, same, total = 0.0, 0, 0
    for (fa, ea), (fb, eb) in zip(got, want, strict=True):
        diff = np.maximum(np.abs(fa - fb).max(axis=(1, 2)), np.abs(ea - eb).max(axis=(1, 2)))
        worst = max(worst, float(diff.max()))
        same += int((diff <= tol).sum())
        total += len(diff)
    return worst, same / total


def sync(model: ReactionModel) -> None:
    device = next(model.predictor.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_times(
    model: ReactionModel, samples: int, cache: str, frames: int, capture: bool = False, warmup: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Milliseconds of each one-frame push after ``warmup`` pushes (the capture, when on, happens in
    the warm-up), and the reactions (K, frames, 83) it produced."""
    from reactcli.generate import ReactionStream

    clip = synthetic_clips(model, 1, warmup + frames, seed=1)[0]
    stream = ReactionStream(model, samples, seed=0, cache=cache, capture=capture)
    times, outputs = [], []
    for i in range(warmup + frames):
        t0 = time.perf_counter()
        out = stream.push(clip.audio[i : i + 1], clip.face3dmm[i : i + 1], clip.emotion[i : i + 1])
        times.append(time.perf_counter() - t0)  # push returns CPU tensors: the step has finished
        outputs.append(torch.cat((out.face3dmm, out.emotion), -1))
    return np.array(times[warmup:]) * 1e3, torch.cat(outputs, 1).numpy()


def section_batch(args: argparse.Namespace) -> None:
    if args.checkpoint:
        from reactcli.generate import load_for_generation

        model = load_for_generation(Path(args.checkpoint), torch.device("cpu"))
        clips = dataset_clips(model, Path(args.data), args.split)
        what = f"{args.checkpoint} on {args.data} {args.split}"
    else:
        model = build("tiny")
        clips = synthetic_clips(model, args.clips)
        what = "tiny preset, random weights, synthetic inputs"
    k = args.samples
    auto = auto_batch_clips(model, k, max(len(c) for c in clips), len(clips))
    sizes = sorted({int(b) for b in args.batch_clips.split(",")} | {1, auto})
    print(f"\n== batched generation: {len(clips)} clips x {len(clips[0])} frames, K = {k} ({what}); "
          f"automatic batch = {auto}")
    base, reference = run_batched(model, clips, k, 1)
    print(f"{'clips/batch':>12s} {'wall s':>8s} {'vs one clip':>12s} {'max |diff|':>11s} {'same tokens':>12s}")
    print(f"{1:12d} {base:8.2f} {1.0:11.2f}x {0.0:11.1e} {'(reference)':>12s}")
    for b in sizes:
        if b == 1:
            continue
        wall, out = run_batched(model, clips, k, b)
        worst, same = compare(out, reference)
        print(f"{b:12d} {wall:8.2f} {base / wall:11.2f}x {worst:11.1e} {same:11.1%}")


def section_step(args: argparse.Namespace) -> None:
    presets = ["tiny", "paper"] if args.paper else ["tiny"]
    print(f"\n== per-frame step: one frame in, one listener frame out (ms over {args.step_frames} frames, CPU)")
    print(f"{'preset':8s} {'K':>3s} {'cache':>8s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for preset in presets:
        model = build(preset)
        frames = args.step_frames if preset == "tiny" else max(10, args.step_frames // 5)
        for k in (1, 3):
            for cache in ("dynamic", "static"):
                ms, _ = step_times(model, k, cache, frames)
                print(f"{preset:8s} {k:3d} {cache:>8s} {np.percentile(ms, 50):8.2f} {np.percentile(ms, 95):8.2f}")


def section_rtf(args: argparse.Namespace) -> None:
    print(f"\n== one {FRAMES / FPS:.2f} s reaction (K = 1), CPU, random weights (RTF > 1: faster than real time)")
    print(f"{'preset':8s} {'params':>8s} {'input':>14s} {'cache':>8s} {'wall s':>8s} {'RTF':>8s}")
    for preset in ("tiny", "paper"):
        model = build(preset)
        params = count_parameters(model.predictor) + count_parameters(model.tokenizer)
        patch = model.predictor.cfg.patch
        runs = [("static", patch, f"{patch}-frame chunks"), ("static", 1, "frame by frame"),
                ("dynamic", patch, f"{patch}-frame chunks"), ("none", patch, f"{patch}-frame chunks")]
        clip = synthetic_clips(model, 1)[0]
        for cache, chunk, label in runs:
            if preset == "paper" and (chunk == 1 or (cache == "none" and args.skip_paper_nocache)):
                continue  # per-frame steps of the paper preset are a latency (section step), not a throughput
            t0 = time.perf_counter()
            generate_reactions(model, clip.audio, clip.face3dmm, clip.emotion, samples=1, seed=0, chunk=chunk,
                               cache=cache)
            wall = time.perf_counter() - t0
            print(f"{preset:8s} {params / 1e6:7.1f}M {label:>14s} {cache:>8s} {wall:8.2f} {FRAMES / FPS / wall:7.1f}x")


SECTIONS = {"batch": section_batch, "step": section_step, "rtf": section_rtf}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sections", default="batch,step", help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--clips", type=int, default=24, help="synthetic clips in section batch")
    parser.add_argument("--samples", type=int, default=10, help="K in section batch")
    parser.add_argument("--batch-clips", default="4,8,24", help="batch sizes to time besides 1 and the automatic one")
    parser.add_argument("--checkpoint", help="a trained predictor.ckpt for section batch (with --data)")
    parser.add_argument("--data", help="a preprocessed dataset root for section batch")
    parser.add_argument("--split", default="val")
    parser.add_argument("--step-frames", type=int, default=200, help="timed frames per case in section step")
    parser.add_argument("--paper", action="store_true", help="also the paper preset in section step")
    parser.add_argument("--skip-paper-nocache", action="store_true", help="skip the slow reference run in rtf")
    args = parser.parse_args()
    if bool(args.checkpoint) != bool(args.data):
        parser.error("--checkpoint and --data go together")
    torch.set_num_threads(args.threads)
    print(f"CPU, {args.threads} threads, torch {torch.__version__}")
    for name in args.sections.split(","):
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r}; expected {', '.join(SECTIONS)}")
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
