"""The input rule every sequence model here shares, and the one loop that applies it:

    x_in_k = x_k          where step k is forced (always at k = 0)
    x_in_k = mean_{k-1}   elsewhere (the model's own previous forecast)

A model supplies a cell `cell(carry, x_in, k) -> (carry, state, mean)` over a batch;
`feedback_scan` runs it with `jax.lax.scan` over time.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def select(forced_k: Float[Array, " b"], truth: Float[Array, "b d"],
           forecast: Float[Array, "b out"]) -> Float[Array, "b d"]:
    """x_in_k: the truth where step k is forced, the model's own forecast elsewhere. The
    forecast replaces the leading channels (the states); channels after them are known
    inputs (sample times, see `_known.py`) and always come from the data. A model whose
    output is longer than its input (a classifier's logits) always reads the truth."""
    n = forecast.shape[-1]
    if n > truth.shape[-1]:
        return truth
    fed = forecast if n == truth.shape[-1] else jnp.concatenate([forecast, truth[:, n:]], axis=-1)
    return jnp.where(forced_k[:, None] > 0, truth, fed)


def bounded(mean: Float[Array, "... out"], bound: float | None) -> Float[Array, "... out"]:
    """`mean` clipped to [-bound, bound] (unchanged when `bound` is None)."""
    return mean if bound is None else jnp.clip(mean, -bound, bound)


def feedback_scan(cell: Callable, carry, x: Float[Array, "b T d"], forced: Float[Array, "b T"],
                  forecast: Float[Array, "b out"], *, start: int = 0, bound: float | None = None):
    """Run `cell` over steps `start`..T-1, feeding each step `select(forced, x, previous
    mean)`; `forecast` is the mean before step `start` (never read where that step is
    forced). With `bound`, every mean the cell returns is clipped to [-bound, bound]
    before it is fed back or returned, so a rollout that runs away stays finite.

    **Returns:** `(carry, states, means)`: the cell's carry after the last step, and,
    stacked over the steps run, `states` as the cell returns them (leading axis time) and
    `means` of shape (steps, b, out).
    """
    def step(scan_carry, k):
        carry, previous = scan_carry
        carry, state, mean = cell(carry, select(forced[:, k], x[:, k], previous), k)
        mean = bounded(mean, bound)
        return (carry, mean), (state, mean)

    (carry, _), (states, means) = jax.lax.scan(step, (carry, forecast),
                                               jnp.arange(start, x.shape[1]))
    return carry, states, means
