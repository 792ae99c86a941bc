"""What a checkpoint after every epoch costs: the seconds to write one, beside the
seconds of the epoch it follows, in one run.

A 2-epoch `warp-phys fit` of the preset (its own sizes) gives the epoch time; then the
run's model and a fresh optimiser state of its configuration are written as
`checkpoint.eqx` `--writes` times (the atomic, checksummed write `fit` makes).

    python benchmarks/checkpoint.py msd --preset quick

Prints JSON and writes it to benchmarks/results/checkpoint-<system>-<preset>.json.
"""

import argparse
import tempfile
import time
from pathlib import Path

import equinox as eqx
import numpy as np

import warp_phys as wp
from warp_phys._run import _save, read_history
from _common import machine, write_result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("system")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--writes", type=int, default=20)
    args = parser.parse_args()
    config = wp.make_config(args.system, args.preset, epochs=2)
    with tempfile.TemporaryDirectory() as folder:
        run = wp.fit(config, runs_dir=folder, progress=False)
        epoch_seconds = [r["seconds"] for r in read_history(run.path / "metrics.jsonl", 2)]
        model = run.load_model()
        opt_state = config.optimiser.make().init(eqx.filter(model, eqx.is_inexact_array))
        path, times = Path(folder) / "checkpoint.eqx", []
        for i in range(args.writes):
            start = time.perf_counter()
            _save(path, {"epoch": i}, (model, opt_state))
            times.append(time.perf_counter() - start)
        size = path.stat().st_size
    write_seconds = float(np.median(times))
    write_result(f"checkpoint-{args.system}-{args.preset}", {
        "benchmark": "checkpoint", "system": args.system, "preset": args.preset,
        "command": f"python benchmarks/checkpoint.py {args.system} --preset {args.preset}",
        "checkpoint_bytes": size, "checkpoint_seconds_median": write_seconds,
        "epoch_seconds": epoch_seconds, "writes": args.writes,
        # The first epoch compiles; the second is what every later one costs.
        "cost_per_epoch_percent": 100 * write_seconds / epoch_seconds[-1],
        "machine": machine()})


if __name__ == "__main__":
    main()
