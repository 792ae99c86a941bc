"""Structured transition matrices and the precision of the products with A, on msd
(quick protocol): parameters, time and error.

Trains black-box WARP on msd with the quick preset once per variant, in this one run, on
the same data and seed: A dense (the paper), diagonal plus low-rank, and block-diagonal
by root layer, all at float32; then dense A at each other `--precisions` entry. Reports
A's parameters and the model's, the median seconds per epoch and per training step, and
the forecast MSE on test-id and test-ood.

    python benchmarks/transitions.py                 # the three structures, and dense in bf16
    python benchmarks/transitions.py --rank 4 32 --precisions   # more ranks, no bf16 row

Prints JSON and writes benchmarks/results/transitions-msd-quick.json.
"""

import argparse
import json
import math
import tempfile

import equinox as eqx
import jax
import numpy as np

import warp_phys as wp
from _common import machine, write_result


def count(tree) -> int:
    return sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, nargs="+", default=[8])
    parser.add_argument("--precisions", nargs="*", default=["bf16"], choices=["tf32", "bf16"])
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    choices = ([("dense", None, "float32")] + [("diagonal-low-rank", r, "float32") for r in args.rank]
               + [("block-diagonal", None, "float32")] + [("dense", None, p) for p in args.precisions])
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for transition, rank, precision in choices:
            config = wp.make_config("msd", "quick", transition=transition, rank=rank or 8,
                                    precision=precision, epochs=args.epochs)
            run = wp.fit(config, runs_dir=folder, progress=False)
            model = run.load_model()
            history = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
            per_epoch = float(np.median([h["seconds"] for h in history]))
            steps = config.data.n_train // config.training.batch_size
            splits = run.metrics["splits"]
            rows.append({
                "transition": transition, "rank": rank, "precision": precision,
                "A_parameters": count(model.A), "model_parameters": count(model),
                "seconds_per_epoch": round(per_epoch, 3),
                "seconds_per_step": round(per_epoch / steps, 4),
                "test_id_mse": splits["test-id"]["mse"], "test_ood_mse": splits["test-ood"]["mse"],
                "diverged": {s: m["diverged"] for s, m in splits.items()},
                "best_epoch": run.metrics["best_epoch"],
            })
            print(json.dumps(rows[-1]), flush=True)
    result = {
        "benchmark": "transitions",
        "command": "python benchmarks/transitions.py --rank " + " ".join(map(str, args.rank))
                   + " --precisions " + " ".join(args.precisions)
                   + (f" --epochs {args.epochs}" if args.epochs else ""),
        "machine": machine(),
        "protocol": "msd, quick preset (D_theta = 338, 1024 training sequences, 40 epochs), seed 0",
        "results": rows,
    }
    write_result("transitions-msd-quick", result)


if __name__ == "__main__":
    main()
