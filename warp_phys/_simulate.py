"""Simulation of a batch of trajectories on a uniform time grid, in one JAX call.

How a system is simulated is its flow's business, chosen once by `compile_system`
(see `warp_phys/_flow.py`): a declared closed form evaluated on the grid, `expm(dt M(p))`
powers for a linear system, or one adaptive Diffrax solve of the whole batch otherwise.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._compile import CompiledSystem
from ._custom_types import Draws, InitialStates, Params, States, Times
from ._flow import DTMIN as DTMIN


def chunk_size(compiled: CompiledSystem, n: int) -> int:
    """Trajectories per `simulate` call when generating `n` of them (the flow's choice:
    the whole split for an exact flow, 1024 for an adaptive solve)."""
    return compiled.flow.chunk_size(n)


@eqx.filter_jit
def _initial_states(compiled, params, z):
    return jax.vmap(compiled.initial_state)(params, z)


def initial_states(compiled: CompiledSystem, params: Params, z: Draws) -> InitialStates:
    """Initial states (n, d) from free parameters (n, P) and random initial-state
    components (n, R), in float64."""
    with jax.enable_x64(True):
        return np.asarray(_initial_states(compiled, jnp.asarray(params, jnp.float64),
                                          jnp.asarray(z, jnp.float64)))


def simulate(
    compiled: CompiledSystem,
    ts: Times,
    params: Params,
    y0: InitialStates,
    *,
    rtol: float = 1e-9,
    atol: float = 1e-9,
    max_steps: int = 100_000,
) -> tuple[States, np.ndarray]:
    """Simulate a batch of trajectories on the uniform grid `ts`, in float64, with the
    system's flow (`compiled.flow`).

    **Arguments:**

    - `compiled`: the compiled system.
    - `ts`: the uniform time grid, shape (T,).
    - `params`: free parameters, shape (n, P).
    - `y0`: initial states, shape (n, d).
    - `rtol`, `atol`: tolerances of the adaptive solver (unused by exact flows).
    - `max_steps`: the solver's step budget before a trajectory counts as failed.

    **Returns:** `(ys, ok)`: the states, shape (n, T, d), and whether each trajectory was
    solved and stayed finite, shape (n,). Rows with `ok == False` hold garbage.
    """
    flow = compiled.flow.with_options(rtol=rtol, atol=atol, max_steps=max_steps)
    return flow.simulate(ts, params, y0)
