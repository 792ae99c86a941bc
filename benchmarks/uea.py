"""WARP on real data no one here made: a UEA multivariate classification problem shipped
with aeon, against aeon's MiniRocket on the same splits, in one run.

Both see the same three splits (`wp.read_trajectories("uea:NAME")`: the problem's TRAIN
file less 15% for validation, and its TEST file). MiniRocket (aeon's
`MiniRocketClassifier`, default settings, seed 0) trains on the train split; a series
shorter than the longest is padded with its last value, as WARP reads it. WARP trains
with the quick preset (`warp-phys fit uea:NAME`), its checkpoint chosen on the val split.

    python benchmarks/uea.py JapaneseVowels
    python benchmarks/uea.py BasicMotions

Prints JSON and writes it to benchmarks/results/uea-<NAME>.json.
"""

import argparse
import tempfile
import time

import numpy as np

import warp_phys as wp
from _common import machine, write_result


def minirocket(data: dict) -> tuple[float, float]:
    """MiniRocket's test accuracy and its seconds (fit and predict)."""
    from aeon.classification.convolution_based import MiniRocketClassifier

    start = time.perf_counter()
    model = MiniRocketClassifier(random_state=0)
    model.fit(data["train"].inputs.transpose(0, 2, 1), data["train"].labels)
    predicted = model.predict(data["test-id"].inputs.transpose(0, 2, 1))
    return float(np.mean(predicted == data["test-id"].labels)), time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    source = f"uea:{args.name}"
    data = wp.read_trajectories(source)
    rocket, rocket_seconds = minirocket(data)
    config = wp.make_config(source, "quick", epochs=args.epochs)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        metrics = wp.fit(config, runs_dir=folder, progress=False).metrics
    warp_seconds = time.perf_counter() - start
    accuracy = metrics["splits"]["test-id"]["accuracy"]
    write_result(f"uea-{args.name}", {
        "benchmark": "uea", "problem": args.name,
        "command": f"python benchmarks/uea.py {args.name}"
        + (f" --epochs {args.epochs}" if args.epochs else ""),
        "sizes": {s: len(d) for s, d in data.items()},
        "classes": list(data["train"].classes), "steps": int(data["train"].y.shape[1]),
        "warp": {"accuracy": accuracy, "best_epoch": metrics["best_epoch"],
                 "seconds": warp_seconds,
                 "config": config.to_json()},
        "minirocket": {"accuracy": rocket, "seconds": rocket_seconds},
        "points_behind_minirocket": 100 * (rocket - accuracy),
        "machine": machine()})


if __name__ == "__main__":
    main()
