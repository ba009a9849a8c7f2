"""Does the model learn the dyadic structure, every time? The quality benchmark over several datasets.

For each seed S: ``react synth --seed S`` at the demo's sizes (24/12/4 pairs) -> ``react preprocess``
-> ``react train-tokenizer`` and ``react train-predictor`` with the tiny preset and the demo's
budget (training seed 0, as the demo) -> K = 10 reactions for the val split -> all metrics, next to
the GT, Mime, Random, MeanSeq and Ridge rows. Plus, per seed:

* speaker shuffle: every val sample gets another sample's speaker input (audio, 3DMM, emotion),
  scored against its true listener. A model that uses the speaker loses FRC here;
* smoothness: mean |frame-to-frame change| of the generated emotion over that of the real
  listeners (1 = as smooth as real reactions; sampling noise shows as >> 1);
* the tokenizer's reconstruction error and codebook use.

Prints one table per seed, then the mean and the worst case of each figure over seeds, and the
issue's targets (model FRC >= 0.75 x Ridge and >= 1.5 x Mime, FRD below both, FRDiv > 0,
shuffled FRC <= 0.6 x matched, smoothness in [0.7, 1.5]) as pass/fail; writes everything as JSON.
The datasets are kept under ``--out`` and reused by later runs (they depend on the seed only).

    .venv/bin/python bench/quality_bench.py                       # 3 seeds, ~6 min each on 2 cores
    .venv/bin/python bench/quality_bench.py --seeds 0 --set training.predictor_max_steps=300
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REACT = [sys.executable, "-m", "reactcli.cli"]
ROWS = ("model", "shuffled", "GT", "Mime", "Random", "MeanSeq", "Ridge")


def react(*args: object, log: Path) -> None:
    """Run one react command as a user would, its output appended to ``log``; stop on failure."""
    with open(log, "a") as fh:
        fh.write(f"\n$ react {' '.join(map(str, args))}\n")
        fh.flush()
        done = subprocess.run([*REACT, *map(str, args)], stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"react {args[0]} failed (exit {done.returncode}); see {log}")


def make_data(root: Path, seed: int, config: Path, log: Path) -> None:
    if not (root / ".react_cache" / "stats" / "face3dmm_train.npz").is_file():
        react("synth", "--out", root, "--train-pairs", 24, "--val-pairs", 12, "--test-pairs", 4,
              "--video", "none", "--seed", seed, log=log)
        react("preprocess", "--data", root, "--config", config, "--splits", "train,val", log=log)


def train(root: Path, run: Path, config: Path, sets: list[str], log: Path) -> float:
    extra = [a for s in sets for a in ("--set", s)]
    t0 = time.perf_counter()
    react("train-tokenizer", "--config", config, "--data", root, "--out", run, "--seed", 0, *extra, log=log)
    react("train-predictor", "--config", config, "--data", root, "--tokenizer", run / "tokenizer.ckpt",
          "--out", run, "--seed", 0, *extra, log=log)
    return time.perf_counter() - t0


def smoothness(generated: np.ndarray, real: np.ndarray) -> float:
    """Mean |x_t - x_{t-1}| of generated (N, K, T, D) emotion over that of the real (N, T, D) listeners."""
    gen = np.abs(np.diff(generated.astype(np.float64), axis=-2)).mean()
    ref = np.abs(np.diff(real.astype(np.float64), axis=-2)).mean()
    return float(gen / ref)


def shuffled_speakers(n: int) -> np.ndarray:
    """Sample n gets the speaker of sample (n + 1) mod N: every sample a speaker that is not its own."""
    return (np.arange(n) + 1) % n


def score_seed(root: Path, run: Path, samples: int, config: Path, ridge: dict, generate_sets: list[str]) -> dict:
    """Generate (matched and speaker-shuffled), then every row's metrics for one trained run."""
    import torch

    from reactcli.config import load_config, parse_overrides
    from reactcli.data.dataset import ReactClipDataset
    from reactcli.generate import generate_dataset, load_for_generation
    from reactcli.metrics.baselines import baseline_predictions, train_emotion
    from reactcli.metrics.evaluate import evaluate_arrays, load_truth
    from reactcli.metrics.ridge import ridge_from_cache, ridge_predictions

    model = load_for_generation(run / "predictor.ckpt", torch.device("cpu"), parse_overrides(generate_sets))
    cfg = model.config.model_copy(deep=True)
    dataset = ReactClipDataset(root, "val", cfg)
    truth = load_truth(root, "val")
    t0 = time.perf_counter()
    matched, _ = generate_dataset(model, dataset, samples, seed=0)
    gen_seconds = time.perf_counter() - t0
    shuffled, _ = generate_dataset(model, dataset, samples, 0, shuffled_speakers(len(dataset)), "shuffled speakers")
    preds = {"model": matched, "shuffled": shuffled}
    train = train_emotion(root)
    for name in ("GT", "Mime", "Random", "MeanSeq"):
        preds[name] = baseline_predictions(name, truth.listener, truth.speaker, samples, 0, train)
    data_cfg = load_config(config, environ={})
    fitted = ridge_from_cache(root, data_cfg, ridge["lookback"], ridge["step"], ridge["alpha"])
    preds["Ridge"] = ridge_predictions(fitted, root, "val", data_cfg, samples)
    metrics = {name: evaluate_arrays(p, truth) for name, p in preds.items()}
    for values in metrics.values():
        values.pop("notes", None)
    tokenizer = torch.load(run / "tokenizer.ckpt", map_location="cpu", weights_only=True)["report"]
    return {
        "metrics": metrics,
        "smoothness": smoothness(matched, truth.listener),
        "smoothness_shuffled": smoothness(shuffled, truth.listener),
        "tokenizer": {k: tokenizer[k] for k in ("face_l1", "emotion_l1", "codes_used_pct", "perplexity")},
        "generate_seconds": gen_seconds,
    }


def checks(result: dict) -> dict[str, bool]:
    """The issue's targets for one seed."""
    m = result["metrics"]
    model, ridge, mime = m["model"], m["Ridge"], m["Mime"]
    return {
        "FRC >= 0.75 Ridge": model["FRC"] >= 0.75 * ridge["FRC"],
        "FRC >= 1.5 Mime": model["FRC"] >= 1.5 * mime["FRC"],
        "FRD < Mime": model["FRD"] < mime["FRD"],
        "FRD < Ridge": model["FRD"] < ridge["FRD"],
        "FRDiv > 0": model["FRDiv"] > 0,
        "shuffled FRC <= 0.6": m["shuffled"]["FRC"] <= 0.6 * model["FRC"],
        "smoothness in [0.7, 1.5]": 0.7 <= result["smoothness"] <= 1.5,
    }


def print_seed(seed: int, result: dict, k: int) -> None:
    m = result["metrics"]
    print(f"\n== synth seed {seed} (val N={m['model']['N']}, K={k}); FRC and FRD per reaction (/K)")
    print(f"{'row':10s} {'FRC':>7s} {'FRD':>7s} {'FRDiv':>8s} {'FRVar':>8s} {'FRDvs':>8s} {'FRSyn_all':>9s}")
    for name in ROWS:
        r = m[name]
        print(f"{name:10s} {r['FRC'] / k:7.3f} {r['FRD'] / k:7.2f} {r['FRDiv']:8.4f} {r['FRVar']:8.4f} "
              f"{r['FRDvs']:8.4f} {r['FRSyn_all']:9.2f}")
    t = result["tokenizer"]
    print(f"smoothness {result['smoothness']:.2f} (shuffled {result['smoothness_shuffled']:.2f}); shuffled/matched "
          f"FRC {m['shuffled']['FRC'] / max(m['model']['FRC'], 1e-12):.2f}; tokenizer face L1 {t['face_l1']:.4f}, "
          f"emotion L1 {t['emotion_l1']:.4f}, codes used {t['codes_used_pct']:.1f} %, perplexity "
          f"{t['perplexity']:.0f}; train {result['train_seconds']:.0f} s")
    print("targets: " + ", ".join(f"{name} {'ok' if ok else 'FAIL'}" for name, ok in result["checks"].items()))


def summary(results: dict[int, dict], k: int) -> dict:
    """Mean and worst case over seeds of the model's figures and of the target ratios."""
    def figures(r: dict) -> dict[str, float]:
        m = r["metrics"]
        return {
            "FRC": m["model"]["FRC"] / k, "FRD": m["model"]["FRD"] / k, "FRDiv": m["model"]["FRDiv"],
            "FRC / Ridge FRC": m["model"]["FRC"] / max(m["Ridge"]["FRC"], 1e-12),
            "FRC / Mime FRC": m["model"]["FRC"] / max(m["Mime"]["FRC"], 1e-12),
            "FRD / Mime FRD": m["model"]["FRD"] / m["Mime"]["FRD"],
            "FRD / Ridge FRD": m["model"]["FRD"] / m["Ridge"]["FRD"],
            "shuffled / matched FRC": m["shuffled"]["FRC"] / max(m["model"]["FRC"], 1e-12),
            "smoothness": r["smoothness"],
        }
    worse_high = {"FRD", "FRD / Mime FRD", "FRD / Ridge FRD", "shuffled / matched FRC"}
    table = [figures(r) for r in results.values()]
    out = {}
    for name in table[0]:
        values = np.array([row[name] for row in table])
        if name == "smoothness":
            worst = float(values[np.argmax(np.abs(np.log(values)))])
        else:
            worst = float(values.max() if name in worse_high else values.min())
        out[name] = {"mean": float(values.mean()), "worst": worst}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,5,9", help="synthetic dataset seeds (comma-separated)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "quality")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "tiny.toml")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="section.key=value for training")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--tag", default="tiny", help="run folder name under OUT/seed<S>/")
    parser.add_argument("--reuse", action="store_true", help="reuse trained checkpoints of an earlier run")
    parser.add_argument("--generate-set", dest="generate_sets", action="append", default=[],
                        help="generation.key=value on top of the checkpoint's settings (e.g. with --reuse)")
    parser.add_argument("--json", type=Path, default=None, help="result file (default OUT/quality_<tag>.json)")
    parser.add_argument("--ridge-lookback", type=int, default=40)
    parser.add_argument("--ridge-step", type=int, default=2)
    parser.add_argument("--ridge-alpha", type=float, default=0.01)
    args = parser.parse_args()
    wall = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    ridge = {"lookback": args.ridge_lookback, "step": args.ridge_step, "alpha": args.ridge_alpha}
    out = args.json or args.out / f"quality_{args.tag}.json"
    results: dict[int, dict] = {}
    for seed in seeds:
        root = args.out / f"data{seed}"
        run = args.out / f"seed{seed}" / args.tag
        run.mkdir(parents=True, exist_ok=True)
        log = run / "bench.log"
        make_data(root, seed, args.config, log)
        train_seconds = 0.0
        if not (args.reuse and (run / "predictor.ckpt").is_file()):
            train_seconds = train(root, run, args.config, args.sets, log)
        result = score_seed(root, run, args.samples, args.config, ridge, args.generate_sets)
        result["train_seconds"] = train_seconds
        result["checks"] = checks(result)
        results[seed] = result
        print_seed(seed, result, args.samples)
        sys.stdout.flush()  # a long run shows each seed as it finishes, also when logged to a file
        partial = {"seeds_done": list(results), "per_seed": {str(s): r for s, r in results.items()}}
        out.with_suffix(".partial.json").write_text(json.dumps(partial, indent=2, default=float))
    summ = summary(results, args.samples)
    print(f"\n== over {len(seeds)} seeds ({', '.join(map(str, seeds))}): model figures, mean and worst")
    for name, v in summ.items():
        print(f"{name:24s} mean {v['mean']:8.3f}   worst {v['worst']:8.3f}")
    passed = all(all(r["checks"].values()) for r in results.values())
    elapsed = time.perf_counter() - wall
    print(f"all targets met on every seed: {'yes' if passed else 'no'}; wall time {elapsed / 60:.1f} min")
    payload = {"seeds": seeds, "sets": args.sets,
               "generate_sets": args.generate_sets, "config": str(args.config), "K": args.samples, "ridge": ridge,
               "per_seed": {str(s): r for s, r in results.items()}, "summary": summ, "all_targets_met": passed,
               "wall_seconds": elapsed}
    out.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
