"""Compilation of a `System` declaration into JAX functions.

Every function takes the free-parameter vector `p` (ordered as `System.free_parameters`,
fixed constants already substituted) and works on one trajectory; batch with `jax.vmap`.
All of them jit, vmap and differentiate.
"""

from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import sympy as sp

from ._distributions import AbstractDistribution
from ._errors import WarpPhysError
from ._flow import AbstractFlow, ClosedFormFlow, LinearFlow, ODEFlow
from ._system import System


def _lambdify(args: list[sp.Symbol], exprs: list[sp.Expr]) -> Callable[..., jax.Array]:
    """`exprs` as a JAX function of `args` returning a stacked array.

    Symbols are passed as arguments, never baked in, so the function differentiates with
    respect to every one of them. Constant entries are broadcast to the common shape.
    """
    fn = sp.lambdify(args, list(exprs), modules="jax", cse=True, dummify=True)

    def wrapped(*values):
        outs = fn(*values)
        dtype = jnp.result_type(*values, float)
        outs = [jnp.asarray(o, dtype=dtype) for o in outs]
        shape = jnp.broadcast_shapes(*(o.shape for o in outs))
        return jnp.stack([jnp.broadcast_to(o, shape) for o in outs], axis=-1)

    return wrapped


def linear_matrix(system: System) -> sp.Matrix | None:
    """`M(p)` if the equations are `dy/dt = M(p) y` (linear, homogeneous, autonomous; a
    control input makes them neither, even where it multiplies a state)."""
    if system.equations is None or system.controls:
        return None
    f = sp.Matrix(system.equations).subs(system.fixed_parameters)
    y = sp.Matrix(system.state)
    jacobian = f.jacobian(y)
    if jacobian.has(*system.state, system.time):
        return None
    if any(sp.expand(entry) != 0 for entry in f - jacobian * y):
        return None
    return jacobian


class CompiledSystem(eqx.Module):
    """A `System` compiled to JAX. Build it with `warp_phys.compile_system`.

    **Attributes (all functions of one trajectory):**

    - `vector_field(t, y, p) -> dy/dt`, shape (d,). For a system declared only by its
      closed form this is the time derivative of that form.
    - `initial_state(p, z) -> y0`, shape (d,), from the free parameters `p` and the
      random initial-state components `z` (ordered as `System.random_initial_state`).
    - `flow`: how the state moves through time, chosen once here: a `ClosedFormFlow`
      when a closed form is declared, else a `LinearFlow` when the equations are
      `dy/dt = M(p) y`, else an `ODEFlow` (see `warp_phys.AbstractFlow`).
    - `t0`: the start of the time grid.

    With control inputs (`System.controls`) the flow and the vector field are those of
    generation, each control replaced by its declared signal, and:

    - `signals(t, p) -> u`, shape (m,): the declared signals (None if any is undeclared).
    - `law`: the flow of the law driven by measured controls, for grey-box models: its
      parameter vector is `driven(p, t_a, t_b, u_a, u_b)`, the controls going linearly
      from u_a at time t_a to u_b at t_b over one gap between samples.

    Views of the flow: `matrix(p) -> M`, shape (d, d), for a `LinearFlow` (`is_linear`);
    `solution(t, p) -> y(t)`, shape (d,), for a `ClosedFormFlow` (`has_solution`); each
    is `None` otherwise.
    """

    vector_field: Callable = eqx.field(static=True)
    initial_state: Callable = eqx.field(static=True)
    flow: AbstractFlow = eqx.field(static=True)
    t0: float = eqx.field(static=True)
    param_names: tuple[str, ...] = eqx.field(static=True)
    state_names: tuple[str, ...] = eqx.field(static=True)
    signals: Callable | None = eqx.field(static=True, default=None)
    law: AbstractFlow | None = eqx.field(static=True, default=None)

    @property
    def matrix(self) -> Callable | None:
        return self.flow.matrix if isinstance(self.flow, LinearFlow) else None

    @property
    def solution(self) -> Callable | None:
        return self.flow.solution if isinstance(self.flow, ClosedFormFlow) else None

    @property
    def is_linear(self) -> bool:
        return isinstance(self.flow, LinearFlow)

    @property
    def has_solution(self) -> bool:
        return isinstance(self.flow, ClosedFormFlow)

    def linear_flow(self, t, y0, p, start=None):
        """`expm((t - start) M(p)) y0`: the exact solution at time `t` of a linear system
        that is in state `y0` at time `start` (default: `t0`)."""
        if not isinstance(self.flow, LinearFlow):
            raise ValueError("linear_flow needs a linear system (check `is_linear`)")
        return self.flow.advance(self.t0 if start is None else start, t, y0, p)


# Equal declarations share one compiled system, so the functions jitted on it
# (the simulator, later the models) are traced once, not once per `load_system` call.
_COMPILED: dict[str, CompiledSystem] = {}


def _compile(system: System) -> CompiledSystem:
    time, state, free = system.time, list(system.state), list(system.free_parameters)
    fixed = system.fixed_parameters
    subs = lambda exprs: [sp.sympify(e).subs(fixed) for e in exprs]  # noqa: E731

    if system.solution is not None:
        solution_fn = _lambdify([time, *free], subs(system.solution))
        solution = lambda t, p: solution_fn(t, *p)  # noqa: E731
    else:
        solution = None

    if system.equations is not None:
        equations = subs(system.equations)
    else:
        equations = [sp.diff(s, time) for s in subs(system.solution)]
    controls = list(system.controls)
    declared = all(v is not None for v in system.controls.values())
    signals = law = None
    if controls:
        law = _driven_flow(system, _lambdify([time, *state, *free, *controls], equations))
        if declared:  # generation replaces each control by its signal
            signal_fn = _lambdify([time, *free], subs(system.controls.values()))
            signals = lambda t, p: signal_fn(t, *p)  # noqa: E731
            equations = [e.subs(dict(zip(controls, subs(system.controls.values()))))
                         for e in equations]
    field_fn = _lambdify([time, *state, *free], equations if declared else
                         [e.subs({u: 0 for u in controls}) for e in equations])

    def vector_field(t, y, p):
        return field_fn(t, *(y[i] for i in range(len(state))), *p)

    if solution is not None:
        t0 = system.t_span[0]
        initial_state = lambda p, z: solution(t0, p)  # noqa: E731
    else:
        randoms = [sp.Dummy(f"{s.name}0") for s in system.random_initial_state]
        random_of = dict(zip(system.random_initial_state, randoms))
        exprs = [
            random_of[s] if isinstance(v, AbstractDistribution) else sp.sympify(v)
            for s, v in system.initial_state.items()
        ]
        initial_fn = _lambdify([*free, *randoms], subs(exprs))
        initial_state = lambda p, z: initial_fn(*p, *z)  # noqa: E731

    return CompiledSystem(
        vector_field=vector_field,
        initial_state=initial_state,
        flow=_flow(system, solution, vector_field),
        t0=system.t_span[0],
        param_names=tuple(s.name for s in free),
        state_names=tuple(s.name for s in state),
        signals=signals,
        law=law,
    )


def driven(p, t_a, t_b, u_a, u_b):
    """The parameter vector of `CompiledSystem.law` for one gap: the free parameters `p`,
    then the gap's ends and the controls there."""
    return jnp.concatenate([p, jnp.stack([t_a, t_b]).astype(p.dtype), u_a, u_b])


def _driven_flow(system: System, field_fn: Callable) -> ODEFlow:
    """The law as an ODE in the state whose controls go linearly between two samples
    (`driven` packs what it reads)."""
    n, d, m = len(system.free_parameters), len(system.state), len(system.controls)

    def field(t, y, q):
        p, (t_a, t_b), u_a, u_b = q[:n], q[n : n + 2], q[n + 2 : n + 2 + m], q[n + 2 + m :]
        u = (u_a + (t - t_a) / (t_b - t_a) * (u_b - u_a)).astype(y.dtype)
        return field_fn(t, *(y[i] for i in range(d)), *p, *u).astype(y.dtype)

    solver = {} if system.solver is None else {"solver": system.solver}
    return ODEFlow(vector_field=field, **solver)


def _flow(system: System, solution: Callable | None, vector_field: Callable) -> AbstractFlow:
    """The one place that decides how a system's state moves: closed form, expm or ODE."""
    if solution is not None:
        return ClosedFormFlow(solution=solution)
    m = linear_matrix(system)
    if m is not None:
        entries = _lambdify(list(system.free_parameters), list(m))
        d = len(system.state)
        return LinearFlow(matrix=lambda p: entries(*p).reshape(d, d), d=d)
    if system.solver is not None:
        return ODEFlow(vector_field=vector_field, solver=system.solver)
    return ODEFlow(vector_field=vector_field, stiff_solver=dfx.Kvaerno5())


_PARTIAL: dict[str, Callable] = {}


def partial_field(system: System) -> Callable:
    """The vector field of a law with unknown terms (`wp.Unknown`), `(t, y, p, z) ->
    dy/dt`, with `z` the value of each term (ordered as `System.unknowns`); cached as
    `compile_system` is."""
    if system.hash not in _PARTIAL:
        z = [sp.Dummy(term.func.__name__) for term in system.unknowns]
        fixed = system.fixed_parameters
        equations = [sp.sympify(e).subs(fixed).xreplace(dict(zip(system.unknowns, z)))
                     for e in system.equations]
        state = list(system.state)
        fn = _lambdify([system.time, *state, *system.free_parameters, *z], equations)
        _PARTIAL[system.hash] = lambda t, y, p, values: fn(
            t, *(y[i] for i in range(len(state))), *p, *(values[j] for j in range(len(z))))
    return _PARTIAL[system.hash]


def compile_system(system: System) -> CompiledSystem:
    """Compile a `System` to JAX functions (cached: equal declarations share the result).

    **Arguments:**

    - `system`: the declaration.

    **Returns:** a `CompiledSystem`.

    **Example:**

    ```python
    c = wp.compile_system(wp.load_system("msd"))
    c.flow                           # LinearFlow(...)
    c.is_linear                      # True
    c.matrix(jnp.array([0.03, 10.0, 0.1]))  # [[0, 1], [-k/m, -c/m]]
    ```
    """
    if not system.has_law:
        raise WarpPhysError(
            f"system {system.name!r} is only measured ({system.measured.path}): it declares "
            "no law to compile; give a declaration of its law (--law FILE.py, or "
            "load_system(path, law=...)) whose state names match the file's columns")
    if system.unknowns:
        terms = ", ".join(str(t) for t in system.unknowns)
        raise WarpPhysError(
            f"system {system.name!r} has unknown terms ({terms}): it is a model of data and "
            "cannot generate any; fit data from a complete declaration or a file with this one "
            "as the law (warp-phys fit DATA --model warp-phys --law FILE.py)")
    if system.hash not in _COMPILED:
        _COMPILED[system.hash] = _compile(system)
    return _COMPILED[system.hash]
