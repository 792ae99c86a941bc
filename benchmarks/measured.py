"""Measured data made by an outside simulator: black-box WARP and WARP-Phys (with a
written-down law) fitted to a CSV file, compared in and out of distribution, in one run.

A damped pendulum is simulated with SciPy (`solve_ivp`, DOP853, rtol 1e-10; nothing of
warp-phys's simulator) and sampled as a logger would: 100 samples over 5 s at irregular
times (each of samples 1..99 up to 60% of the nominal step early, so the gaps run from 0.4
to 1.6 of it and differ between runs), with Gaussian observation noise (std 0.02 rad on
theta, 0.05 rad/s on omega) and 5% of the omega cells empty. The pendulum is driven by
a torque per unit inertia u(t) = a sin(w t + phi) (rad/s^2; a 0-1.5, w 1-4 rad/s, phi
0-2 pi per run), recorded as the control column `u:u`. Lengths 0.75-1.5 m and
damping 0.1-0.3 /s for train, val and test-id; test-ood has lengths 0.4-0.7 m or 1.6-2.5
m (faster or slower swings than any training run). The file is long format with a split
column and the true parameters as `p:length`, `p:damping`; the law is
`benchmarks/laws/pendulum.py`.

    python benchmarks/measured.py      # 256 train runs, 100 epochs per model (docs/data.md)

Prints JSON and writes it to benchmarks/results/measured-pendulum.json.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

import warp_phys as wp
from _common import machine, write_result


HERE = Path(__file__).parent
NOISE = {"theta": 0.02, "omega": 0.05}
JITTER = 0.6  # a sample may come up to this share of the nominal step early
MISSING = 0.05  # the share of empty omega cells (after the first sample)


def pendulum(length, damping, theta0, torque, ts):
    def field(t, y):
        return [y[1], -(9.81 / length) * np.sin(y[0]) - damping * y[1] + torque(t)]

    return solve_ivp(field, (ts[0], ts[-1]), [theta0, 0.0], method="DOP853", t_eval=ts,
                     rtol=1e-10, atol=1e-10).y.T


def torque(rng):
    a, w, phi = rng.uniform(0.0, 1.5), rng.uniform(1.0, 4.0), rng.uniform(0.0, 2 * np.pi)
    return lambda t: a * np.sin(w * t + phi)


def draw(split, n, rng):
    if split == "test-ood":
        short = rng.random(n) < 0.5
        length = np.where(short, rng.uniform(0.4, 0.7, n), rng.uniform(1.6, 2.5, n))
    else:
        length = rng.uniform(0.75, 1.5, n)
    return length, rng.uniform(0.1, 0.3, n), rng.uniform(-1.0, 1.0, n)


def write_file(path: Path, sizes: dict, seed: int) -> None:
    rng, grid, frames = np.random.default_rng(seed), np.linspace(0.0, 5.0, 100), []
    for split, n in sizes.items():
        for i, (length, damping, theta0) in enumerate(zip(*draw(split, n, rng))):
            early = JITTER * rng.random(len(grid) - 1) * (grid[1] - grid[0])
            ts = np.concatenate([grid[:1], grid[1:] - early])
            u = torque(rng)
            y = pendulum(length, damping, theta0, u, ts)
            noisy = {name: y[:, j] + rng.normal(0.0, std, len(ts))
                     for j, (name, std) in enumerate(NOISE.items())}
            empty = rng.random(len(ts)) < MISSING
            noisy["omega"][1:][empty[1:]] = np.nan
            frames.append(pd.DataFrame({"trajectory": f"{split}-{i}", "t": ts, **noisy, "u:u": u(ts),
                                        "p:length": length, "p:damping": damping,
                                        "split": split}))
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--physics-form", default=None, help="WARP-Phys's root (mlp, direct)")
    args = parser.parse_args()
    sizes = {"train": args.n_train, "val": 64, "test-id": 128, "test-ood": 128}
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pendulum.csv"
        write_file(path, sizes, seed=0)
        for model in ("warp", "warp-phys"):
            form = {"physics_form": args.physics_form} if model == "warp-phys" and args.physics_form else {}
            config = wp.make_config(str(path), "quick", model=model, epochs=args.epochs,
                                    law=str(HERE / "laws" / "pendulum.py"), **form)
            start = time.perf_counter()
            run = wp.fit(config, runs_dir=Path(folder) / "runs", progress=False)
            rows[model] = {"seconds": time.perf_counter() - start,
                           "best_epoch": run.metrics["best_epoch"],
                           "splits": run.metrics["splits"]}
    ood = {m: r["splits"]["test-ood"]["mse"] for m, r in rows.items()}
    write_result("measured-pendulum", {
        "benchmark": "measured", "command": "python benchmarks/measured.py"
        + (f" --n-train {args.n_train}" if args.n_train != 256 else "")
        + (f" --epochs {args.epochs}" if args.epochs != 100 else "")
        + (f" --physics-form {args.physics_form}" if args.physics_form else ""),
        "sizes": sizes, "noise_std": NOISE, "jitter": JITTER, "missing_omega": MISSING,
        "epochs": args.epochs, "models": rows,
        "ood_mse_ratio_warp_over_warp_phys": ood["warp"] / ood["warp-phys"],
        "machine": machine()})


if __name__ == "__main__":
    main()
