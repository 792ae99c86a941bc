"""In-context identification on msd: WARP-Phys's test errors and inferred parameters with the
amortised guess alone and refined on each context, and the seconds refinement adds.

    python benchmarks/identify.py                      # msd quick, seeds 0-2, refine 0/10/30
    python benchmarks/identify.py --seeds 0 --refine 0 20

Each seed trains one WARP-Phys run (quick preset, no refinement in training); the same
trained model is then scored with each refinement step count, so the rows differ only by
refinement. Writes benchmarks/results/identify-<system>-<preset>.json.
"""

import argparse
import time
from pathlib import Path

import numpy as np

import warp_phys as wp
from _common import machine, write_result
from warp_phys._evaluate import metrics, outputs


def score(run, steps: int, data: dict) -> dict:
    """Test MSE per split, R^2 of the identified quantities and seconds per trajectory of
    the run's model with `steps` refinement steps."""
    config = run.config.replace(refine=steps)
    model = config.model.inference(run.load_model())
    row = {"refine": steps, "splits": {}}
    for split, dataset in data.items():
        outputs(model, dataset, run.normaliser, run.task)  # compile
        start = time.perf_counter()
        m = metrics(model, dataset, run.normaliser, run.task)
        seconds = time.perf_counter() - start
        row["splits"][split] = {"mse": m["mse"], "naive_mse": m["naive_mse"],
                                "seconds_per_trajectory": seconds / len(dataset)}
    report = wp.parameter_report(model, run.system, data, run.normaliser)
    row["r2"] = {split: {name: v["r2"] for name, v in per.items()}
                 for split, per in report["summary"].items()}
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="msd")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--refine", type=int, nargs="+", default=[0, 10, 30])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args()
    result = {"command": "python benchmarks/identify.py" + (
        "" if args.seeds == [0, 1, 2] else " --seeds " + " ".join(map(str, args.seeds))) + (
        "" if args.refine == [0, 10, 30] else " --refine " + " ".join(map(str, args.refine))),
        "system": args.system, "preset": args.preset, "seeds": {}}
    for seed in args.seeds:
        config = wp.make_config(args.system, args.preset, model="warp-phys", seed=seed)
        start = time.perf_counter()
        run = wp.fit(config, runs_dir=args.runs, progress=False)
        train_seconds = time.perf_counter() - start
        tests = [s for s in run.system.splits if s.startswith("test")]
        data = run.data(tests)
        rows = [score(run, steps, data) for steps in args.refine]
        result["seeds"][str(seed)] = {"run": str(run.path), "train_seconds": train_seconds,
                                      "rows": rows}
        print(seed, [(r["refine"], {s: round(v["mse"], 6) for s, v in r["splits"].items()})
                     for r in rows], flush=True)
    summary = {}
    for steps in args.refine:
        per = [next(r for r in s["rows"] if r["refine"] == steps) for s in result["seeds"].values()]
        means = {split: float(np.mean([r["splits"][split]["mse"] for r in per]))
                 for split in per[0]["splits"]}
        summary[str(steps)] = {
            "mean_mse": means,
            "ood_over_id": means.get("test-ood", np.nan) / means["test-id"],
            "worst_ood_over_id": float(max(r["splits"]["test-ood"]["mse"] / r["splits"]["test-id"]["mse"]
                                           for r in per)),
            "seconds_per_trajectory": float(np.mean([r["splits"]["test-id"]["seconds_per_trajectory"]
                                                     for r in per])),
        }
    result["summary"] = summary
    result["machine"] = machine()
    write_result(f"identify-{args.system}-{args.preset}", result)


if __name__ == "__main__":
    main()
