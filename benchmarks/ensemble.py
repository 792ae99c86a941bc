"""Seeds trained one by one against the same seeds as one vmapped ensemble.

For each model, trains `--seeds` seeds of the quick preset on `--system` twice in this one
run: with `warp_phys.fit` for each seed in turn, and with `warp_phys.fit_ensemble` (one
jitted step over the stacked models). Reports the seconds one epoch of every seed costs
each way (the median over the epochs after the first, which holds the compilation), the
speed-up, and how far the members' test-ood MSE is from the one-by-one runs'.

    python benchmarks/ensemble.py                               # gru, lstm, warp, node on msd
    python benchmarks/ensemble.py --models ncde --epochs 2 --n-train 256

Prints JSON and writes benchmarks/results/ensemble-<system>-quick.json.
"""

import argparse
import json
import tempfile

import numpy as np

import warp_phys as wp
from _common import machine, write_result


def epoch_seconds(run) -> float:
    """Median seconds of one epoch of this run after the first (compiling) one; an
    ensemble member records its share, so multiply by the ensemble size for the whole."""
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines][1:]
    return float(np.median([r["seconds"] * r.get("ensemble", 1) for r in records]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="msd")
    parser.add_argument("--models", nargs="+", default=["gru", "lstm", "warp", "node"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=None)
    args = parser.parse_args()
    rows = []
    for model in args.models:
        configs = [wp.make_config(args.system, "quick", model=model, seed=s, epochs=args.epochs,
                                  n_train=args.n_train) for s in range(args.seeds)]
        with tempfile.TemporaryDirectory() as tmp:
            alone = [wp.fit(c, runs_dir=f"{tmp}/alone", progress=False) for c in configs]
            together = wp.fit_ensemble(configs, runs_dir=f"{tmp}/together", progress=False)
            one_by_one = sum(epoch_seconds(r) for r in alone)
            ensemble = epoch_seconds(together[0])
            mse = [(a.metrics["splits"]["test-ood"]["mse"], t.metrics["splits"]["test-ood"]["mse"])
                   for a, t in zip(alone, together)] if "test-ood" in alone[0].metrics["splits"] else []
        rows.append({
            "model": model,
            "seconds_per_epoch_of_all_seeds_one_by_one": round(one_by_one, 3),
            "seconds_per_epoch_of_all_seeds_as_ensemble": round(ensemble, 3),
            "speedup": round(one_by_one / ensemble, 2),
            "max_relative_test_ood_mse_difference": (
                max(abs(t - a) / a for a, t in mse) if mse else None),
        })
        print(json.dumps(rows[-1]), flush=True)
    write_result(f"ensemble-{args.system}-quick", {
        "benchmark": f"{args.seeds} seeds one by one against one vmapped ensemble",
        "command": "python benchmarks/ensemble.py " + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items() if v is not None),
        "machine": machine(),
        "epochs": args.epochs,
        "rows": rows,
    })


if __name__ == "__main__":
    main()
