"""A stiff system's data generation: explicit Dopri8 alone, the automatic hand-over to an
implicit solver, and the declared implicit solver, in one run.

Robertson's kinetics (`systems/robertson.py`), the train split. Dopri8 alone is what
warp-phys did before stiffness was detected (`ODEFlow(stiff_solver=None)`); the
hand-over is a declaration without `solver=` (Dopri8 tries the first batch, gives up
after `wp.STIFF_STEPS` steps and hands over to Kvaerno5); the declared solver is the
system as shipped. Each time is the median of `--repeats` runs after a first run that
compiles, all on the same draws; the hand-over's probe of Dopri8 is counted in each of
its runs (`generate` probes once per process and declaration).

    python benchmarks/stiff.py            # n = 256

Prints JSON and writes it to benchmarks/results/stiff.json.
"""

import argparse
import time
import warnings

import numpy as np

import warp_phys as wp
from _common import machine, write_result


def timed(run, repeats: int) -> tuple[float, tuple]:
    """Median seconds of `run()` over `repeats` runs after one that compiles."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", wp.StiffnessWarning)
        out = run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    declared = wp.load_system("robertson")
    train = wp.generate(declared, "train", args.n, seed=0, cache=False)
    ts, params, y0 = train.t, train.params, train.y0
    automatic = wp.compile_system(declared.replace(solver=None)).flow
    runs = {
        "dopri8_alone": lambda: (automatic.with_options(stiff_solver=None),
                                 *automatic.with_options(stiff_solver=None).simulate(ts, params, y0)),
        "handover": lambda: automatic.settle(ts, params, y0),
        "declared_kvaerno5": lambda: (wp.compile_system(declared).flow,
                                      *wp.compile_system(declared).flow.simulate(ts, params, y0)),
    }
    rows = {}
    for name, run in runs.items():
        seconds, (flow, ys, ok) = timed(run, args.repeats)
        rows[name] = {"seconds": seconds, "solver": flow.description, "solved": int(ok.sum()),
                      "max_abs_diff_vs_declared": float(np.abs(ys[ok] - train.y[ok]).max())
                      if ok.any() else None}
    reference = rows["dopri8_alone"]["seconds"]
    for row in rows.values():
        row["speedup_vs_dopri8"] = reference / row["seconds"]
    write_result("stiff", {"benchmark": "stiff", "system": "robertson", "n": args.n,
                           "repeats": args.repeats, "stiff_steps": wp.STIFF_STEPS,
                           "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
