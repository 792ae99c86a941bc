"""Grey-box roots compiled from a system's declaration (WARP-Phys).

A grey-box root replaces the black-box MLP with the declared physics. Its weights theta
carry the system's unknown physical parameters p, and its output at normalised time tau
is the state the physics predicts at the physical time t = t0 + tau (t1 - t0), from the
sequence's first observation x0 (every system observes its full state, so the data fixes
the initial state):

    linear systems (dy/dt = M(p) y)       y(t) = expm((t - t0) M(p)) x0
    a declared closed form y(t; p)         y(t) = solution(t, p)
    any other system                       y(t) = x0 + int_t0^t f(s, y, p) ds   (Diffrax)

(the system's flow, chosen when it was compiled: `compiled.flow`, see `_flow.py`).

With `previous=True` the physics starts instead from the step's own input x_k at
t_k = t - dt and runs one sampling interval dt: y(t) = expm(dt M(p)) x_k, or one Diffrax
solve over [t_k, t]. Both are exact given the true p (the forecast fed back is the state
at t_k); the one-interval form costs O(T) rather than O(T^2) solver work per sequence for
systems without a matrix, and no solve spans the whole window. A closed form has no
starting state, so it takes the first form only.

Two forms say how theta carries p (`form=`):

- `"direct"`: theta is the vector u of unknowns itself (D_theta = number of unknowns);
- `"mlp"`: theta is the weights of a small MLP of tau that outputs u(tau) (the paper's
  form: the parameters may vary along the sequence).

Either way u is unconstrained and becomes p through a transform scaled by the declared
training range, so nobody hand-tunes a rescaling: a parameter whose range is positive is
`p = exp(c + h z)` (c, h the centre and half-width of log p over the range), any other is
`p = c + h z`, with `z = reach * tanh(u / reach)` so that u = 0 is the centre of the range,
u = +-1 its edges, and p never leaves `reach` half-widths of the centre. Parameters fixed
to a number in the declaration stay fixed; free parameters that enter only the initial
state (the spirals' angle) are not unknowns, since the data gives x0.

For classification systems whose label is a parameter of the dynamics (the spirals'
direction), the root's output is the logits `-((p_label - c_j) / h)^2` of the class
values c_j: the model classifies by identifying the physical parameter.
"""


from collections.abc import Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import sympy as sp
from jaxtyping import Array, Float, PRNGKeyArray

from ._compile import CompiledSystem, compile_system, driven
from ._errors import WarpPhysError
from ._flow import AbstractFlow, ODEFlow
from ._identify import InContext
from ._root import ACTIVATIONS, AbstractRoot, FlatRoot
from ._system import System
from ._unknown import TermNetworks, hybrid_flow, term_networks


FORMS = ("direct", "mlp")

HYBRID_SUBSTEPS = 4
"""Tsit5 steps per gap between samples of a law with unknown terms (`previous` form)."""


def _scale(dist) -> tuple[bool, float, float]:
    """(log?, centre, half-width) of a parameter, from its training range (the OoD range
    when the training range is a single value)."""
    low, high = dist.bounds("train")
    if low == high:
        low, high = dist.bounds("ood")
    log = low > 0
    if log:
        low, high = np.log(low), np.log(high)
    centre, half = (low + high) / 2, (high - low) / 2
    return log, float(centre), float(half if half > 0 else max(abs(centre), 1.0) * 0.1)


def centre(system: System) -> np.ndarray:
    """The centre of every free parameter's training range (geometric for positive
    ranges), ordered as `System.free_parameters`."""
    scales = [_scale(system.parameters[s]) for s in system.free_parameters]
    return np.array([np.exp(c) if log else c for log, c, _ in scales])


def unknowns(system: System) -> tuple[sp.Symbol, ...]:
    """The free parameters that enter the dynamics (equations or closed form): what a
    grey-box model must infer."""
    exprs = system.solution if system.solution is not None else system.equations
    used = set().union(*(sp.sympify(e).free_symbols for e in exprs))
    return tuple(s for s in system.free_parameters if s in used)


class PhysicsRoot(AbstractRoot):
    """A grey-box root compiled from a `System`. Build it with `warp_phys.physics_root`."""

    compiled: CompiledSystem | None  # None for a law with unknown terms
    flow: AbstractFlow = eqx.field(static=True)  # the compiled flow, with the root's solve
    mlp: FlatRoot | None  # None: the "direct" form
    index: tuple[int, ...] = eqx.field(static=True)
    log: tuple[bool, ...] = eqx.field(static=True)
    centre: tuple[float, ...] = eqx.field(static=True)
    half: tuple[float, ...] = eqx.field(static=True)
    reach: float = eqx.field(static=True)
    defaults: tuple[float, ...] = eqx.field(static=True)
    span: float = eqx.field(static=True)
    shift: tuple[float, ...] = eqx.field(static=True)
    scale: tuple[float, ...] = eqx.field(static=True)
    classes: tuple[float, ...] = eqx.field(static=True)
    label: int | None = eqx.field(static=True)
    previous: bool = eqx.field(static=True, default=False)
    dt: float = eqx.field(static=True, default=0.0)
    timed: bool = eqx.field(static=True, default=False)
    controls: int = eqx.field(static=True, default=0)
    control_shift: tuple[float, ...] = eqx.field(static=True, default=())
    control_scale: tuple[float, ...] = eqx.field(static=True, default=())
    t0: float = eqx.field(static=True, default=0.0)
    terms: TermNetworks | None = None  # the networks of the law's unknown terms
    shared: Float[Array, " W"] | None = None  # their weights when shared, not in theta

    @property
    def _head(self) -> int:
        """The length of theta's part that encodes the physical unknowns."""
        return len(self.index) if self.mlp is None else self.mlp.size

    @property
    def _own_terms(self) -> int:
        """The unknown terms' weights theta carries (0 when shared or absent)."""
        return self.terms.size if self.terms is not None and self.shared is None else 0

    @property
    def size(self) -> int:
        return self._head + self._own_terms

    @property
    def blocks(self) -> tuple[int, ...]:
        head = (self._head,) if self.mlp is None else self.mlp.blocks
        return tuple(b for b in head + (self._own_terms,) if b)

    def latent(self, theta: Float[Array, " D"], tau: Float[Array, ""]) -> Float[Array, " u"]:
        """The unconstrained unknowns u at `tau`: the physical ones, then the unknown
        terms' weights when theta carries them."""
        head = theta[: self._head]
        if self.mlp is not None:
            head = self.mlp(head, jnp.asarray(tau, theta.dtype)[None])
        return jnp.concatenate([head, theta[self._head :]]) if self._own_terms else head

    def parameters(self, theta: Float[Array, " D"], tau: Float[Array, ""]) -> Float[Array, " P"]:
        """The full free-parameter vector p (ordered as `System.free_parameters`) that
        `theta` encodes at `tau`; parameters outside the dynamics sit at their centre."""
        return self.transform(self.latent(theta, tau))

    def transform(self, u: Float[Array, " u"]) -> Float[Array, " P"]:
        """The full free-parameter vector p for the unconstrained unknowns `u` (with
        unknown terms, followed by their networks' weights)."""
        n = len(self.index)
        z = self.reach * jnp.tanh(u[:n] / self.reach)
        centre, half = jnp.asarray(self.centre, z.dtype), jnp.asarray(self.half, z.dtype)
        value = centre + half * z
        value = jnp.where(jnp.asarray(self.log), jnp.exp(value), value)
        p = jnp.asarray(self.defaults, z.dtype)
        p = p.at[jnp.asarray(self.index, int)].set(value) if n else p
        if self.terms is None:
            return p
        weights = u[n:] if self.shared is None else self.shared
        return jnp.concatenate([p, weights.astype(z.dtype)])

    def state(self, p: Float[Array, " P"], start: Float[Array, ""], t: Float[Array, ""],
              y: Float[Array, " d"]) -> Float[Array, " d"]:
        """The physical state at time `t`, from state `y` at time `start`, under parameters
        `p` (a closed form ignores `start` and `y`; a failed solve gives NaN)."""
        return self.flow.advance(start, t, y, p)

    def __call__(self, theta, tau, x, x0):
        return self.predict(self.parameters(theta, tau), tau, x, x0)

    def predict(self, p: Float[Array, " P"], tau: Float[Array, ""], x: Float[Array, " d"],
                x0: Float[Array, " d"]) -> Float[Array, " d"]:
        """The root's output under parameters `p` (model units): the state at `tau`, from
        the step's input `x` one interval earlier (`previous`; with irregular sampling, at
        the input's own time, `_known.py`) or from `x0`; the class logits for a
        classifier."""
        if self.classes:
            value = p[self.label]
            half = self.half[self.index.index(self.label)]
            return -(((value - jnp.asarray(self.classes, value.dtype)) / half) ** 2)
        shift, scale = jnp.asarray(self.shift, x0.dtype), jnp.asarray(self.scale, x0.dtype)
        d, m = len(self.shift), self.controls  # the states; known channels follow them
        t = self.t0 + tau * self.span
        if self.previous:
            start = self.t0 + x[-2] * self.span if self.timed else t - self.dt
            y = x[:d] * scale + shift
        else:
            start, y = self.t0, x0[:d] * scale + shift
        if m:  # the controls over the gap, in physical units (`compile_system(...).law`)
            u = x[d : d + 2 * m] * jnp.asarray(self.control_scale * 2, x.dtype) + jnp.asarray(
                self.control_shift * 2, x.dtype)
            p = driven(p, start, t, u[:m], u[m:])
        # Compiled expressions may promote (Python floats under x64): keep the model's dtype.
        return (self.state(p, start, t, y).astype(x0.dtype) - shift) / scale


def physics_root(
    system: System,
    *,
    form: str = "mlp",
    shift=0.0,
    scale=1.0,
    width: int = 16,
    depth: int = 2,
    activation: str = "swish",
    reach: float = 3.0,
    previous: bool = False,
    timed: bool = False,
    controls: tuple[Sequence[float], Sequence[float]] | None = None,
    terms: dict | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    max_steps: int = 4096,
    dtype=jnp.float32,
    key: PRNGKeyArray,
) -> tuple[PhysicsRoot, Float[Array, " D"]]:
    """Compile the grey-box root of `system`, and its initial weights.

    **Arguments:**

    - `system`: the declaration (forecasting, or classification by a label that enters
      the dynamics).
    - `form`: `"mlp"` (theta = weights of an MLP of tau giving the unknowns; the paper's
      form) or `"direct"` (theta = the unknowns).
    - `shift`, `scale`: the data normaliser (model units are `(x - shift) / scale`), a
      number or one per state variable.
    - `width`, `depth`, `activation`: the MLP of the `"mlp"` form.
    - `reach`: how many half-widths of its training range a parameter may move from the
      centre.
    - `previous`: start the physics from each step's input, one sampling interval before
      the forecast, instead of from the sequence's first observation (not for a closed
      form).
    - `timed`: the inputs end in the time channels of irregularly sampled data
      (`_known.py`).
    - `controls`: for a system with control inputs, the normaliser's `(shift, scale)` of
      each control (the inputs carry them after the states); the law runs one gap at a
      time (`previous`) with the controls going linearly across it.
    - `terms`: for a law with unknown terms (`wp.Unknown`), their networks' `width`,
      `depth`, and `shared` (True: one set of weights for every trajectory, a leaf of the
      root; False: theta carries them after the physical unknowns, so the recurrence
      adapts each term per trajectory). Default: width 16, depth 2, shared.
    - `rtol`, `atol`, `max_steps`: the Diffrax solve, for systems with neither a linear
      matrix nor a closed form.
    - `dtype`, `key`: the weights' dtype and a JAX PRNG key.

    **Returns:** `(root, theta0)`; `theta0` encodes the centre of every range.
    """
    m = len(system.controls)
    networks, w0 = None, None
    terms = {"width": 16, "depth": 2, "shared": True, **(terms or {})}
    if system.unknowns:
        compiled = None
        networks, w0 = term_networks(system, width=terms["width"], depth=terms["depth"],
                                     activation=activation, shift=shift, scale=scale,
                                     dtype=dtype, key=jax.random.fold_in(key, 7))
        exact = hybrid_flow(system, networks)
    else:
        compiled = compile_system(system)
        exact = compiled.law if m else compiled.flow
    flow = _root_flow(exact, rtol=rtol, atol=atol, max_steps=max_steps)
    if networks is not None and previous:
        # A network inside the field: equal steps over each gap are cheaper than the
        # adaptive solve (its error control, and its step search, differentiated).
        flow = flow.with_options(substeps=HYBRID_SUBSTEPS)
    _check_physics(system, form, previous, flow)
    free = list(system.free_parameters)
    inferred = unknowns(system)
    if not inferred and networks is None:
        raise WarpPhysError(f"system {system.name!r} has no free parameter in its dynamics, "
                            "so a grey-box model has nothing to infer")
    log, mid, half = zip(*(_scale(system.parameters[s]) for s in inferred)) if inferred else (
        (), (), ())
    index = tuple(free.index(s) for s in inferred)
    classes, label = (), None
    if system.label is not None:
        if system.label not in inferred:
            raise WarpPhysError(
                f"the label {system.label.name!r} of {system.name!r} does not enter the dynamics, "
                "so a grey-box model cannot infer it; train model='warp' on it")
        classes = tuple(float(v) for v in system.parameters[system.label].train)
        label = free.index(system.label)
    mlp, theta0 = _weights(form if inferred else "direct", len(inferred), width, depth,
                           activation, dtype, key=key)
    shared = networks is not None and bool(terms["shared"])
    if networks is not None and not shared:
        theta0 = jnp.concatenate([theta0, w0])
    d = len(system.state)
    t0, t1 = system.t_span
    root = PhysicsRoot(
        compiled=compiled, flow=flow, mlp=mlp, index=index, t0=float(t0), terms=networks,
        shared=w0 if shared else None,
        log=log, centre=mid, half=half, reach=float(reach),
        defaults=tuple(float(v) for v in centre(system)),
        span=float(t1 - t0),
        shift=tuple(float(v) for v in np.broadcast_to(np.asarray(shift, float), (d,))),
        scale=tuple(float(v) for v in np.broadcast_to(np.asarray(scale, float), (d,))),
        classes=classes, label=label, previous=previous, dt=float(t1 - t0) / (system.steps - 1),
        timed=timed, controls=m,
        control_shift=_units_of(controls[0], m) if m else (),
        control_scale=_units_of(controls[1], m) if m else (),
    )
    return root, theta0


def _units_of(value, m: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.broadcast_to(np.asarray(value, float), (m,)))


def _check_physics(system: System, form: str, previous: bool, flow: AbstractFlow) -> None:
    """Raise where `system`'s physics cannot serve as a root in this form."""
    if form not in FORMS:
        raise WarpPhysError(f"physics_form must be one of {', '.join(FORMS)}, got {form!r}")
    if not system.task.targets_are_inputs:
        raise WarpPhysError(
            f"system {system.name!r} maps its inputs to different targets ({system.task.name}), "
            "so no physics predicts them; train model='warp' on it")
    if system.controls and not previous:
        raise WarpPhysError(
            f"system {system.name!r} is driven by control inputs, which the physics reads one "
            "gap between samples at a time; set root_previous=True (--root-previous)")
    if previous and not flow.needs_state:
        raise WarpPhysError(
            f"system {system.name!r} is declared by its closed form, which has no starting "
            "state to take from the previous step; set root_previous=False")


def _root_flow(flow: AbstractFlow, *, rtol: float, atol: float, max_steps: int) -> AbstractFlow:
    """The compiled flow with the root's own adaptive solve. Inside training the root is
    solved at every step and differentiated, so an explicit solve takes Tsit5 at the
    caller's tolerances (RMS norm, no step floor), cheaper than the simulator's Dopri8;
    a declared implicit solver (a stiff system) is kept. An exact flow is returned as it
    is."""
    implicit = isinstance(flow, ODEFlow) and flow.implicit
    solver = {} if implicit else {"solver": diffrax.Tsit5()}
    return flow.with_options(**solver, rtol=rtol, atol=atol, max_steps=max_steps,
                             norm=optx.rms_norm, dtmin=None, stiff_solver=None)


def _weights(form, n, width, depth, activation, dtype, *, key) -> tuple[FlatRoot | None, Array]:
    """The `"mlp"` form's network and its weights, or no network and zeros (`"direct"`)."""
    if form == "direct":
        return None, jnp.zeros(n, dtype)
    if activation not in ACTIVATIONS:
        raise WarpPhysError(f"unknown activation {activation!r}")
    network = eqx.nn.MLP(1, n, width, depth, activation=ACTIVATIONS[activation],
                         dtype=dtype, key=key)
    return FlatRoot.from_network(network)


def encode(root: PhysicsRoot, p: Float[Array, " P"]) -> Float[Array, " u"]:
    """The unknowns u for which `root` (direct form) gives the parameters `p`: the inverse
    of its transform (for tests, and to start a model at known parameters)."""
    value = p[jnp.asarray(root.index)]
    value = jnp.where(jnp.asarray(root.log), jnp.log(value), value)
    z = (value - jnp.asarray(root.centre)) / jnp.asarray(root.half)
    return root.reach * jnp.arctanh(z / root.reach)


def inferred_parameters(model, x: np.ndarray, context: int, batch: int = 1024) -> np.ndarray:
    """What a WARP-Phys model infers from each sequence's context: the physical
    parameters (n, P) encoded by theta at the last context step, averaged over the
    forecast window's tau for the `"mlp"` form, or for an `InContext` model those
    parameters refined on the context. `x` is in model units."""
    n = len(model.root.defaults)  # the physical parameters (unknown terms' weights follow)
    if isinstance(model, InContext):
        mask = np.zeros(x.shape[:2], np.float32)
        mask[:, :context] = 1
        return np.concatenate([np.asarray(_identify(model, jnp.asarray(x[i : i + batch]),
                                                    jnp.asarray(mask[i : i + batch]))[1])[:, :n]
                               for i in range(0, len(x), batch)])
    root = model.root
    steps = x.shape[1]
    # The times of the samples forecast after the context: tau_{k+1}, k = context-1..T-2.
    taus = np.asarray(model.next_tau(jnp.asarray(x[:, context - 1 : -1]),
                                     jnp.arange(context - 1, steps - 1)))
    forced = np.ones(x.shape[:2], np.float32)
    out = []
    per_time = jax.vmap(root.parameters, in_axes=(None, 0))
    for i in range(0, len(x), batch):
        states = _states(model, jnp.asarray(x[i : i + batch]), jnp.asarray(forced[i : i + batch]))
        theta = states[context - 1]
        p = jax.vmap(lambda th, tau: per_time(th, tau).mean(0))(theta, taus[i : i + batch])
        out.append(np.asarray(p)[:, :n])
    return np.concatenate(out)


@eqx.filter_jit
def _states(model, x, forced):
    return model.states(x, forced)


@eqx.filter_jit
def _identify(model, x, forced):
    return model.identify(x, forced)


def learned_law(system: System, p) -> list[sp.Eq]:
    """The system's law with the parameters `p` (ordered as `System.free_parameters`)
    substituted: a list of SymPy equations `Derivative(x(t), t) = ...` (or `x(t) = ...`
    for a closed form)."""
    values = {**system.fixed_parameters,
              **{s: float(v) for s, v in zip(system.free_parameters, p)}}
    t = system.time
    of_t = {s: sp.Function(s.name)(t) for s in system.state}
    if system.solution is not None:
        return [sp.Eq(of_t[s], sp.N(e.subs(values), 4))
                for s, e in zip(system.state, system.solution)]
    return [sp.Eq(sp.Derivative(of_t[s], t), sp.N(sp.sympify(e).subs(values).subs(of_t), 4))
            for s, e in zip(system.state, system.equations)]



def identified(root: PhysicsRoot, p) -> np.ndarray:
    """What a trajectory determines about the parameters `p` (n, P, ordered as
    `System.free_parameters`), shape (n, Q): for a linear system the entries of M(p) in
    row-major order (the msd trajectories depend on k/m and c/m, not on m, k and c apart),
    otherwise the unknowns."""
    p = np.asarray(p)
    if not root.flow.identified_names:
        return p[:, list(root.index)]
    return np.asarray(jax.vmap(root.flow.identified)(jnp.asarray(p))).reshape(len(p), -1)


def parameter_report(model, system: System, data: dict, normaliser) -> dict:
    """True against inferred physical parameters on each forecasting test split.

    For a linear system the entries of M(p) that vary are reported too: they are what the
    data identifies (the msd trajectories depend on k/m and c/m, not on m, k and c apart).

    **Returns:** a dict with `names` (the inferred quantities), `values` (split ->
    (true, inferred) arrays of shape (n, Q)), `summary` (split -> quantity -> MAE,
    median relative error and R^2) and `parameters` (split -> every free parameter as
    inferred, (n, P), ordered as `System.free_parameters`); for an `InContext` model,
    `before`: the same report of what the recurrence inferred before refinement.
    """
    root = model.root
    names = [system.free_parameters[i].name for i in root.index]
    values, summary, parameters = {}, {}, {}
    for split, dataset in data.items():
        if not split.startswith("test"):
            continue
        x = normaliser(dataset.inputs).astype(np.float32)
        inferred_all = parameters[split] = inferred_parameters(model, x, dataset.context)
        true = dataset.params[:, list(root.index)]
        inferred = inferred_all[:, list(root.index)]
        extra = []
        if root.flow.identified_names:
            m_true = identified(root, dataset.params)
            varying = np.flatnonzero(np.ptp(m_true, axis=0) > 0)
            extra = [root.flow.identified_names[j] for j in varying]
            true = np.concatenate([true, m_true[:, varying]], axis=1)
            inferred = np.concatenate([inferred, identified(root, inferred_all)[:, varying]], axis=1)
        values[split] = (true, inferred)
        summary[split] = {name: _accuracy(true[:, i], inferred[:, i])
                          for i, name in enumerate(names + extra)}
    report = {"names": names + extra, "values": values, "summary": summary,
              "parameters": parameters}
    if isinstance(model, InContext):
        report["before"] = parameter_report(model.model, system, data, normaliser)
    return report


def _accuracy(true: np.ndarray, inferred: np.ndarray) -> dict:
    """MAE, median relative error and R^2 of one inferred quantity, over the trajectories
    whose true value is known (a measured file may not give every parameter)."""
    known = np.isfinite(true)
    if not known.any():
        return {"mae": None, "median_relative_error": None, "r2": None}
    err = inferred[known] - true[known]
    spread = np.sum((true[known] - true[known].mean()) ** 2)
    return {"mae": float(np.mean(np.abs(err))),
            "median_relative_error": float(np.median(
                np.abs(err) / np.maximum(np.abs(true[known]), 1e-12))),
            "r2": float(1 - np.sum(err**2) / spread) if spread > 0 else None}
