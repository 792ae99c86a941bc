"""How a run's mean forecast error is spread over the test trajectories: the mean, the
median, and the share of the worst few, per run.

    python benchmarks/error_tail.py runs/msd/warp/* runs/msd/warp-phys/* --split test-ood

A mean MSE over trajectories can be carried by a handful of them; this says whether it is.
For each run: the forecast-window MSE of every trajectory of the split (as
`warp-phys evaluate` scores them, data units), then their mean (the run's reported MSE),
median, largest, the share of the summed error in the worst `--top` trajectories, and the
mean without the worst five. As in `warp-phys evaluate`, a forecast that left finite
values is counted as diverged and left out of the figures, never averaged in.

Writes benchmarks/results/error_tail-<system>-<split>.json.
"""

import argparse
from pathlib import Path

import numpy as np

import warp_phys as wp
from _common import machine, write_result
from warp_phys._evaluate import trajectory_errors


def summary(errors: np.ndarray, top: list[int]) -> dict:
    finite = errors[np.isfinite(errors)]
    ordered = np.sort(finite)[::-1]
    total = ordered.sum()
    return {"n": int(finite.size), "diverged": int(errors.size - finite.size),
            "mean": float(finite.mean()), "median": float(np.median(finite)),
            "max": float(ordered[0]), "mean_without_worst_5": float(ordered[5:].mean()),
            "share_of_worst": {str(k): float(ordered[:k].sum() / total) for k in top}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--split", default="test-ood")
    parser.add_argument("--top", type=int, nargs="+", default=[5, 25])
    args = parser.parse_args()
    rows, systems = [], set()
    for path in args.runs:
        if not (path / "metrics.json").is_file():
            raise SystemExit(f"error_tail: {path} is not a finished run directory (no "
                             "metrics.json); pass runs/<system>/<model>/<timestamp>")
        run = wp.Run.open(path)
        system = wp.load_system(run.config.system)
        systems.add(system.name)
        data = run.data([args.split])[args.split]
        errors = np.asarray(trajectory_errors(run.load_model(), data, run.normaliser, run.task))
        rows.append({"run": str(path), "model": run.config.model.name, "seed": run.config.seed,
                     **summary(errors, args.top)})
    name = "-".join(sorted(systems))
    command = (f"python benchmarks/error_tail.py {' '.join(map(str, args.runs))} "
               f"--split {args.split}")
    write_result(f"error_tail-{name}-{args.split}",
                 {"benchmark": "error_tail", "command": command, "machine": machine(),
                  "split": args.split, "rows": rows})


if __name__ == "__main__":
    main()
