"""Seconds per training step, recurrent against convolutional mode, on the paper's
lotka-volterra settings.

The model: root 1 -> 48 x 3 -> 2 (D_theta = 4898), theta_0 learned (shared by every
sequence, as in the paper's LV configuration), T = 256, teacher forcing 1.0 (every input
read from the data), MSE, AdaBelief with global-norm clipping. Both modes train the same
model on the same batch in this one run; each step is compiled ahead of time, run once
untimed, then timed `--repeats` times (median). The recurrent mode costs batch x T x D^2
per pass; the convolutional mode computes the kernel A^j B (and A^k theta_0) in one chain
of T matrix-vector products whatever the batch, then a causal convolution over time.

The convolutional step is also timed with other block lengths (`--step-blocks`), in turn
with warp-phys's default one, at the largest batch. The convolution on its own (forward
and backward, b x T x 2 inputs against a T x 2 x D kernel) is timed too: warp-phys's blocked matrix products at several block lengths beside
an FFT over time (zero-padded to 2T), the form it replaced, written here as the comparison.

    python benchmarks/convolution.py                          # batches 16, 64, 256
    python benchmarks/convolution.py --batches 1024 --repeats 5   # a GPU

Prints JSON and writes benchmarks/results/convolution-<backend>.json.
"""

import argparse
import functools
import inspect
import json
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import warp_phys as wp
from _common import machine, write_result
from warp_phys import _warp as warp_module
from warp_phys._recurrence import causal_convolution, convolution_blocks
from warp_phys._train import loss_fn


D, T = 4898, 256


def lv_step(batch: int, mode: str):
    """One compiled training step of the model above in `mode`, and its first arguments:
    returns `(step, (params, opt_state, x))`, called as `step(params, opt_state, x) ->
    (params, opt_state, loss)` (params and optimiser state donated)."""
    config = wp.make_config("lotka-volterra", "paper", batch_size=batch, mode=mode)
    model = wp.make_warp(2, 2, T, width=48, depth=3, init="learned", final="dynamic-tanh",
                         key=jr.PRNGKey(0))
    optimiser = config.optimiser.make()
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimiser.init(params)
    x = jnp.cumsum(0.05 * jr.normal(jr.PRNGKey(2), (batch, T, 2), jnp.float32), axis=1)
    ones = jnp.ones((batch, T), jnp.float32)

    def step(params, opt_state, x):
        def loss(params):
            return loss_fn(eqx.combine(params, static), x, x, None, ones, config=config,
                           task=wp.Forecast())

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimiser.update(grads, opt_state, params, value=value)
        return eqx.apply_updates(params, updates), opt_state, value

    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, x).compile()
    return compiled, (params, opt_state, x)


def step_time(batch: int, mode: str, repeats: int) -> tuple[float, float, float]:
    """(median seconds per step, compile seconds, loss) for one training step."""
    start = time.perf_counter()
    compiled, (params, opt_state, x) = lv_step(batch, mode)
    compile_seconds = time.perf_counter() - start
    # One untimed step first, so that nothing the first run alone pays is timed.
    params, opt_state, value = compiled(params, opt_state, x)
    value.block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        params, opt_state, value = compiled(params, opt_state, x)
        value.block_until_ready()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), compile_seconds, float(value)


def block_times(batch: int, blocks: list[int], repeats: int) -> dict[int, tuple[float, float]]:
    """(median seconds per convolutional step, compile seconds) with the convolution made
    in blocks of each of `blocks` steps: every step compiled first, then run in turn, one
    untimed round and `repeats` timed ones, so that the machine's drift falls on all of
    them alike."""
    steps, compile_seconds = {}, {}
    for block in blocks:
        warp_module.convolution_blocks = functools.partial(convolution_blocks, block=block)
        start = time.perf_counter()
        try:
            compiled, state = lv_step(batch, "convolutional")
        finally:
            warp_module.convolution_blocks = convolution_blocks
        compile_seconds[block] = time.perf_counter() - start
        steps[block] = [compiled, state]
    times = {block: [] for block in blocks}
    for lap in range(repeats + 1):
        for block, (compiled, (params, opt_state, x)) in steps.items():
            start = time.perf_counter()
            params, opt_state, value = compiled(params, opt_state, x)
            value.block_until_ready()
            if lap:
                times[block].append(time.perf_counter() - start)
            steps[block][1] = (params, opt_state, x)
    return {block: (float(np.median(t)), compile_seconds[block]) for block, t in times.items()}


def fft_convolution(inputs, kernel):
    """The comparison: the same causal convolution by FFT over time (padded to 2T)."""
    n = 2 * inputs.shape[1]
    u = jnp.fft.rfft(inputs, n, axis=1)  # (b, F, c)
    k = jnp.fft.rfft(kernel, n, axis=0)  # (F, c, D)
    spectrum = sum(u[:, None, :, i] * k[:, i, :].T[None] for i in range(inputs.shape[-1]))
    return jnp.fft.irfft(spectrum, n, axis=-1)[..., : inputs.shape[1]].swapaxes(1, 2)


def convolution_time(batch: int, convolve, repeats: int) -> tuple[float, float]:
    """(median seconds of one forward and backward pass of `convolve`, max relative
    difference from the blocked form's result)."""
    inputs = 0.1 * jr.normal(jr.PRNGKey(0), (batch, T, 2), jnp.float32)
    kernel = 0.1 * jr.normal(jr.PRNGKey(1), (T, 2, D), jnp.float32)
    weights = jr.normal(jr.PRNGKey(2), (batch, T, D), jnp.float32)
    # Everything is an argument: closed-over arrays would let XLA fold the work at compile time.
    grad = jax.jit(jax.value_and_grad(lambda k, x, w: jnp.sum(convolve(x, k) * w)))
    jax.block_until_ready(grad(kernel, inputs, weights))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(grad(kernel, inputs, weights))
        times.append(time.perf_counter() - start)
    out, reference = jax.jit(convolve)(inputs, kernel), causal_convolution(inputs, kernel)
    difference = float(jnp.max(jnp.abs(out - reference)) / jnp.max(jnp.abs(reference)))
    return float(np.median(times)), difference


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step-blocks", type=int, nargs="*", default=[16],
                        help="also time the convolutional step at the largest batch with "
                             "these block lengths, in turn with the default block")
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
    default = inspect.signature(convolution_blocks).parameters["block"].default
    blocks = [default] + [b for b in args.step_blocks if b != default]
    for block, (seconds, compile_seconds) in block_times(max(args.batches), blocks,
                                                         args.repeats).items():
        rows.append({"batch": max(args.batches), "mode": "convolutional", "block": block,
                     "default_block": block == default,
                     "seconds_per_step_interleaved": round(seconds, 4),
                     "compile_seconds": round(compile_seconds, 1)})
        print(json.dumps(rows[-1]), flush=True)
    forms = {f"blocked {block}": functools.partial(causal_convolution, block=block)
             for block in (8, 16, 32, 64)}
    forms["fft"] = fft_convolution
    for batch in args.batches:
        for form, convolve in forms.items():
            seconds, difference = convolution_time(batch, convolve, args.repeats)
            rows.append({"batch": batch, "convolution": form,
                         "seconds_forward_backward": round(seconds, 4),
                         "max_relative_difference": difference})
            print(json.dumps(rows[-1]), flush=True)
    backend = jax.default_backend()
    result = {
        "benchmark": "convolution",
        "command": ("python benchmarks/convolution.py --batches " + " ".join(map(str, args.batches))
                    + f" --repeats {args.repeats} --step-blocks "
                    + " ".join(map(str, args.step_blocks))),
        "machine": machine(),
        "model": {"D_theta": D, "T": T, "init": "learned (shared theta_0)", "forcing": 1.0,
                  "dtype": "float32"},
        "results": rows,
    }
    write_result(f"convolution-{backend}", result)


if __name__ == "__main__":
    main()
