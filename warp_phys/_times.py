"""Sample times: when each observation of a trajectory was made, as models read it.

Data on one uniform grid need nothing: step k of every trajectory is at normalised time
tau_k = k / (T - 1), and every model computes it from k. Irregularly sampled data (a
file whose times lie on no common grid, or a declaration with `wp.Sampling(jitter=...)`)
carry each sample's own time instead, as two known input channels after the states:

    inputs[:, k] = (x_k, tau_k, tau_{k+1})

with tau = (t - t_start) / (t_end - t_start) over the system's `t_span`, so the uniform
case gives the same numbers. Step k's output forecasts sample k + 1, which is taken at
tau_{k+1}: the time of the next sample is known when it is asked for (an experimenter
knows when the logger fires), its value never is. After the last sample tau_T extends
the last gap. A model never forecasts these channels: fed back, its own forecast replaces
the states alone (`_feedback.select`), and the normaliser leaves them as they are.

Each model reads them its own way: WARP's root evaluates at tau_{k+1} and its input
differences span the real gap; WARP-Phys's physics runs from tau_k to tau_{k+1}; the GRU
and LSTM read both times; the Neural ODE integrates over the gap; the Neural CDE builds
its path on the real times.
"""

import jax.numpy as jnp
import numpy as np


CHANNELS = 2
"""Known input channels of irregularly sampled data: tau_k and tau_{k+1}."""


def normalised(times: np.ndarray, t_span) -> np.ndarray:
    """`times` (any shape) mapped to tau, 0 at `t_span[0]` and 1 at `t_span[1]`."""
    start, end = t_span
    return (np.asarray(times, np.float64) - start) / (end - start)


def channels(times: np.ndarray, t_span) -> np.ndarray:
    """The two time channels (n, T, 2) of sample times `times` (n, T): tau_k and
    tau_{k+1} (the last extended by the last gap)."""
    tau = normalised(times, t_span)
    last = 2 * tau[:, -1:] - tau[:, -2:-1]
    return np.stack([tau, np.concatenate([tau[:, 1:], last], axis=1)], axis=-1)


def padded(times: list[np.ndarray], steps: int) -> np.ndarray:
    """Per-trajectory times of different lengths as one (n, steps) array; each row past its
    last sample goes on by its last gap (those samples are padding: missing values)."""
    out = np.empty((len(times), steps))
    for i, row in enumerate(times):
        gap = row[-1] - row[-2] if len(row) > 1 else 1.0
        out[i, : len(row)] = row
        out[i, len(row):] = row[-1] + gap * np.arange(1, steps - len(row) + 1)
    return out


def with_channels(inputs: np.ndarray, times: np.ndarray | None, t_span) -> np.ndarray:
    """`inputs` (n, T, d) followed by the time channels of `times` (n, T); unchanged when
    `times` is None (uniform sampling)."""
    if times is None:
        return inputs
    return np.concatenate([inputs, channels(times, t_span).astype(inputs.dtype)], axis=-1)


def step_times(x_in, k, steps: int, timed: bool):
    """(tau_k, tau_{k+1}) of step `k` for a model's input `x_in` (..., d [+ 2]): read from
    its time channels when `timed`, else the uniform grid's (scalars)."""
    if timed:
        return x_in[..., -2], x_in[..., -1]
    dtype = x_in.dtype
    return (jnp.asarray(k / (steps - 1), dtype), jnp.asarray((k + 1) / (steps - 1), dtype))
