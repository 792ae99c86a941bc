"""Data-generation speed and accuracy: warp-phys against a SciPy RK45 loop, in one run.

Our time is the median of `--repeats` runs after compilation. The comparison point is what the authors' reference code does (REFERENCE.md section 5):
`scipy.integrate.solve_ivp(method="RK45")` with its default tolerances, one trajectory at
a time in a Python loop, on the same parameter draws. Accuracy of both is measured
against DOP853 at rtol = atol = 1e-12 on a sample.

    python benchmarks/generate.py                # full splits (about 2 minutes of SciPy)
    python benchmarks/generate.py --baseline-n 2000   # SciPy on a subset, scaled up

Prints JSON and writes it to benchmarks/results/generate.json.
"""

import argparse
import time

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp

import warp_phys as wp
from _common import machine, write_result


def dop853(field, system, p, y0, ts):
    sol = solve_ivp(lambda t, y: field(t, y, p), system.t_span, y0, method="DOP853",
                    t_eval=ts, rtol=1e-12, atol=1e-12)
    return sol.y.T


def bench(name: str, baseline_n: int | None, sample: int, repeats: int) -> dict:
    system = wp.load_system(name)
    n = system.sizes["train"]
    wp.generate(system, "train", n, seed=1, cache=False)  # compile for this size
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        data = wp.generate(system, "train", n, seed=0, cache=False)
        times.append(time.perf_counter() - start)
    ours = float(np.median(times))

    free = list(system.free_parameters)
    exprs = [sp.sympify(e).subs(system.fixed_parameters) for e in system.equations]
    # Scalar `math` functions: as fast as a hand-written Python right-hand side.
    scalar_field = sp.lambdify([system.time, *system.state, *free], exprs, modules="math")
    field = lambda t, y, p: scalar_field(t, *y, *p)  # noqa: E731

    rng = np.random.default_rng(0)
    rows = rng.choice(n, size=sample, replace=False)
    ours_err = max(
        np.abs(data.y[i] - dop853(field, system, data.params[i], data.y0[i], data.t)).max()
        for i in rows
    )

    m = n if baseline_n is None else min(baseline_n, n)
    rk45 = []
    start = time.perf_counter()
    for i in range(m):
        sol = solve_ivp(lambda t, y: field(t, y, data.params[i]), system.t_span, data.y0[i],
                        method="RK45", t_eval=data.t)
        rk45.append(sol.y.T)
    scipy_time = (time.perf_counter() - start) * n / m
    scipy_err = max(
        np.abs(rk45[i] - dop853(field, system, data.params[i], data.y0[i], data.t)).max()
        for i in rows if i < m
    ) if any(i < m for i in rows) else None
    return {
        "system": name,
        "trajectories": n,
        "steps": system.steps,
        "method": data.meta["method"],
        "warp_phys_seconds": round(ours, 4),
        "warp_phys_seconds_each_run": [round(x, 4) for x in times],
        "warp_phys_max_abs_error_vs_dop853": float(ours_err),
        "scipy_rk45_loop_seconds": round(scipy_time, 2),
        "scipy_rk45_loop_measured_on": m,
        "scipy_rk45_max_abs_error_vs_dop853": None if scipy_err is None else float(scipy_err),
        "speedup": round(scipy_time / ours, 1),
        "error_sample": sample,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-n", type=int, default=None,
                        help="trajectories for the SciPy loop (default: the whole split)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of ours (median reported)")
    parser.add_argument("--sample", type=int, default=20, help="trajectories checked against DOP853")
    args = parser.parse_args()
    results = {
        "benchmark": "generate",
        "command": "python benchmarks/generate.py"
        + (f" --baseline-n {args.baseline_n}" if args.baseline_n else ""),
        "machine": machine(),
        "results": [bench(name, args.baseline_n, args.sample, args.repeats) for name in ("msd", "lotka-volterra")],
    }
    write_result("generate", results)

if __name__ == "__main__":
    main()
