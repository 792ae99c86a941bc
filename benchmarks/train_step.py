"""Seconds per training step of the paper's MSD model, with and without the fast VJP.

The model: root 1 -> 48 x 3 -> 2 (D_theta = 4898), hypernetwork 2 -> 1633 -> 3265 -> 4898,
T = 256, AR with teacher forcing 0.25, AdaBelief with global-norm clipping: the step
`warp-phys fit` compiles (`make_step`, its arguments donated). Each configuration is
timed after compilation (median of `--repeats` steps) in this one run, beside a
pure-matmul floor measured in the same run: the recurrence's matrix work,
T x batch x 3 x 2 D^2 flops (forward theta @ A^T, backward dtheta @ A and dA), at the
rate of the fastest of three large float32 matmuls on this machine (the best of 5
timings, taken again before every batch, the highest kept; likewise the bandwidths).

    python benchmarks/train_step.py                      # batches 8 and 64
    python benchmarks/train_step.py --batches 1024 --precisions default highest  # a GPU

`--precisions` sets JAX's default matmul precision while the step is traced: `default`
lets a GPU use TF32 for float32 products, `highest` asks for full float32. The result
also records the memory bandwidth measured in the same run and, on a GPU, peak memory.
A small batch is bound by memory, not flops: every step reads A (D^2 x 4 bytes) once
forward and once backward, so the bandwidth floor is 2 x T x 4 D^2 / bandwidth. The
`stream_floor_seconds` column is the least any float32 step could take: A read twice per
step at the rate of a plain sum over A, plus the dA product at the matmul rate.

Prints JSON and writes benchmarks/results/train_step-<backend>.json (with
`-batch<sizes>` added when the batches or precisions are not the default).
"""

import argparse
import json
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import warp_phys as wp
from _common import as_columns, best_seconds, machine, write_result
from warp_phys._train import make_step


D, T, CONTEXT = 4898, 256, 100


def matmul_rate(repeats: int = 5) -> float:
    """Achieved float32 matmul FLOP/s: the fastest of three large products XLA's CPU
    backend runs through different kernels: (2048 x D) @ (D x D), the dA product's form
    (a (D x 2048) @ (2048 x D) product read from two (2048 x D) arrays), and
    (D x D) @ (D x 2048), the form of the recurrence's products on a CPU."""
    a = jr.normal(jr.PRNGKey(0), (2048, D), jnp.float32)
    b = jr.normal(jr.PRNGKey(1), (D, D), jnp.float32)
    c = jr.normal(jr.PRNGKey(2), (2048, D), jnp.float32)
    columns = as_columns(c)
    flops = 2 * 2048 * D * D
    return max(flops / best_seconds(lambda a, b: a @ b, a, b, repeats=repeats),
               flops / best_seconds(lambda a, c: a.T @ c, a, c, repeats=repeats),
               flops / best_seconds(lambda b, columns: b @ columns, b, columns, repeats=repeats))


def bandwidth(repeats: int = 5) -> float:
    """Achieved bytes/s of a batch-8 product with A (read once per product): the faster of
    `x @ a.T` (contracting A's contiguous index) and `a @ columns` (x held as the columns
    of a (D, 8) array), the form both of the recurrence's products take on a CPU (see
    `transition` in warp_phys/_recurrence.py)."""
    a = jr.normal(jr.PRNGKey(1), (D, D), jnp.float32)
    x = jr.normal(jr.PRNGKey(0), (8, D), jnp.float32)
    columns = as_columns(x)
    return 4 * D * D / min(best_seconds(lambda x, a: x @ a.T, x, a, repeats=repeats, calls=10),
                           best_seconds(lambda c, a: a @ c, columns, a, repeats=repeats, calls=10))


def stream_bandwidth(repeats: int = 5) -> float:
    """Achieved bytes/s of a plain sum over A: about the fastest any kernel reads A here."""
    a = jr.normal(jr.PRNGKey(1), (D, D), jnp.float32)
    return 4 * D * D / best_seconds(jnp.sum, a, repeats=repeats, calls=10)


def peak_memory() -> int | None:
    stats = jax.devices()[0].memory_stats()
    return None if stats is None else int(stats.get("peak_bytes_in_use", 0))


def paper_step(batch: int, fast_vjp: bool = True):
    """The step `warp-phys fit` compiles (`make_step`, every argument donated) for the
    paper's MSD model, a fresh model and optimiser state, and a batch of data: returns
    `(step, state, data)`, to be called as `step(*state, *data, key, 0.25)`."""
    config = wp.make_config("msd", "paper", batch_size=batch, fast_vjp=fast_vjp)
    model = wp.make_warp(2, 2, T, width=48, depth=3, init="hypernetwork", hyper_hidden=2,
                         final="clip", key=jr.PRNGKey(0))
    optimiser = config.optimiser.make()
    opt_state = optimiser.init(eqx.filter(model, eqx.is_inexact_array))
    # NumPy batches, as `fit` passes them (so they are not donated).
    x = np.asarray(jr.normal(jr.PRNGKey(2), (batch, T, 2), jnp.float32))
    labels = np.zeros(batch, np.int64)
    step = eqx.filter_jit(make_step(optimiser, config, wp.Forecast(), steps=T,
                                    context=CONTEXT), donate="all")
    return step, (model, opt_state), (x, x, labels)


def step_time(batch: int, fast_vjp: bool, repeats: int) -> float:
    """Median seconds of `paper_step`, after one step to compile."""
    step, state, data = paper_step(batch, fast_vjp)
    key = jr.PRNGKey(3)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        *state, loss = step(*state, *data, jr.fold_in(key, i), 0.25)
        loss.block_until_ready()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", default=["default"],
                        choices=["default", "high", "highest"])
    args = parser.parse_args()
    runs, rates, bytes_per_second, streamed = [], {}, 0.0, 0.0
    for precision in args.precisions:
        with jax.default_matmul_precision(precision):
            for batch in args.batches:
                # The machine's rates, measured again before every batch and the best
                # kept, so that a slow spell of a shared machine cannot lower the floors.
                rates[precision] = max(rates.get(precision, 0.0), matmul_rate())
                bytes_per_second = max(bytes_per_second, bandwidth())
                streamed = max(streamed, stream_bandwidth())
                for fast in (True, False):
                    runs.append((precision, batch, fast, step_time(batch, fast, args.repeats),
                                 peak_memory()))
                    print(json.dumps({"batch": batch, "precision": precision, "fast_vjp": fast,
                                      "seconds_per_step": round(runs[-1][3], 4)}), flush=True)
    rows = []
    for precision, batch, fast, seconds, peak in runs:
        rate = rates[precision]
        flops = T * batch * 3 * 2 * D * D
        floor = max(flops / rate, 2 * T * 4 * D * D / bytes_per_second)
        # The least any float32 step could take: A read twice per step at the streaming
        # rate, plus dA, one (D x T batch) @ (T batch x D) product.
        stream_floor = 2 * T * 4 * D * D / streamed + 2 * T * batch * D * D / rate
        rows.append({"batch": batch, "precision": precision, "fast_vjp": fast,
                     "seconds_per_step": round(seconds, 4),
                     "recurrence_tflops": round(flops / seconds / 1e12, 3),
                     "floor_seconds": round(floor, 4),
                     "ratio_to_floor": round(seconds / floor, 2),
                     "stream_floor_seconds": round(stream_floor, 4),
                     "peak_memory_gib_so_far": None if peak is None else round(peak / 2**30, 2)})
    backend = jax.default_backend()
    result = {
        "benchmark": "train_step",
        "command": ("python benchmarks/train_step.py --batches " + " ".join(map(str, args.batches))
                    + " --precisions " + " ".join(args.precisions)
                    + f" --repeats {args.repeats}"),
        "machine": machine(),
        "model": {"D_theta": D, "T": T, "hypernetwork": [2, 1633, 3265, 4898], "dtype": "float32"},
        "matmul_tflops": {p: round(r / 1e12, 4) for p, r in rates.items()},
        "bandwidth_gb_per_s": round(bytes_per_second / 1e9, 2),
        "stream_gb_per_s": round(streamed / 1e9, 2),
        "floor": "max(T x batch x 3 x 2 D^2 / matmul rate, 2 x T x 4 D^2 / bandwidth)",
        "stream_floor": "2 x T x 4 D^2 / stream rate + T x batch x 2 D^2 / matmul rate",
        "results": rows,
    }
    default = args.batches == [8, 64] and args.precisions == ["default"]
    suffix = "" if default else "-batch" + "-".join(map(str, args.batches))
    write_result(f"train_step-{backend}{suffix}", result)


if __name__ == "__main__":
    main()
