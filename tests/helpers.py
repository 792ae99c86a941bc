"""Oracles independent of warp-phys's compiled JAX code: SymPy -> NumPy -> SciPy."""

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp

import warp_phys as wp


def numpy_field(system: wp.System):
    """The declared vector field as a NumPy function f(t, y, p) via plain lambdify."""
    free = list(system.free_parameters)
    if system.equations is not None:
        exprs = [sp.sympify(e).subs(system.fixed_parameters) for e in system.equations]
    else:
        exprs = [sp.diff(s.subs(system.fixed_parameters), system.time) for s in system.solution]
    fn = sp.lambdify([system.time, *system.state, *free], exprs, modules="numpy")
    return lambda t, y, p: np.array(fn(t, *y, *p), dtype=float) * np.ones(len(y))


def oracle_initial_state(system: wp.System, params: np.ndarray, y0_drawn: np.ndarray):
    """y0 from the declaration: numbers as declared, expressions evaluated at `params`,
    random components taken from `y0_drawn` (their box is checked elsewhere)."""
    free = list(system.free_parameters)
    values = dict(zip(free, params))
    if system.solution is not None:
        return np.array([float(s.subs(system.fixed_parameters).subs(values).subs(
            system.time, system.t_span[0])) for s in system.solution])
    out = []
    for i, (s, v) in enumerate(system.initial_state.items()):
        if isinstance(v, wp.AbstractDistribution):
            out.append(y0_drawn[i])
        elif isinstance(v, float):
            out.append(v)
        else:
            out.append(float(v.subs(system.fixed_parameters).subs(values)))
    return np.array(out)


def solve_dop853(system: wp.System, params: np.ndarray, y0: np.ndarray, ts: np.ndarray):
    f = numpy_field(system)
    sol = solve_ivp(lambda t, y: f(t, y, params), system.t_span, y0, method="DOP853",
                    t_eval=ts, rtol=1e-12, atol=1e-12)
    assert sol.success, sol.message
    return sol.y.T
