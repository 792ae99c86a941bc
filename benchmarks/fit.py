"""Train a model with a preset and record its test errors and timings as JSON.

    python benchmarks/fit.py msd --preset quick
    python benchmarks/fit.py sine --preset paper --n-train 10
    python benchmarks/fit.py sine --preset paper --n-train 10 --model warp-phys --physics-form direct

    python benchmarks/fit.py msd --preset quick --tag epyc   # the same run on another CPU

Writes benchmarks/results/fit-<system>-<preset>[-<model>][-n<N>][-<tag>].json with the final metrics of
every test split (forecast-window MSE/MAE in data units, the naive last-context-value
forecast beside them, accuracy for classification), wall time and seconds per epoch.
"""

import argparse
import time
from pathlib import Path

import warp_phys as wp
from _common import machine, write_result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--model", default="warp")
    parser.add_argument("--physics-form", default=None)
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--tag", default="", help="appended to the result's name (another machine)")
    args = parser.parse_args()
    config = wp.make_config(args.system, args.preset, n_train=args.n_train, epochs=args.epochs,
                            lr=args.lr, model=args.model, physics_form=args.physics_form)
    start = time.perf_counter()
    run = wp.fit(config, runs_dir=args.runs, progress=False)
    seconds = time.perf_counter() - start
    command = f"python benchmarks/fit.py {args.system} --preset {args.preset}" + (
        f" --n-train {args.n_train}" if args.n_train else "") + (
        f" --epochs {args.epochs}" if args.epochs else "") + (
        f" --lr {args.lr}" if args.lr else "") + (
        f" --model {args.model}" if args.model != "warp" else "") + (
        f" --physics-form {args.physics_form}" if args.physics_form else "") + (
        f" --tag {args.tag}" if args.tag else "")
    result = {
        "benchmark": "fit",
        "command": command,
        "machine": machine(),
        "config": config.to_json(),
        "wall_seconds_including_data_and_compile": round(seconds, 1),
        **run.metrics,
    }
    name = (f"fit-{args.system}-{args.preset}" + (f"-{args.model}" if args.model != "warp" else "")
            + (f"-{args.physics_form}" if args.physics_form else "")
            + (f"-n{args.n_train}" if args.n_train else "") + (f"-{args.tag}" if args.tag else ""))
    write_result(name, result)


if __name__ == "__main__":
    main()
