"""Unknown terms: the part of a law its author does not know, learned as a network.

A declaration writes an unknown function of chosen symbols inside its equations,

    friction = wp.Unknown("friction", omega)
    equations = [omega, -(g / length) * sp.sin(theta) - friction]

and the system becomes a *model* of data (generated from another declaration, or read
from a file), never a generator. Models that use the law learn each term as a small MLP
of its inputs (`TermNetworks`): WARP-Phys carries the MLPs' weights in theta, so the
recurrence adapts the term per trajectory, or shares one set across trajectories; the
Neural ODE with `node_physics` learns one shared set (a universal differential
equation). `hybrid_flow` is the law's ODE with the terms filled in by the networks; after
training `warp_phys.recover_term` turns a learned term back into symbols.

A term's inputs are symbols of the system: states or the time. Each network reads them in
model units (states normalised as the data, the time as tau) and outputs the term in the
law's own units.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jaxtyping import Array, Float, PRNGKeyArray
from sympy.core.function import AppliedUndef

from ._errors import WarpPhysError
from ._flow import ODEFlow
from ._root import ACTIVATIONS, FlatRoot


def Unknown(name: str, *inputs: sp.Symbol) -> sp.Expr:  # noqa: N802 (reads as a SymPy object)
    """An unknown function `name` of the symbols `inputs`, to write inside a declaration's
    equations (`wp.Unknown("friction", omega)`). The system that holds it cannot generate
    data; models learn it (see `warp_phys.WARPPhysConfig` and `NeuralODEConfig`)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise WarpPhysError(f"Unknown(name, *inputs): the name must be an identifier such as "
                            f"'friction', got {name!r}")
    if not inputs:
        raise WarpPhysError(f"Unknown({name!r}) has no inputs; name the symbols it depends on, "
                            f"e.g. wp.Unknown({name!r}, omega)")
    for i, value in enumerate(inputs):
        if not isinstance(value, sp.Symbol):
            raise WarpPhysError(f"Unknown({name!r}, ...): input {i} is {value!r}, not a symbol; a "
                                "term's inputs are symbols of the system (states or the time)")
    return sp.Function(name)(*inputs)


def terms_of(equations) -> tuple[AppliedUndef, ...]:
    """The unknown terms written in `equations`, ordered by name (each name once)."""
    found = set().union(*(sp.sympify(e).atoms(AppliedUndef) for e in equations or ()))
    return tuple(sorted(found, key=lambda term: term.func.__name__))


class TermNetworks(eqx.Module):
    """The MLPs of a system's unknown terms, with their weights taken out: evaluate them
    with any weight vector `w` of length `size` (`__call__`)."""

    nets: tuple[FlatRoot, ...]
    names: tuple[str, ...] = eqx.field(static=True)
    reads: tuple[tuple[int, ...], ...] = eqx.field(static=True)  # state index, or -1: time
    shift: tuple[float, ...] = eqx.field(static=True)
    scale: tuple[float, ...] = eqx.field(static=True)
    t0: float = eqx.field(static=True)
    span: float = eqx.field(static=True)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(net.size for net in self.nets)

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def inputs(self, j: int, t: Float[Array, ""], y: Float[Array, " d"]) -> Float[Array, " k"]:
        """Term `j`'s inputs in model units, at time `t` in state `y` (physical units)."""
        shift, scale = jnp.asarray(self.shift, y.dtype), jnp.asarray(self.scale, y.dtype)
        z = (y - shift) / scale
        tau = jnp.asarray((t - self.t0) / self.span, y.dtype)
        return jnp.stack([tau if i < 0 else z[i] for i in self.reads[j]])

    def __call__(self, t, y, w: Float[Array, " W"]) -> Float[Array, " n"]:
        """Every term's value at time `t` in state `y`, under weights `w`."""
        offsets = np.cumsum((0,) + self.sizes)
        return jnp.stack([net(w[a:b].astype(y.dtype), self.inputs(j, t, y))[0]
                          for j, (net, a, b) in enumerate(zip(self.nets, offsets, offsets[1:]))])


def term_networks(system, *, width: int, depth: int, activation: str, shift=0.0, scale=1.0,
                  dtype=jnp.float32, key: PRNGKeyArray) -> tuple[TermNetworks, Array]:
    """The networks of `system`'s unknown terms and their initial weights (the last layer
    at zero: each term starts as 0, the law without it)."""
    if activation not in ACTIVATIONS:
        raise WarpPhysError(f"unknown activation {activation!r}")
    state = list(system.state)
    nets, weights, reads = [], [], []
    for term, k in zip(system.unknowns, jax.random.split(key, len(system.unknowns))):
        mlp = eqx.nn.MLP(len(term.args), 1, width, depth, activation=ACTIVATIONS[activation],
                         dtype=dtype, key=k)
        mlp = eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlp,
                          (jnp.zeros_like(mlp.layers[-1].weight), jnp.zeros_like(mlp.layers[-1].bias)))
        net, w = FlatRoot.from_network(mlp)
        nets.append(net)
        weights.append(w)
        reads.append(tuple(-1 if s == system.time else state.index(s) for s in term.args))
    d = len(state)
    t0, t1 = system.t_span
    networks = TermNetworks(
        nets=tuple(nets), names=tuple(t.func.__name__ for t in system.unknowns),
        reads=tuple(reads),
        shift=tuple(float(v) for v in np.broadcast_to(np.asarray(shift, float), (d,))),
        scale=tuple(float(v) for v in np.broadcast_to(np.asarray(scale, float), (d,))),
        t0=float(t0), span=float(t1 - t0))
    return networks, jnp.concatenate(weights)


def hybrid_flow(system, networks: TermNetworks) -> ODEFlow:
    """The law of `system` as an ODE whose unknown terms are `networks`: its parameter
    vector is the free parameters p (ordered as `System.free_parameters`) followed by the
    networks' weights."""
    from ._compile import partial_field

    field_fn, n = partial_field(system), len(system.free_parameters)

    def field(t, y, q):
        p, w = q[:n], q[n:]
        return field_fn(t, y, p, networks(t, y, w)).astype(y.dtype)

    solver = {} if system.solver is None else {"solver": system.solver}
    return ODEFlow(vector_field=field, **solver)
