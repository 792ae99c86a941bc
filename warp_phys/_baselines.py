"""Baselines that WARP is compared with: a GRU, an LSTM, a Neural ODE and a Neural CDE.

Every baseline reads its inputs exactly as WARP does (`_feedback.py`: the truth where a
step is forced, its own previous forecast elsewhere) and returns what WARP returns, so
the training loop, the metrics and the analysis take any of them unchanged; mean_k is
the forecast of x_{k+1} from x_in_0 .. x_in_k.

`unroll(x, forced)` returns `(mean, None)` with `mean` of shape (batch, T, out), and
`states(x, forced)` the hidden states, shape (T, batch, H). Each model runs
`feedback_scan` over time with a cell that is vmapped over the batch. The Neural ODE
integrates each sampling interval with `SUBSTEPS` = 2 equal Tsit5 steps, the Neural CDE
with `CDE_SUBSTEPS` = 1.
"""

import abc
from collections.abc import Callable, Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._compile import driven
from ._known import CHANNELS, step_times
from ._feedback import bounded, feedback_scan


# Tsit5 steps per sampling interval: the Neural ODE takes two; the Neural CDE, whose
# field is (1 + d) times wider and whose path is one cubic per interval, takes one
# (on noisy inputs its forecasts agree with eight steps' to 4e-5 of their scale; tested
# to 1e-4), half the cost of two.
SUBSTEPS = 2
CDE_SUBSTEPS = 1


def param_count(model: eqx.Module) -> int:
    """The number of trainable scalars in `model`: the total size of its floating-point
    array leaves (what the optimiser sees)."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    return sum(leaf.size for leaf in leaves)


def _solve(term: diffrax.AbstractTerm, dt: float, y0: Float[Array, " n"], args=None, *,
           steps: int = SUBSTEPS):
    """y(dt) from y(0) = y0 by `steps` equal Tsit5 steps.

    The step count is fixed and tiny, so the steps are taken directly with the solver's
    own `step` (no adaptive loop, nothing to checkpoint): inside the training scan this
    traces and runs several times faster than `diffrax.diffeqsolve` with `DirectAdjoint`.
    Every solve runs on the local time [0, dt]; the CDE only sees dX, and the ODE adds
    the step's start time itself where its vector field needs absolute time.
    """
    solver = diffrax.Tsit5()
    h = jnp.asarray(dt / steps, y0.dtype)
    state = solver.init(term, 0 * h, h, y0, args)
    y = y0
    for i in range(steps):
        y, _, _, state, _ = solver.step(term, i * h, (i + 1) * h, y, args, state, made_jump=False)
    return y


class AbstractBaseline(eqx.Module):
    """A sequence model with WARP's interface: `unroll`, `states` and `size`.

    Subclasses implement `_run(x, forced) -> (mean, states)`; both arrive as JAX arrays,
    `x` cast to the common dtype of the data and the parameters, so that every scan carry
    keeps one dtype.
    """

    data_size: eqx.AbstractVar[int]
    out_size: eqx.AbstractVar[int]
    steps: eqx.AbstractVar[int]
    bound: eqx.AbstractVar[float | None]

    @abc.abstractmethod
    def _run(self, x: Float[Array, "b T d"], forced: Float[Array, "b T"]
             ) -> tuple[Float[Array, "b T out"], Float[Array, "T b H"]]:
        """The forecasts and the hidden states over a batch."""

    @property
    def size(self) -> int:
        """The number of trainable scalars (see `param_count`)."""
        return param_count(self)

    def _cast(self, x):
        leaves = jax.tree_util.tree_leaves(eqx.filter(self, eqx.is_inexact_array))
        return jnp.asarray(x, jnp.result_type(x, *leaves))

    def unroll(self, x: Float[Array, "b T d"], forced: Float[Array, "b T"], *,
               fast_vjp: bool = True):
        """Run the model over a batch.

        **Arguments:**

        - `x`: the true inputs, shape (batch, T, d).
        - `forced`: 1 where step k reads the true `x[:, k]`, 0 where it reads the model's
          own forecast of it (step 0 always reads the truth).
        - `fast_vjp`: accepted for WARP's interface and ignored (no linear recurrence
          here).

        **Returns:** `(mean, None)`, `mean` of shape (batch, T, out); `mean[:, k]`
        forecasts `x[:, k + 1]` (or holds class logits, read at the last step).
        """
        del fast_vjp
        return self._run(self._cast(x), jnp.asarray(forced))[0], None

    def states(self, x: Float[Array, "b T d"], forced: Float[Array, "b T"]) -> Float[Array, "T b H"]:
        """The hidden states after each step, shape (T, batch, H)."""
        return self._run(self._cast(x), jnp.asarray(forced))[1]


def _check_steps(steps: int, dt: float | None = None) -> None:
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (tau_k = k / (steps - 1)), got {steps}")
    if dt is not None and not dt > 0:
        raise ValueError(f"dt must be positive, got {dt}")


# ------------------------------------------------------------------------------ GRU, LSTM


class RNN(AbstractBaseline):
    """A gated recurrent network. Build it with `warp_phys.make_gru` or
    `warp_phys.make_lstm`.

        h_k    = cell([x_in_k, tau_k], h_{k-1})          (h_{-1} = 0)
        mean_k = W h_k + b

    with tau_k = k / (T - 1) the normalised time WARP's root network reads. For the LSTM
    the cell's state is the pair (h_k, c_k) and only h_k is read out.

    ??? cite "References"
        Cho et al., *Learning phrase representations using RNN encoder-decoder for
        statistical machine translation*, EMNLP 2014 (arXiv:1406.1078).

        Hochreiter and Schmidhuber, *Long short-term memory*, Neural Computation 9(8),
        1997.
    """

    cell: eqx.nn.GRUCell | eqx.nn.LSTMCell
    readout: eqx.nn.Linear
    data_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    bound: float | None = eqx.field(static=True, default=None)
    timed: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        _check_steps(self.steps)

    def _step(self, state, x_in, k):
        if self.timed:  # the input holds tau_k and tau_{k+1} (`_known.py`)
            features = x_in
        else:
            tau = jnp.asarray(k / (self.steps - 1), x_in.dtype)
            features = jnp.concatenate([x_in, tau[None]])
        state = self.cell(features, state)
        h = state[0] if isinstance(self.cell, eqx.nn.LSTMCell) else state
        return state, h, self.readout(h)

    def _run(self, x, forced):
        batch, steps, _ = x.shape
        zeros = jnp.zeros((batch, self.cell.hidden_size), x.dtype)
        state = (zeros, zeros) if isinstance(self.cell, eqx.nn.LSTMCell) else zeros
        cell = jax.vmap(self._step, in_axes=(0, 0, None))
        forecast = jnp.zeros((batch, self.out_size), x.dtype)  # never read: step 0 is forced
        _, hs, means = feedback_scan(cell, state, x, forced.at[:, 0].set(1), forecast,
                                  bound=self.bound)
        return means.swapaxes(0, 1), hs


def _make_rnn(cell_type, data_size, out_size, steps, hidden, bound, timed, controls, dtype,
              key) -> RNN:
    cell_key, readout_key = jr.split(key)
    size = data_size + 2 * controls + (CHANNELS if timed else 1)
    return RNN(
        cell=cell_type(size, hidden, dtype=dtype, key=cell_key),
        readout=eqx.nn.Linear(hidden, out_size, dtype=dtype, key=readout_key),
        data_size=data_size,
        out_size=out_size,
        steps=steps,
        bound=bound,
        timed=timed,
    )


def make_gru(data_size: int, out_size: int, steps: int, *, hidden: int,
             bound: float | None = None, timed: bool = False, controls: int = 0,
             dtype=jnp.float32, key: PRNGKeyArray) -> RNN:
    """Build a GRU baseline (see `RNN`).

    **Arguments:**

    - `data_size`: d, the input dimension.
    - `out_size`: the output dimension (d for forecasting, the class count for
      classification).
    - `steps`: the training sequence length T (sets tau_k = k / (T - 1)).
    - `hidden`: the size of the hidden state h.
    - `bound`: clip every forecast to [-bound, bound] before it is fed back or scored
      (None: no clip); `--final clip --clip-bound B` sets it for every baseline.
    - `timed`: the inputs end in the time channels of irregularly sampled data
      (`_known.py`); the cell reads them in place of the uniform tau_k.
    - `controls`: m, control inputs after the states (now and next sample), read as they are.
    - `dtype`: the parameters' dtype.
    - `key`: a JAX PRNG key.
    """
    return _make_rnn(eqx.nn.GRUCell, data_size, out_size, steps, hidden, bound, timed, controls,
                     dtype, key)


def make_lstm(data_size: int, out_size: int, steps: int, *, hidden: int,
              bound: float | None = None, timed: bool = False, controls: int = 0,
              dtype=jnp.float32, key: PRNGKeyArray) -> RNN:
    """Build an LSTM baseline (see `RNN`); the arguments are those of `make_gru`, with
    `hidden` the size of each of h and the cell state c."""
    return _make_rnn(eqx.nn.LSTMCell, data_size, out_size, steps, hidden, bound, timed, controls,
                     dtype, key)


# ------------------------------------------------------------------------------ Neural ODE


class NeuralODE(AbstractBaseline):
    """A Neural ODE forecaster, optionally with known physics. Build it with
    `warp_phys.make_node`.

        c_k     = GRU(x_in_k, c_{k-1})                              (c_{-1} = 0)
        dy/dt   = f_phi(y, c_k) + F(t, y * s + m, p) / s,   y(t_k) = x_in_k
        mean_k  = y(t_k + dt)

    The code c_k summarises the inputs up to step k (so the forecast stays causal) and
    lets the vector field adapt to the trajectory at hand. F is the declared vector
    field in physical units, m and s the normaliser's shift and scale, and p a trainable
    parameter vector (kept as log p when it starts positive). The known-physics term is
    absent without a vector field. t_k = t_0 + k dt with dt the sampling interval;
    with irregular sampling t_k is the sample's own time and dt its gap to the next. For
    classification `mean_k = W [y(t_k + dt), c_k] + b` holds the logits instead, while
    unforced steps still read the forecast y.

    ??? cite "References"
        Chen, Rubanova, Bettencourt and Duvenaud, *Neural ordinary differential
        equations*, NeurIPS 2018 (arXiv:1806.07366).

        Yin et al., *Augmenting physical models with deep networks for complex dynamics
        forecasting*, ICLR 2021 (arXiv:2010.04456).
    """

    encoder: eqx.nn.GRUCell
    field: eqx.nn.MLP
    classifier: eqx.nn.Linear | None
    physics: Float[Array, " P"] | None
    vector_field: Callable | None = eqx.field(static=True)
    positive: bool = eqx.field(static=True)
    shift: tuple[float, ...] = eqx.field(static=True)
    scale: tuple[float, ...] = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    t0: float = eqx.field(static=True)
    data_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    bound: float | None = eqx.field(static=True, default=None)
    timed: bool = eqx.field(static=True, default=False)
    controls: int = eqx.field(static=True, default=0)
    control_shift: tuple[float, ...] = eqx.field(static=True, default=())
    control_scale: tuple[float, ...] = eqx.field(static=True, default=())
    terms: Float[Array, " W"] | None = None  # the weights of the law's unknown terms

    def __check_init__(self):
        _check_steps(self.steps, self.dt)
        for name in ("shift", "scale"):
            value = getattr(self, name)
            if len(value) != self.data_size:
                raise ValueError(f"{name} must have one entry per feature ({self.data_size}), "
                                 f"got {len(value)}")
        if any(s == 0 for s in self.scale):
            raise ValueError(f"scale must have no zero entry, got {self.scale}")
        if (self.vector_field is None) != (self.physics is None):
            raise ValueError("vector_field and its parameters must be given together")

    @property
    def parameters(self) -> Float[Array, " P"] | None:
        """The physical parameters p of the known-physics term (None without one)."""
        if self.physics is None:
            return None
        return jnp.exp(self.physics) if self.positive else self.physics

    def rhs(self, s, y: Float[Array, " d"], args) -> Float[Array, " d"]:
        """dy/dt at time t_k + s, in normalised units; `args = (c_k, t_k, drive)`, `drive`
        the controls at both ends of the step in physical units (None without controls)."""
        code, t, drive = args
        dy = self.field(jnp.concatenate([y, code]))
        if self.vector_field is not None:
            shift = jnp.asarray(self.shift, y.dtype)
            scale = jnp.asarray(self.scale, y.dtype)
            p = self.parameters if drive is None else driven(self.parameters, *drive)
            p = p if self.terms is None else jnp.concatenate([p, self.terms.astype(p.dtype)])
            dy = dy + self.vector_field(t + s, y * scale + shift, p) / scale
        return dy

    def forecast(self, y: Float[Array, " d"], code: Float[Array, " c"],
                 t: Float[Array, ""], gap=None, controls=None) -> Float[Array, " d"]:
        """y(t + gap), the solution started from y at time t with code c (gap: dt), the
        controls (model units, now and next) going linearly over the step."""
        gap = self.dt if gap is None else gap
        drive = None
        if self.controls:
            m = self.controls
            u = controls * jnp.asarray(self.control_scale * 2, y.dtype) + jnp.asarray(
                self.control_shift * 2, y.dtype)
            drive = (t, t + gap, u[:m], u[m:])
        return _solve(diffrax.ODETerm(self.rhs), gap, y, args=(code, t, drive))

    def _step(self, code, x_in, k):
        code = self.encoder(x_in, code)
        d, m = self.data_size, self.controls
        controls = x_in[d : d + 2 * m]
        if self.timed:  # from this sample's own time over the real gap to the next
            tau, tau_next = step_times(x_in, k, self.steps, True)
            span = self.dt * (self.steps - 1)
            y = self.forecast(x_in[:d], code, self.t0 + tau * span, (tau_next - tau) * span,
                              controls)
        else:
            y = self.forecast(x_in[:d], code, jnp.asarray(self.t0 + k * self.dt, x_in.dtype),
                              controls=controls)
        mean = y if self.classifier is None else self.classifier(jnp.concatenate([y, code]))
        return code, code, mean

    def _run(self, x, forced):
        batch, _, _ = x.shape
        cell = jax.vmap(self._step, in_axes=(0, 0, None))
        code = jnp.zeros((batch, self.encoder.hidden_size), x.dtype)
        forecast = jnp.zeros((batch, self.out_size), x.dtype)  # never read: step 0 is forced
        _, codes, means = feedback_scan(cell, code, x, forced.at[:, 0].set(1), forecast,
                                     bound=self.bound)
        return means.swapaxes(0, 1), codes


def _per_feature(name: str, value, size: int) -> tuple[float, ...]:
    values = np.asarray(value, dtype=float)
    if values.ndim == 0:
        values = np.full(size, values)
    if values.shape != (size,):
        raise ValueError(f"{name} must be a number or one number per feature ({size}), "
                         f"got {value!r}")
    return tuple(float(v) for v in values)


def _node_field(data_size, code, hidden, depth, vector_field, p0, dtype, key):
    """The Neural ODE's MLP field, and with a known-physics term its parameters (started at
    `p0`, the field at zero): `(field, physics or None, positive)`."""
    if (vector_field is None) != (p0 is None):
        raise ValueError("vector_field and p0 must be given together, got "
                         f"vector_field={vector_field!r} and p0={p0!r}")
    field = eqx.nn.MLP(data_size + code, data_size, hidden, depth, activation=jax.nn.softplus,
                       dtype=dtype, key=key)
    if vector_field is None:
        return field, None, False
    return _start_at_physics(field, p0, dtype)


def _start_at_physics(field: eqx.nn.MLP, p0, dtype):
    """The field with a zero last layer (the model starts as the declared physics), and
    the physical parameters as trained: their logarithms where all are positive."""
    p0 = np.asarray(p0, dtype=float)
    positive = bool(np.all(p0 > 0))
    physics = jnp.asarray(np.log(p0) if positive else p0, dtype=dtype)
    last = field.layers[-1]
    field = eqx.tree_at(lambda f: (f.layers[-1].weight, f.layers[-1].bias), field,
                        (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)))
    return field, physics, positive


def make_node(
    data_size: int,
    out_size: int,
    steps: int,
    *,
    dt: float,
    hidden: int,
    depth: int,
    code: int,
    vector_field: Callable | None = None,
    p0: Sequence[float] | None = None,
    shift: float | Sequence[float] = 0.0,
    scale: float | Sequence[float] = 1.0,
    t0: float = 0.0,
    classify: bool = False,
    bound: float | None = None,
    timed: bool = False,
    controls: int = 0,
    control_shift: Sequence[float] = (),
    control_scale: Sequence[float] = (),
    terms: Float[Array, " W"] | None = None,
    dtype=jnp.float32,
    key: PRNGKeyArray,
) -> NeuralODE:
    """Build a Neural ODE baseline (see `NeuralODE`).

    **Arguments:**

    - `data_size`: d, the input dimension.
    - `out_size`: the output dimension: d, or the class count with `classify`.
    - `steps`: the training sequence length T.
    - `dt`: the sampling interval in physical time (each forecast integrates over dt).
    - `hidden`, `depth`: width and depth of the MLP f_phi.
    - `code`: the size of the GRU code c_k.
    - `vector_field`: the known physics, `(t, y, p) -> dy/dt` in physical units, e.g.
      `warp_phys.compile_system(system).vector_field`; omit for a pure Neural ODE.
    - `p0`: the initial physical parameters p (required with `vector_field`).
    - `shift`, `scale`: the normaliser, y_phys = y * scale + shift, one number per
      feature or one for all.
    - `t0`: the physical time of step 0 (for a time-dependent vector field).
    - `classify`: add a linear classifier of (y, c_k) and return logits.
    - `bound`: clip every forecast to [-bound, bound] before it is fed back or scored.
    - `timed`: the inputs end in the time channels of irregularly sampled data
      (`_known.py`): the code reads them, and each forecast integrates over the real gap.
    - `controls`: m, control inputs after the states (now and next sample): the code reads
      them, and the known-physics term (then `compile_system(system).law`'s vector field)
      gets them in physical units, `control_shift` and `control_scale` the normaliser's.
    - `terms`: for a law with unknown terms, the initial weights of their networks
      (`warp_phys._unknown.term_networks`): `vector_field` then takes p followed by them
      (`hybrid_flow`), and they train with the rest (a universal differential equation).
    - `dtype`, `key`: the parameters' dtype and a JAX PRNG key.

    With physics, the last layer of f_phi starts at zero, so the untrained model is
    exactly the declared physics at `p0`.

    **Example:**

    ```python
    field = warp_phys.compile_system(warp_phys.load_system("msd")).vector_field
    model = warp_phys.make_node(2, 2, 256, dt=1 / 255, hidden=32, depth=2, code=16,
                                vector_field=field, p0=[0.03, 10.0, 0.1], key=jr.PRNGKey(0))
    ```
    """
    if not classify and out_size != data_size:
        raise ValueError(f"out_size must equal data_size ({data_size}) for a forecasting "
                         f"Neural ODE, got {out_size}; pass classify=True for class logits")
    encoder_key, field_key, classifier_key = jr.split(key, 3)
    field, physics, positive = _node_field(data_size, code, hidden, depth, vector_field, p0,
                                           dtype, field_key)
    classifier = (eqx.nn.Linear(data_size + code, out_size, dtype=dtype, key=classifier_key)
                  if classify else None)
    return NeuralODE(
        encoder=eqx.nn.GRUCell(data_size + 2 * controls + (CHANNELS if timed else 0), code,
                               dtype=dtype, key=encoder_key),
        field=field,
        classifier=classifier,
        physics=physics,
        vector_field=vector_field,
        positive=positive,
        shift=_per_feature("shift", shift, data_size),
        scale=_per_feature("scale", scale, data_size),
        dt=float(dt),
        t0=float(t0),
        data_size=data_size,
        out_size=out_size,
        steps=steps,
        bound=bound,
        timed=timed,
        controls=controls,
        control_shift=_per_feature("control_shift", control_shift, controls),
        control_scale=_per_feature("control_scale", control_scale, controls),
        terms=None if terms is None else jnp.asarray(terms, dtype),
    )


# ------------------------------------------------------------------------------ Neural CDE


def _hermite(t0, t1, y0, y1, slope0, slope1) -> diffrax.CubicInterpolation:
    """The cubic on [t0, t1] with values y0, y1 and slopes slope0, slope1 at its ends.

    Diffrax writes a piece as a + b s + c s^2 + d s^3 with s = t - t0; matching the four
    end conditions, with h = t1 - t0 and secant q = (y1 - y0) / h, gives
    a = y0, b = slope0, c = (3 q - 2 slope0 - slope1) / h, d = (slope0 + slope1 - 2 q) / h^2.
    """
    h = t1 - t0
    secant = (y1 - y0) / h
    a, b = y0, slope0
    c = (3 * secant - 2 * slope0 - slope1) / h
    d = (slope0 + slope1 - 2 * secant) / h**2
    return diffrax.CubicInterpolation(jnp.stack([t0, t1]), (d[None], c[None], b[None], a[None]))


class NeuralCDE(AbstractBaseline):
    """A Neural CDE over a causally interpolated control path. Build it with
    `warp_phys.make_ncde`.

        X(t)   = (t, x(t), u(t))                           (time, data and control channels)
        z_0    = W_0 X(t_0) + b_0
        dz     = f_phi(z) dX(t)                            (f_phi: hidden -> hidden x (1 + d + m))
        mean_k = W z(t_k) + b

    with t_k = k dt, or each sample's own time with irregular sampling (`_known.py`; the
    readout then also reads the gap to the sample it forecasts, and with controls their
    values there). On [t_{k-1}, t_k] the path is the cubic Hermite segment through
    x_in_{k-1} and x_in_k with the backward-difference slopes (x_in_{k-1} - x_in_{k-2}) / dt
    at its left end and (x_in_k - x_in_{k-1}) / dt at its right end (the first segment is
    a straight line). Building it needs nothing after x_in_k, so z(t_k), and the forecast
    mean_k, see only the inputs up to step k; the path is continuously differentiable.

    ??? cite "References"
        Kidger, Morrill, Foster and Lyons, *Neural controlled differential equations for
        irregular time series*, NeurIPS 2020 (arXiv:2005.08926).

        Morrill, Kidger, Yang and Lyons, *Neural controlled differential equations for
        online prediction tasks*, arXiv:2106.11028, 2021.
    """

    initial: eqx.nn.Linear
    field: eqx.nn.MLP
    readout: eqx.nn.Linear
    dt: float = eqx.field(static=True)
    data_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    bound: float | None = eqx.field(static=True, default=None)
    timed: bool = eqx.field(static=True, default=False)
    controls: int = eqx.field(static=True, default=0)

    @property
    def path_size(self) -> int:
        """The data channels of the path after time: the states, then the controls."""
        return self.data_size + self.controls

    def __check_init__(self):
        _check_steps(self.steps, self.dt)

    def control(self, t_prev: Float[Array, ""], x_prev: Float[Array, " d"], x: Float[Array, " d"],
                slope_prev: Float[Array, " d"], h=None) -> diffrax.CubicInterpolation:
        """The path X = (t, x) on [t_prev, t_prev + h]: the cubic from x_prev to x with
        slope `slope_prev` at the left end and (x - x_prev) / h at the right end; h is the
        time between the samples (dt unless given: irregular sampling).

        The interpolation is over the local time s = t - t_prev in [0, h], so
        `X(t_prev + s) = control(...).evaluate(s)`; the CDE sees only dX, which a shift of
        time leaves unchanged.
        """
        h = self.dt if h is None else h
        one = jnp.ones((1,), x.dtype)
        zero = jnp.zeros((), x.dtype)
        return _hermite(zero, zero + h, jnp.concatenate([t_prev[None], x_prev]),
                        jnp.concatenate([t_prev[None] + h, x]),
                        jnp.concatenate([one, slope_prev]),
                        jnp.concatenate([one, (x - x_prev) / h]))

    def vector_field(self, t, z: Float[Array, " h"], args) -> Float[Array, "h c"]:
        """f_phi(z), the matrix that multiplies dX."""
        return self.field(z).reshape(z.shape[0], 1 + self.path_size)

    def _out(self, z, x_in):
        """The forecast from z(t_k); the readout also reads the controls at the sample it
        forecasts and, with irregular sampling, the gap to it in grid steps (1 on a
        uniform grid): the path itself ends at t_k."""
        d, m = self.data_size, self.controls
        parts = [z, x_in[d + m : d + 2 * m]]
        if self.timed:
            tau, tau_next = step_times(x_in, 0, self.steps, True)
            parts.append(((tau_next - tau) * (self.steps - 1))[None])
        return self.readout(jnp.concatenate(parts))

    def _step(self, z, t_prev, h, x_prev, x_in, slope_prev):
        x = x_in[: self.path_size]
        path = self.control(t_prev, x_prev, x, slope_prev, h)
        term = diffrax.ControlTerm(self.vector_field, path).to_ode()
        z = _solve(term, h, z, steps=CDE_SUBSTEPS)
        return z, self._out(z, x_in)

    def _gap(self, x_in, k, tau_prev):
        """The time from the previous sample to this one, and this one's tau."""
        if not self.timed:
            return jnp.full(x_in.shape[:1], self.dt, x_in.dtype), tau_prev
        tau = x_in[:, -2]
        return (tau - tau_prev) * (self.dt * (self.steps - 1)), tau

    def _run(self, x, forced):
        d = self.path_size
        cell = jax.vmap(self._step)
        t = jnp.zeros((x.shape[0], 1), x.dtype)
        z = jax.vmap(self.initial)(jnp.concatenate([t, x[:, 0, :d]], axis=1))
        mean = bounded(jax.vmap(self._out)(z, x[:, 0]), self.bound)

        def step(carry, x_in, k):
            z, x_prev, slope, tau_prev = carry
            h, tau = self._gap(x_in, k, tau_prev)
            secant = (x_in[:, :d] - x_prev) / h[:, None]
            slope = jnp.where(k == 1, secant, slope)
            t_prev = jnp.broadcast_to(jnp.asarray((k - 1) * self.dt, x.dtype), h.shape)
            z, mean = cell(z, t_prev, h, x_prev, x_in, slope)
            return (z, x_in[:, :d], secant, tau), z, mean

        tau0 = x[:, 0, -2] if self.timed else jnp.zeros(x.shape[:1], x.dtype)
        carry = (z, x[:, 0, :d], jnp.zeros_like(x[:, 0, :d]), tau0)
        _, zs, means = feedback_scan(step, carry, x, forced, mean, start=1, bound=self.bound)
        zs = jnp.concatenate([z[None], zs])
        means = jnp.concatenate([mean[None], means]).swapaxes(0, 1)
        return means, zs


def make_ncde(data_size: int, out_size: int, steps: int, *, dt: float, hidden: int, depth: int,
              bound: float | None = None, timed: bool = False, controls: int = 0,
              dtype=jnp.float32, key: PRNGKeyArray) -> NeuralCDE:
    """Build a Neural CDE baseline (see `NeuralCDE`).

    **Arguments:**

    - `data_size`: d, the input dimension.
    - `out_size`: the output dimension (d for forecasting, the class count for
      classification).
    - `steps`: the training sequence length T.
    - `dt`: the sampling interval (the time channel's step).
    - `hidden`: the size of the state z and the width of f_phi.
    - `depth`: the number of hidden layers of f_phi.
    - `bound`: clip every forecast to [-bound, bound] before it is fed back or scored.
    - `timed`: the inputs end in the time channels of irregularly sampled data
      (`_known.py`): the path runs on the real times, and the readout reads the gap.
    - `controls`: m, control inputs after the states: channels of the path.
    - `dtype`: the parameters' dtype.
    - `key`: a JAX PRNG key.
    """
    initial_key, field_key, readout_key = jr.split(key, 3)
    channels = 1 + data_size + controls
    return NeuralCDE(
        initial=eqx.nn.Linear(channels, hidden, dtype=dtype, key=initial_key),
        field=eqx.nn.MLP(hidden, hidden * channels, hidden, depth, activation=jax.nn.softplus,
                         final_activation=jnp.tanh, dtype=dtype, key=field_key),
        readout=eqx.nn.Linear(hidden + controls + (1 if timed else 0), out_size, dtype=dtype,
                              key=readout_key),
        dt=float(dt),
        data_size=data_size,
        out_size=out_size,
        steps=steps,
        bound=bound,
        timed=timed,
        controls=controls,
    )
