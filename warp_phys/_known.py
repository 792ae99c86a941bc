"""Known inputs: what a model reads beside the states and never forecasts, the sample
times of irregular data and the control inputs that drive a system.

Control inputs (`System.controls`, a file's `u:` columns) come first: each control's value
at sample k and at sample k + 1 (the future of a control is known to the experimenter
who applies it; after the last sample it is held). Sample times follow.

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


def with_channels(inputs: np.ndarray, times: np.ndarray | None, t_span,
                  controls: np.ndarray | None = None) -> np.ndarray:
    """`inputs` (n, T, d) followed by the known channels: with `controls` (n, T, m), each
    control's value at the sample and at the next one (the last held), then with `times`
    (n, T) the two time channels. Unchanged with neither (uniform sampling, no controls)."""
    parts = [inputs]
    if controls is not None and controls.shape[-1]:
        parts += [controls, np.concatenate([controls[:, 1:], controls[:, -1:]], axis=1)]
    if times is not None:
        parts.append(channels(times, t_span))
    if len(parts) == 1:
        return inputs
    return np.concatenate([p.astype(inputs.dtype) for p in parts], axis=-1)


def step_times(x_in, k, steps: int, timed: bool):
    """(tau_k, tau_{k+1}) of step `k` for a model's input `x_in` (..., d [+ 2]): read from
    its time channels when `timed`, else the uniform grid's (scalars)."""
    if timed:
        return x_in[..., -2], x_in[..., -1]
    dtype = x_in.dtype
    return (jnp.asarray(k / (steps - 1), dtype), jnp.asarray((k + 1) / (steps - 1), dtype))
