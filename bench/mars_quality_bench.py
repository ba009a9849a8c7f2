"""Does a personalised MARS model learn from the speaker and from the listener's traits? The MARS quality bench.

For each seed S: ``react synth --edition 2026 --seed S`` at the MARS demo's sizes (``--dyads``,
``--sessions``, ``--frames``) -> ``react preprocess`` -> ``react train-tokenizer`` and ``react
train-predictor`` with ``configs/mars_tiny.toml`` (training seed 0, as the demo) -> K = 10
reactions for every val sample -> the MARS metrics (``metrics/mars.py``, ground truths aligned
with ``resample``: no post-processor checkpoint here, so the figures are non-official), next to
``react baselines``' rows (B_Mime, B_MeanFr, Ridge, RidgeRes). Plus ablations, generated
with the same seeds as the matched run:

* trait shuffle (a model with ``predictor.personality``): every val sample gets the traits of
  another listener (the next distinct trait vector of the split, cyclically), with its own
  speaker. The synthetic listeners' styles follow their traits (``data/synth_mars.py``), so a
  model that uses them loses FRC here;
* speaker shuffle: every val sample gets the next sample's speaker (audio, 3DMM, attributes),
  with its own listener's traits, cut or extended to its own length;
* history shuffle (a model trained with ``predictor.history_frames``, ``--set
  predictor.history_frames=H``): every val sample gets the history of the next sample whose
  listener is another person (other traits), cyclically, with its own speaker and traits. The
  history is the listener's previous recording (``data/mars_history.py``), whose style the
  synthetic listeners keep from session to session.

A model trained with ``predictor.eeg_head`` (``--set predictor.eeg_head=true``) is also scored on
the EEG metrics (``metrics/mars_eeg.py``, the paired listeners' EEG at each second's last frame as
ground truth, ``data/eeg_windows.py``) next to ``EEG mean``: the train listeners' mean EEG (valid
cells only), constant over time, K times (its EEG_FRC is 0 by construction: a constant has no
correlation; its EEG_FRD is the floor a model must beat).

Prints one table per seed, the targets of issue 23 (model FRD below B_Mime's and B_MeanFr's, FRC
>= 0.75 x Ridge's, trait-shuffled FRC <= 0.9 x matched) as pass/fail, the mean and worst case
over seeds, and writes everything as JSON. Data and runs are kept under ``--out`` and reused
(``--reuse`` also reuses trained checkpoints).

    .venv/bin/python bench/mars_quality_bench.py                  # 3 seeds, ~5 min each on 2 cores
    .venv/bin/python bench/mars_quality_bench.py --seeds 0 --reuse
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REACT = [sys.executable, "-m", "reactcli.cli"]
MODEL_ROWS = ("model", "traits shuffled", "speaker shuffled", "history shuffled")
BASELINE_ROWS = ("B_Mime", "B_MeanFr", "Ridge", "RidgeRes")
SHOWN = ("FRC", "FRD", "FRSyn_fixed", "FRDiv", "FRVar", "MAE")
EEG_SHOWN = ("EEG_FRC", "EEG_FRD", "EEG_FRSyn", "EEG_FRDiv", "EEG_FRVar")


def react(*args: object, log: Path) -> None:
    """Run one react command as a user would, its output appended to ``log``; stop on failure."""
    with open(log, "a") as fh:
        fh.write(f"\n$ react {' '.join(map(str, args))}\n")
        fh.flush()
        done = subprocess.run([*REACT, *map(str, args)], stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"react {args[0]} failed (exit {done.returncode}); see {log}")


def make_data(root: Path, seed: int, args: argparse.Namespace, log: Path) -> None:
    if not (root / ".react_cache" / "mars" / "val" / "index.json").is_file():
        react("synth", "--out", root, "--edition", "2026", "--dyads", args.dyads, "--sessions", args.sessions,
              "--frames", args.frames, "--video", "none", "--seed", seed, log=log)
        react("preprocess", "--data", root, "--config", args.config, "--splits", "train,val", log=log)


def train(root: Path, run: Path, config: Path, sets: list[str], log: Path) -> float:
    extra = [a for s in sets for a in ("--set", s)]
    t0 = time.perf_counter()
    react("train-tokenizer", "--config", config, "--data", root, "--out", run, "--seed", 0, *extra, log=log)
    react("train-predictor", "--config", config, "--data", root, "--tokenizer", run / "tokenizer.ckpt",
          "--out", run, "--seed", 0, *extra, log=log)
    return time.perf_counter() - t0


def shuffled_traits(traits: list[np.ndarray]) -> list[np.ndarray]:
    """Each sample gets the next distinct trait vector of the split (cyclically): never its own listener's."""
    distinct: list[np.ndarray] = []
    for t in traits:
        if not any(np.array_equal(t, d) for d in distinct):
            distinct.append(t)
    if len(distinct) < 2:
        raise SystemExit("the val split has one listener personality: nothing to shuffle")
    where = [next(j for j, d in enumerate(distinct) if np.array_equal(t, d)) for t in traits]
    return [distinct[(j + 1) % len(distinct)] for j in where]


def other_person(traits: list[np.ndarray]) -> list[int]:
    """For each sample, the next sample (cyclically) whose listener has other traits: another person's history."""
    n = len(traits)
    out = []
    for i in range(n):
        j = next((j % n for j in range(i + 1, i + n) if not np.array_equal(traits[j % n], traits[i])), None)
        if j is None:
            raise SystemExit("the val split has one listener personality: no other person's history to give")
        out.append(j)
    return out


def generated(model, mars, samples: int, speaker_of: list[int] | None = None, eeg: list | None = None,  # noqa: ANN001
              ) -> tuple[list[np.ndarray], float]:
    """Every sample's (K, L, 25) emotion in sample order, and the seconds it took; with ``eeg`` (a
    list, for a model with an EEG head) also every sample's (K, n, 14) EEG, appended to it."""
    from reactcli.generate_mars import iter_mars_reactions

    out: dict[int, np.ndarray] = {}
    eeg_out: dict[int, np.ndarray] = {}
    t0 = time.perf_counter()
    for n, _, emotion, *rest in iter_mars_reactions(model, mars, 0, samples, speaker_of=speaker_of,
                                                    eeg=eeg is not None):
        out[n] = np.array(emotion)
        if rest:
            eeg_out[n] = np.array(rest[0])
    if eeg is not None:
        eeg.extend(eeg_out[n] for n in range(len(eeg_out)))
    return [out[n] for n in range(len(out))], time.perf_counter() - t0


def eeg_rows(root: Path, model, mars, estimates: list[np.ndarray], samples: int) -> dict[str, dict]:  # noqa: ANN001
    """The EEG metrics of the model's estimates and of the constant train-mean EEG."""
    from reactcli.data.eeg_windows import split_eeg_targets
    from reactcli.editions import OFFICIAL_METRIC_NAMES
    from reactcli.metrics.mars_eeg import score_eeg
    from reactcli.training.corpus import load_clips

    targets, masks = split_eeg_targets(root, "val", mars.speakers.samples, mars.lengths, mars.edition.fps)
    train = load_clips(root, "train", model.config, ("listener_eeg", "listener_eeg_mask"))
    values = np.concatenate(train["listener_eeg"]).astype(np.float64)
    valid = np.concatenate(train["listener_eeg_mask"]) > 0.5
    mean = ((values * valid).sum(0) / np.maximum(valid.sum(0), 1)).astype(np.float32)
    constant = [np.broadcast_to(mean, (samples, t.shape[1], mean.size)).copy() for t in targets]
    rows = {}
    for name, preds in (("model", estimates), ("EEG mean", constant)):
        scores = score_eeg(preds, targets, masks)
        rows[name] = {key: float(scores[OFFICIAL_METRIC_NAMES[key]]) for key in EEG_SHOWN}
    return rows


def score_seed(root: Path, run: Path, samples: int, log: Path) -> dict:
    """Generate (matched, trait- and speaker-shuffled), then every row's metrics for one trained run."""
    import torch

    from reactcli.generate import load_generation_model
    from reactcli.generate_mars import generation_edition, open_mars_split
    from reactcli.metrics.mars import score_mars
    from reactcli.metrics.mars_evaluate import metric_values
    from reactcli.metrics.mars_truth import align_truth, load_mars_truth, prepare_alignment

    model, facts = load_generation_model(run / "predictor.ckpt", torch.device("cpu"))
    edition = generation_edition(root, "val", None, model.config)
    mars = open_mars_split(root, "val", model, edition)
    preds: dict[str, list[np.ndarray]] = {}
    estimates: list[np.ndarray] | None = [] if model.predictor.eeg_head is not None else None
    preds["model"], gen_seconds = generated(model, mars, samples, eeg=estimates)
    if mars.personality:
        shuffled = dataclasses.replace(mars.speakers, traits=shuffled_traits(mars.speakers.traits))
        preds["traits shuffled"], _ = generated(model, dataclasses.replace(mars, speakers=shuffled), samples)
    n = len(mars.ids)
    preds["speaker shuffled"], _ = generated(model, mars, samples, [(i + 1) % n for i in range(n)])
    if mars.speakers.history:
        people = [mars.speakers.data.personality(s.target) for s in mars.speakers.samples]  # who listens
        others = dataclasses.replace(mars.speakers, history_of=other_person(people))
        preds["history shuffled"], _ = generated(model, dataclasses.replace(mars, speakers=others), samples)
    truth = load_mars_truth(root, "val", edition)
    assert truth.ids == mars.ids
    aligned = align_truth(truth, truth.lengths, prepare_alignment(truth, truth.lengths, "resample"))
    metrics = {}
    for name, rows in preds.items():
        scores = score_mars(truth.speakers, rows, aligned.targets, mae=True, fixed=True, fps=edition.fps)
        metrics[name] = metric_values(scores)
    baselines = run / "baselines.json"
    react("baselines", "--data", root, "--split", "val", "--alignment", "resample", "--seed", 0, "--out",
          baselines, log=log)
    rows = json.loads(baselines.read_text())["rows"]
    for name in BASELINE_ROWS:
        metrics[name] = rows[name]
    frames = int(sum(truth.lengths))
    out = {"metrics": metrics, "N": n, "frames": frames, "generate_seconds": gen_seconds,
           "realtime_factor": frames / edition.fps / gen_seconds, "mode": facts.mode}
    if estimates is not None:
        out["eeg"] = eeg_rows(root, model, mars, estimates, samples)
    return out


def checks(result: dict) -> dict[str, bool]:
    """Issue 23's targets for one seed."""
    m = result["metrics"]
    model = m["model"]
    return {
        "FRD < B_Mime": model["FRD"] < m["B_Mime"]["FRD"],
        "FRD < B_MeanFr": model["FRD"] < m["B_MeanFr"]["FRD"],
        "FRC >= 0.75 Ridge": model["FRC"] >= 0.75 * m["Ridge"]["FRC"],
        **({"traits shuffled FRC <= 0.9": m["traits shuffled"]["FRC"] <= 0.9 * model["FRC"]}
           if "traits shuffled" in m else {}),
    }


def ratios(result: dict) -> dict[str, float]:
    m = result["metrics"]
    model = m["model"]
    return {
        "FRC / Ridge FRC": model["FRC"] / max(m["Ridge"]["FRC"], 1e-12),
        "FRD / B_Mime FRD": model["FRD"] / m["B_Mime"]["FRD"],
        "FRD / B_MeanFr FRD": model["FRD"] / m["B_MeanFr"]["FRD"],
        **({"traits shuffled / matched FRC": m["traits shuffled"]["FRC"] / max(model["FRC"], 1e-12)}
           if "traits shuffled" in m else {}),
        "speaker shuffled / matched FRC": m["speaker shuffled"]["FRC"] / max(model["FRC"], 1e-12),
        **({"history shuffled / matched FRC": m["history shuffled"]["FRC"] / max(model["FRC"], 1e-12)}
           if "history shuffled" in m else {}),
    }


def print_seed(seed: int, result: dict, k: int) -> None:
    m = result["metrics"]
    print(f"\n== synth seed {seed} (MARS 2026 val N={result['N']}, K={k}, {result['frames']} frames; "
          "resample alignment: non-official)")
    print(f"{'row':18s} " + " ".join(f"{name:>11s}" for name in SHOWN))
    for name in (*(r for r in MODEL_ROWS if r in m), *BASELINE_ROWS):
        cells = [m[name].get(metric) for metric in SHOWN]
        print(f"{name:18s} " + " ".join(f"{v:11.4f}" if v is not None else f"{'-':>11s}" for v in cells))
    for name, row in result.get("eeg", {}).items():
        print(f"{name:18s} " + " ".join(f"{key} {row[key]:.4f}" for key in EEG_SHOWN))
    print(", ".join(f"{name} {value:.3f}" for name, value in ratios(result).items()))
    print(f"generation {result['realtime_factor']:.1f}x real time ({result['mode']}); "
          f"train {result['train_seconds']:.0f} s")
    print("targets: " + ", ".join(f"{name} {'ok' if ok else 'FAIL'}" for name, ok in result["checks"].items()))


def summary(results: dict[int, dict]) -> dict:
    """Mean and worst case over seeds of the target ratios."""
    worse_high = {"FRD / B_Mime FRD", "FRD / B_MeanFr FRD", "traits shuffled / matched FRC",
                  "speaker shuffled / matched FRC", "history shuffled / matched FRC"}
    table = [ratios(r) for r in results.values()]
    out = {}
    for name in table[0]:
        values = np.array([row[name] for row in table])
        out[name] = {"mean": float(values.mean()), "worst": float(values.max() if name in worse_high else values.min())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="synthetic dataset seeds (comma-separated)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "mars_quality")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "mars_tiny.toml")
    parser.add_argument("--dyads", default="32,4,0", help="synth --dyads TRAIN,VAL,TEST (the MARS demo's)")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--frames", default="58-600")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="section.key=value for training")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--tag", default="mars_tiny", help="run folder name under OUT/seed<S>/")
    parser.add_argument("--reuse", action="store_true", help="reuse trained checkpoints of an earlier run")
    parser.add_argument("--json", type=Path, default=None, help="result file (default OUT/mars_quality_<tag>.json)")
    args = parser.parse_args()
    wall = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    out = args.json or args.out / f"mars_quality_{args.tag}.json"
    results: dict[int, dict] = {}
    for seed in seeds:
        root = args.out / f"data{seed}"
        run = args.out / f"seed{seed}" / args.tag
        run.mkdir(parents=True, exist_ok=True)
        log = run / "bench.log"
        make_data(root, seed, args, log)
        train_seconds = 0.0
        if not (args.reuse and (run / "predictor.ckpt").is_file()):
            train_seconds = train(root, run, args.config, args.sets, log)
        result = score_seed(root, run, args.samples, log)
        result["train_seconds"] = train_seconds
        result["checks"] = checks(result)
        results[seed] = result
        print_seed(seed, result, args.samples)
        sys.stdout.flush()
    summ = summary(results)
    print(f"\n== over {len(seeds)} seeds ({', '.join(map(str, seeds))}): ratios, mean and worst")
    for name, v in summ.items():
        print(f"{name:32s} mean {v['mean']:7.3f}   worst {v['worst']:7.3f}")
    passed = all(all(r["checks"].values()) for r in results.values())
    elapsed = time.perf_counter() - wall
    print(f"all targets met on every seed: {'yes' if passed else 'no'}; wall time {elapsed / 60:.1f} min")
    payload = {"seeds": seeds, "sets": args.sets, "config": str(args.config), "dyads": args.dyads,
               "sessions": args.sessions, "frames": args.frames, "K": args.samples,
               "per_seed": {str(s): r for s, r in results.items()}, "summary": summ, "all_targets_met": passed,
               "wall_seconds": elapsed}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
