"""Seconds per training step, recurrent against convolutional mode, on the paper's
lotka-volterra settings.

The model: root 1 -> 48 x 3 -> 2 (D_theta = 4898), theta_0 learned (shared by every
sequence, as in the paper's LV configuration), T = 256, teacher forcing 1.0 (every input
read from the data), MSE, AdaBelief with global-norm clipping. Both modes train the same
model on the same batch in this one run; each step is compiled ahead of time and timed
`--repeats` times (median). The recurrent mode costs batch x T x D^2 per pass; the
convolutional mode computes the kernel A^j B (and A^k theta_0) in one chain of T
matrix-vector products whatever the batch, then an FFT convolution over time.

    python benchmarks/convolution.py                          # batches 16, 64, 256
    python benchmarks/convolution.py --batches 1024 --repeats 5   # a GPU

Prints JSON and writes benchmarks/results/convolution-<backend>.json.
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
from _common import machine, write_result
from warp_phys._train import loss_fn, make_optimiser


D, T = 4898, 256


def step_time(batch: int, mode: str, repeats: int) -> tuple[float, float, float]:
    """(median seconds per step, compile seconds, loss) for one training step."""
    config = wp.make_config("lotka-volterra", "paper", batch_size=batch, mode=mode)
    model = wp.make_warp(2, 2, T, width=48, depth=3, init="learned", final="dynamic-tanh",
                         key=jr.PRNGKey(0))
    optimiser = make_optimiser(config)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimiser.init(params)
    x = jnp.cumsum(0.05 * jr.normal(jr.PRNGKey(2), (batch, T, 2), jnp.float32), axis=1)
    ones = jnp.ones((batch, T), jnp.float32)

    def step(params, opt_state, x):
        def loss(params):
            return loss_fn(eqx.combine(params, static), x, x, None, ones, kind="forecast",
                           loss="mse", fast_vjp=True, mode=mode)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimiser.update(grads, opt_state, params, value=value)
        return eqx.apply_updates(params, updates), opt_state, value

    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, x).compile()
    compile_seconds = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        params, opt_state, value = compiled(params, opt_state, x)
        value.block_until_ready()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), compile_seconds, float(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for batch in args.batches:
        timed = {}
        for mode in ("convolutional", "recurrent"):
            seconds, compile_seconds, loss = step_time(batch, mode, args.repeats)
            timed[mode] = seconds
            rows.append({"batch": batch, "mode": mode, "seconds_per_step": round(seconds, 4),
                         "compile_seconds": round(compile_seconds, 1), "loss_after": loss})
            print(json.dumps(rows[-1]), flush=True)
        rows.append({"batch": batch, "speedup": round(timed["recurrent"] / timed["convolutional"], 2)})
        print(json.dumps(rows[-1]), flush=True)
    backend = jax.default_backend()
    result = {
        "benchmark": "convolution",
        "command": ("python benchmarks/convolution.py --batches " + " ".join(map(str, args.batches))
                    + f" --repeats {args.repeats}"),
        "machine": machine(),
        "model": {"D_theta": D, "T": T, "init": "learned (shared theta_0)", "forcing": 1.0,
                  "dtype": "float32"},
        "results": rows,
    }
    write_result(f"convolution-{backend}", result)


if __name__ == "__main__":
    main()
