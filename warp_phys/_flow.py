"""Flows: how a compiled system's state moves through time.

`compile_system` chooses a system's flow once, from its declaration (the first that
applies):

1. `ClosedFormFlow`: a declared closed form `y(t; p)`, evaluated where it is asked for;
2. `LinearFlow`: a linear system `dy/dt = M(p) y`, advanced exactly by `expm(dt M(p))`;
3. `ODEFlow`: anything else, an adaptive Diffrax solve of the vector field.

Both users of a system's physics go through its flow: the simulator (`flow.simulate`, a
batch on a uniform grid in float64, which builds the datasets) and the grey-box roots
(`flow.advance`, one trajectory from a state at one time to another, inside a model).
"""

import abc
import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jax.scipy.linalg import expm
from jaxtyping import Array, Float

from ._custom_types import InitialStates, Params, States, Times


DTMIN = 1e-12
"""Smallest step, as a fraction of the time span, before a trajectory counts as failed."""

ADAPTIVE_OPTIONS = ("solver", "rtol", "atol", "max_steps", "norm", "dtmin", "chunk",
                    "stiff_solver", "substeps", "forward")
"""What `AbstractFlow.with_options` may change: the fields of an `ODEFlow`'s solve."""

STIFF_STEPS = 20_000
"""Steps of an explicit batch solve above which `ODEFlow.settle` tries its implicit
`stiff_solver`: far above what the non-stiff built-in systems take, well below what
Dopri8 takes on Robertson's kinetics (`python benchmarks/stiff.py` times the hand-over)."""


class StiffnessWarning(UserWarning):
    """An explicit solver ground through a stiff system and an implicit one took over."""


class AbstractFlow(eqx.Module):
    """How a compiled system's state moves through time (see the module docstring for
    the three final flows). All fields of a flow are static: it carries functions and
    settings, never weights, so it can sit in a model without adding leaves."""

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """One line for a dataset's metadata (`meta["method"]`), e.g. `"closed form"`."""

    @property
    @abc.abstractmethod
    def needs_state(self) -> bool:
        """Whether `advance` starts from a state (a closed form does not)."""

    @property
    @abc.abstractmethod
    def forward_mode(self) -> bool:
        """Whether forward-mode autodiff (`jax.jvp`, `jax.jacfwd`) goes through `advance`
        (a Diffrax solve has a custom VJP and no JVP)."""

    @property
    @abc.abstractmethod
    def identified_names(self) -> tuple[str, ...]:
        """The names of the quantities `identified` returns."""

    @abc.abstractmethod
    def identified(self, p: Float[Array, " P"]) -> Float[Array, " Q"]:
        """What one trajectory determines about the parameters `p` besides the parameters
        themselves: the entries of M(p) for a linear flow (msd's trajectories fix k/m and
        c/m, not m, k and c apart), nothing (shape (0,)) for the others."""

    @abc.abstractmethod
    def advance(self, start: Float[Array, ""], t: Float[Array, ""], y: Float[Array, " d"],
                p: Float[Array, " P"]) -> Float[Array, " d"]:
        """The state at time `t` of one trajectory that is in state `y` at time `start`,
        under the free parameters `p` (ordered as `System.free_parameters`).

        It jits, vmaps and differentiates; a failed adaptive solve gives NaN.
        """

    @abc.abstractmethod
    def chunk_size(self, n: int) -> int:
        """Trajectories per `simulate` call when `n` of them are generated."""

    @abc.abstractmethod
    def with_options(self, **options: Any) -> "AbstractFlow":
        """This flow with the adaptive solve's options (`ADAPTIVE_OPTIONS`) replaced. An
        exact flow solves nothing adaptively and returns itself."""

    @abc.abstractmethod
    def _solve(self, ts, params, y0) -> tuple[Array, Array]:
        """(ys (n, T, d), ok (n,) or ()) for float64 arrays, under x64."""

    def settle(self, ts: Times, params: Params, y0: InitialStates
               ) -> tuple["AbstractFlow", States, np.ndarray]:
        """Simulate a first batch (as `simulate`) and say which flow should simulate the
        rest: itself, except that an `ODEFlow` whose explicit solver grinds through a
        stiff system hands over to its implicit `stiff_solver` (with a warning).

        **Returns:** `(flow, ys, ok)`.
        """
        return self, *self.simulate(ts, params, y0)

    def simulate(self, ts: Times, params: Params, y0: InitialStates) -> tuple[States, np.ndarray]:
        """Simulate a batch of trajectories on the uniform time grid `ts`, in float64.

        **Arguments:**

        - `ts`: the uniform time grid, shape (T,).
        - `params`: free parameters, shape (n, P).
        - `y0`: initial states, shape (n, d) (unused by a closed form).

        **Returns:** `(ys, ok)`: the states, shape (n, T, d), and whether each trajectory
        was solved and stayed finite, shape (n,). Rows with `ok == False` hold garbage.
        """
        with jax.enable_x64(True):
            ts_, params_, y0_ = (jnp.asarray(a, dtype=jnp.float64) for a in (ts, params, y0))
            ys, ok = self._solve(ts_, params_, y0_)
            ok = ok & jnp.isfinite(ys).all(axis=(1, 2))
            return np.asarray(ys), np.asarray(ok)


def _check_options(options: dict) -> None:
    unknown = sorted(set(options) - set(ADAPTIVE_OPTIONS))
    if unknown:
        raise ValueError(
            f"with_options takes only {', '.join(ADAPTIVE_OPTIONS)}; got {', '.join(unknown)}")


class ClosedFormFlow(AbstractFlow):
    """A declared closed form `y(t; p)`: evaluated at each time, with no solve and no
    starting state.

    **Example:**

    ```python
    flow = wp.compile_system(wp.load_system("sine")).flow
    flow.advance(0.0, 0.25, None, jnp.array([0.1]))   # [sin(pi/2 + 0.1)]
    ```
    """

    solution: Callable = eqx.field(static=True)

    @property
    def description(self) -> str:
        return "closed form"

    @property
    def needs_state(self) -> bool:
        return False

    @property
    def forward_mode(self) -> bool:
        return True

    @property
    def identified_names(self) -> tuple[str, ...]:
        return ()

    def identified(self, p):
        return jnp.zeros((0,), jnp.result_type(p, float))

    def advance(self, start, t, y, p):
        return self.solution(t, p)

    def chunk_size(self, n: int) -> int:
        # Exact flows compile fast, and one call for the whole split avoids all copying.
        return n

    def with_options(self, **options) -> "ClosedFormFlow":
        _check_options(options)
        return self

    @eqx.filter_jit
    def _grid(self, ts, params):
        return jax.vmap(lambda p: jax.vmap(lambda t: self.solution(t, p))(ts))(params)

    def _solve(self, ts, params, y0):
        ys = self._grid(ts, params)
        return ys, jnp.ones(ys.shape[0], dtype=bool)


class LinearFlow(AbstractFlow):
    """A linear system `dy/dt = M(p) y`, advanced exactly: `y(t) = expm((t - start) M(p)) y`.

    On a uniform grid the simulator computes `E = expm(dt M(p))` once per trajectory and
    steps `y_{k+1} = E y_k` (rounding grows like `k * eps`, far below any tolerance).

    **Example:**

    ```python
    flow = wp.compile_system(wp.load_system("msd")).flow
    flow.matrix(jnp.array([0.03, 10.0, 0.1]))  # [[0, 1], [-k/m, -c/m]]
    ```
    """

    matrix: Callable = eqx.field(static=True)
    d: int = eqx.field(static=True)

    @property
    def description(self) -> str:
        return "expm (linear)"

    @property
    def needs_state(self) -> bool:
        return True

    @property
    def forward_mode(self) -> bool:
        return True

    @property
    def identified_names(self) -> tuple[str, ...]:
        return tuple(f"M[{i},{j}]" for i in range(self.d) for j in range(self.d))

    def identified(self, p):
        return self.matrix(p).reshape(-1)

    def advance(self, start, t, y, p):
        return expm((t - start) * self.matrix(p)) @ y

    def chunk_size(self, n: int) -> int:
        # 20480 MSD trajectories: 0.15 s in one call against 0.33 s in chunks of 1024.
        return n

    def with_options(self, **options) -> "LinearFlow":
        _check_options(options)
        return self

    @eqx.filter_jit
    def _powers(self, ts, params, y0):
        steps = jax.vmap(lambda p: expm((ts[1] - ts[0]) * self.matrix(p)))(params)

        def advance(y, _):
            return jnp.einsum("nij,nj->ni", steps, y), y

        _, ys = jax.lax.scan(advance, y0, None, length=ts.shape[0])
        return jnp.swapaxes(ys, 0, 1)

    def _solve(self, ts, params, y0):
        ys = self._powers(ts, params, y0)
        return ys, jnp.ones(ys.shape[0], dtype=bool)


class ODEFlow(AbstractFlow):
    """Any other system: an adaptive Diffrax solve of its vector field.

    The simulator solves a whole batch as a single (n, d) state. The step size is shared
    by the batch and controlled in the `norm` (the max norm by default), so every
    trajectory meets the tolerances on its own; the shared step keeps the saved output a
    contiguous write, which is what makes a batched solve fast on a CPU. If that solve
    fails (one trajectory blowing up stalls the shared step), the batch is solved again
    trajectory by trajectory to find the ones that failed.

    **Arguments:**

    - `vector_field`: `f(t, y, p) -> dy/dt` of one trajectory.
    - `solver`: a Diffrax solver with an error estimate (`diffrax.Dopri8()`; an implicit
      one such as `diffrax.Kvaerno5()` for stiff systems). An implicit solver solves
      each trajectory on its own (`jax.vmap`): its Newton step on a whole batch would
      factor one dense (n d) x (n d) Jacobian.
    - `stiff_solver`: the implicit solver `settle` hands over to when the explicit
      `solver` runs out of `max_steps` on a batch, or needs more than `STIFF_STEPS`
      steps and the implicit one solves every trajectory of it in under a quarter of
      them; `None` never hands over. A batch that fails otherwise (a trajectory blowing
      up) is not taken for stiffness.
      `compile_system` sets `diffrax.Kvaerno5()` unless the system declares its solver.
    - `rtol`, `atol`: the tolerances of the `diffrax.PIDController`.
    - `max_steps`: the step budget before a trajectory counts as failed.
    - `substeps`: for `advance` over short spans (one gap between samples), this many
      equal steps of `solver` without error control instead of the adaptive solve (None).
    - `forward`: `advance` differentiates in forward mode only (`diffrax.ForwardMode`):
      far cheaper for Jacobians with few inputs and many outputs (in-context
      identification, `warp_phys.InContext`), but not reverse-differentiable.
    - `norm`: the error norm of the controller (`optimistix.max_norm`).
    - `dtmin`: the smallest step, as a fraction of the solve's time span, before a
      trajectory counts as failed (a step below it means the state is blowing up, or the
      system is too stiff for an explicit solver: fail now instead of after `max_steps`);
      `None` for no floor, as in `diffrax.PIDController`.
    - `chunk`: trajectories per simulator call. 1024 (smaller chunks are padded to it, so
      each system compiles one solver) keeps a chunk's states in cache: on a 2-core CPU,
      chunks of 2048 Lotka-Volterra trajectories took 2x longer per trajectory.

    **Example:**

    ```python
    flow = wp.compile_system(wp.load_system("lotka-volterra")).flow
    flow.description                                   # "diffrax Dopri8 (adaptive)"
    stiff = flow.with_options(solver=diffrax.Kvaerno5())
    ```
    """

    vector_field: Callable = eqx.field(static=True)
    solver: dfx.AbstractAdaptiveSolver = eqx.field(static=True, default_factory=dfx.Dopri8)
    rtol: float = eqx.field(static=True, default=1e-9)
    atol: float = eqx.field(static=True, default=1e-9)
    max_steps: int = eqx.field(static=True, default=100_000)
    norm: Callable = eqx.field(static=True, default=optx.max_norm)
    dtmin: float | None = eqx.field(static=True, default=DTMIN)
    chunk: int = eqx.field(static=True, default=1024)
    stiff_solver: dfx.AbstractAdaptiveSolver | None = eqx.field(static=True, default=None)
    substeps: int | None = eqx.field(static=True, default=None)
    forward: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not isinstance(self.solver, dfx.AbstractAdaptiveSolver):
            raise ValueError("ODEFlow(solver=...) must be a Diffrax solver with an error "
                             f"estimate, such as diffrax.Dopri8(); got {self.solver!r}")
        if self.stiff_solver is not None and not isinstance(
                self.stiff_solver, dfx.AbstractImplicitSolver):
            raise ValueError("ODEFlow(stiff_solver=...) must be an implicit Diffrax solver "
                             f"such as diffrax.Kvaerno5(), or None; got {self.stiff_solver!r}")
        for name in ("rtol", "atol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ODEFlow({name}=...) must be positive, got {getattr(self, name)!r}")
        for name in ("max_steps", "chunk"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ODEFlow({name}=...) must be a positive integer, got {value!r}")
        if self.dtmin is not None and not self.dtmin > 0:
            raise ValueError(f"ODEFlow(dtmin=...) must be positive or None, got {self.dtmin!r}")

    @property
    def description(self) -> str:
        return f"diffrax {type(self.solver).__name__} (adaptive)"

    @property
    def implicit(self) -> bool:
        """Whether the solver is implicit (for stiff systems)."""
        return isinstance(self.solver, dfx.AbstractImplicitSolver)

    @property
    def needs_state(self) -> bool:
        return True

    @property
    def forward_mode(self) -> bool:
        return self.forward

    @property
    def identified_names(self) -> tuple[str, ...]:
        return ()

    def identified(self, p):
        return jnp.zeros((0,), jnp.result_type(p, float))

    def chunk_size(self, n: int) -> int:
        return self.chunk

    def with_options(self, **options) -> "ODEFlow":
        _check_options(options)
        return dataclasses.replace(self, **options)

    def stepsize_controller(self, t0, t1) -> dfx.PIDController:
        """The step-size controller of a solve over `[t0, t1]`."""
        dtmin = None if self.dtmin is None else self.dtmin * (t1 - t0)
        # force_dtmin=False: a step below the floor fails the solve instead of being forced.
        return dfx.PIDController(rtol=self.rtol, atol=self.atol, norm=self.norm,
                                 dtmin=dtmin, force_dtmin=False)

    def advance(self, start, t, y, p):
        if self.substeps:  # `substeps` equal steps of the solver, no error control
            control, dt0, steps = dfx.ConstantStepSize(), (t - start) / self.substeps, self.substeps
        else:
            control, dt0, steps = self.stepsize_controller(start, t), None, self.max_steps
        solution = dfx.diffeqsolve(
            dfx.ODETerm(lambda s, y, args: self.vector_field(s, y, args)), self.solver,
            start, t, dt0, y, args=p, stepsize_controller=control,
            saveat=dfx.SaveAt(t1=True), max_steps=steps, throw=False,
            **({"adjoint": dfx.ForwardMode()} if self.forward else {}),
        )
        # A failed solve gives NaN, which stops training with a clear message.
        ok = solution.result == dfx.RESULTS.successful
        return jnp.where(ok, solution.ys[-1], jnp.nan)

    def _diffeqsolve(self, ts, params, y0, *, batched):
        if batched:
            field = jax.vmap(self.vector_field, in_axes=(None, 0, 0))
        else:
            field = self.vector_field
        solution = dfx.diffeqsolve(
            dfx.ODETerm(lambda t, y, p: field(t, y, p)), self.solver,
            t0=ts[0], t1=ts[-1], dt0=None, y0=y0, args=params, saveat=dfx.SaveAt(ts=ts),
            stepsize_controller=self.stepsize_controller(ts[0], ts[-1]),
            max_steps=self.max_steps, throw=False,
        )
        ok = solution.result == dfx.RESULTS.successful
        exhausted = solution.result == dfx.RESULTS.max_steps_reached
        return solution.ys, ok, exhausted, solution.stats["num_steps"]

    @eqx.filter_jit
    def _solve_batch(self, ts, params, y0):
        """One solve of the whole batch: (ys, ok, out of steps, steps), all but ys scalars."""
        ys, ok, exhausted, steps = self._diffeqsolve(ts, params, y0, batched=True)
        return jnp.swapaxes(ys, 0, 1), ok & jnp.isfinite(ys).all(), exhausted, steps

    @eqx.filter_jit
    def _solve_each(self, ts, params, y0):
        """Each trajectory on its own: (ys, ok per trajectory, the most steps a solved
        trajectory took)."""
        ys, ok, _, steps = jax.vmap(
            lambda p, y: self._diffeqsolve(ts, p, y, batched=False))(params, y0)
        ok = ok & jnp.isfinite(ys).all(axis=(1, 2))
        return ys, ok, jnp.where(ok, steps, 0).max()

    def _solve(self, ts, params, y0):
        if self.implicit:
            return self._solve_each(ts, params, y0)[:2]
        ys, ok, _, _ = self._solve_batch(ts, params, y0)
        if not bool(ok):
            ys, ok, _ = self._solve_each(ts, params, y0)
        return ys, ok

    def _each(self, ts, params, y0):
        """`_solve_each` as NumPy (ys, ok): the batch already failed once, so it is not
        solved as a batch again."""
        ys, ok, _ = self._solve_each(ts, params, y0)
        return np.asarray(ys), np.asarray(ok)

    def settle(self, ts, params, y0):
        if self.stiff_solver is None or self.implicit:
            return self, *self.simulate(ts, params, y0)
        with jax.enable_x64(True):
            ts_, params_, y0_ = (jnp.asarray(a, dtype=jnp.float64) for a in (ts, params, y0))
            ys, ok, exhausted, steps = self._solve_batch(ts_, params_, y0_)
            ok, exhausted, steps = bool(ok), bool(exhausted), int(steps)
            if ok and steps <= STIFF_STEPS:
                return self, np.asarray(ys), np.ones(ys.shape[0], dtype=bool)
            if not (ok or exhausted):  # a trajectory blew up: not a matter of stiffness
                return self, *self._each(ts_, params_, y0_)
            stiff = dataclasses.replace(self, solver=self.stiff_solver, stiff_solver=None)
            ys_i, ok_i, steps_i = stiff._solve_each(ts_, params_, y0_)
            if not bool(ok_i.all()) or (ok and 4 * int(steps_i) >= steps):
                if ok:  # the explicit batch finished: keep it
                    return self, np.asarray(ys), np.ones(ys.shape[0], dtype=bool)
                return self, *self._each(ts_, params_, y0_)
        warnings.warn(StiffnessWarning(
            f"this system looks stiff: {type(self.solver).__name__} "
            + (f"took {steps:,} steps" if ok else f"ran out of its {self.max_steps:,} steps")
            + f" for a batch that {type(self.stiff_solver).__name__} solved in "
            f"{int(steps_i):,}, which simulates the rest. Declare solver=diffrax."
            f"{type(self.stiff_solver).__name__}() in the system to skip this test (and "
            "have grey-box models solve with it)"), stacklevel=6)
        return stiff, np.asarray(ys_i), np.asarray(ok_i)
