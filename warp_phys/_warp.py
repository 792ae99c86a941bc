"""WARP: a linear RNN whose hidden state is the weight vector of a root network.

    theta_0 = phi(x_0)                                  (hypernetwork, or learned directly)
    theta_k = A theta_{k-1} + B (x_k - x_{k-1})         (A starts at I, B at 0)
    y_k     = final(f_{theta_k}(tau_{k+1}))             (root network at normalised time)

The output at step k is the forecast of x_{k+1} from the inputs x_0..x_k, so no step is
scored on a value the model was fed. Inputs come from the data where a step is forced
(always inside the context, with the teacher-forcing probability after it during
training) and from the model's own previous forecast elsewhere: at inference the model
runs fully autoregressively after the context.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ._feedback import feedback_scan
from ._recurrence import (
    PRECISIONS, TRANSITIONS, AbstractTransition, BlockDiagonal, DiagonalLowRank,
    convolution_blocks, linear_unroll, powers, transition,
)
from ._known import CHANNELS, step_times
from ._root import (
    ACTIVATIONS, FINALS, AbstractFinal, AbstractRoot, DynamicTanh, NoFinal, SymmetricClip, mlp_root,
)


MIN_HYPER_WIDTH = 32


class Hypernetwork(eqx.Module):
    """theta_0 = phi(x_0): an MLP whose hidden widths grow linearly from d to D (the paper's
    MSD hypernetwork is 2 -> 1633 -> 3265 -> 4898), and are never narrower than
    `MIN_HYPER_WIDTH` (a grey-box theta of a few numbers still gets a real network)."""

    layers: tuple[eqx.nn.Linear, ...]
    activation: str = eqx.field(static=True)

    def __init__(self, in_size: int, out_size: int, *, hidden: int, activation: str,
                 dtype=jnp.float32, key: PRNGKeyArray):
        widths = [in_size] + [max(round(out_size * (i + 1) / (hidden + 1)), MIN_HYPER_WIDTH)
                              for i in range(hidden)]
        widths.append(out_size)
        keys = jr.split(key, len(widths) - 1)
        self.layers = tuple(
            eqx.nn.Linear(a, b, dtype=dtype, key=k) for a, b, k in zip(widths, widths[1:], keys)
        )
        self.activation = activation

    def __call__(self, x0: Float[Array, " d"]) -> Float[Array, " D"]:
        for layer in self.layers[:-1]:
            x0 = ACTIVATIONS[self.activation](layer(x0))
        return self.layers[-1](x0)


class LearnedInit(eqx.Module):
    """theta_0 learned directly (the paper's choice for fixed initial states), started at
    the root network's own initialisation."""

    theta0: Float[Array, " D"]

    def __call__(self, x0: Float[Array, " d"]) -> Float[Array, " D"]:
        return self.theta0


class WARP(eqx.Module):
    """Weight-space Adaptive Recurrent Prediction. Build it with `warp_phys.make_warp`.

    ??? cite "Reference"
        Nzoyem, Barton and Deakin, *Weight-space linear recurrent neural networks*,
        ICLR 2026 (arXiv:2506.01153).
    """

    A: Float[Array, "D D"] | AbstractTransition
    B: Float[Array, "D d"]
    init: Hypernetwork | LearnedInit
    final: AbstractFinal
    root: AbstractRoot
    data_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    uncertainty: bool = eqx.field(static=True)
    sigma_min: float = eqx.field(static=True)
    theta_clip: float = eqx.field(static=True)
    precision: str = eqx.field(static=True, default="float32")
    timed: bool = eqx.field(static=True, default=False)

    @property
    def size(self) -> int:
        """D_theta, the length of the hidden state."""
        return self.root.size

    def readout(self, pieces, tau, x, x0):
        """Mean (and sigma, or None) of the forecast made by the root with weights theta,
        given as its `pieces` (`root.split(theta)`), at normalised time `tau`, given the
        step's input `x` and the first input `x0`."""
        out = self.root.evaluate(pieces, jnp.asarray(tau, x.dtype), x, x0)
        if not self.uncertainty:
            return self.final(out), None
        mean, s = out[: self.out_size], out[self.out_size :]
        return self.final(mean), jnp.maximum(jax.nn.softplus(s), self.sigma_min)

    def tau(self, k):
        """Normalised time of step k: tau_k = k / (T - 1) for the training length T."""
        return k / (self.steps - 1)

    def next_tau(self, x: Float[Array, "... d"], k):
        """The normalised time of the sample that step k forecasts, tau_{k+1}: read from
        the input's time channel when the data are irregularly sampled (`_known.py`), else
        the uniform grid's, broadcast over the leading axes of `x`."""
        return jnp.broadcast_to(step_times(x, k, self.steps, self.timed)[1], x.shape[:-1])

    def unroll(self, x: Float[Array, "b T d"], forced: Float[Array, "b T"], *,
               fast_vjp: bool = True):
        """Run the recurrence over a batch.

        **Arguments:**

        - `x`: the true inputs, shape (batch, T, d).
        - `forced`: 1 where step k reads the true `x[:, k]`, 0 where it reads the model's
          own forecast of it (step 0 always reads the truth).
        - `fast_vjp`: differentiate A by one matrix product (see `_recurrence.py`).

        **Returns:** `(mean, sigma)`, each (batch, T, out); `mean[:, k]` forecasts
        `x[:, k + 1]`. `sigma` is None without an uncertainty head.
        """
        A = self.A
        rest = eqx.tree_at(lambda m: m.A, self, replace=None)
        params, static = eqx.partition(rest, eqx.is_array)
        run = jax.tree_util.Partial(_run, static)
        return linear_unroll(run, A, params, (x, forced), fast_vjp=fast_vjp)

    def transition_matrix(self) -> Float[Array, "D D"]:
        """A as a D x D array, whatever its structure."""
        return self.A.dense() if isinstance(self.A, AbstractTransition) else self.A

    @property
    def shares_theta0(self) -> bool:
        """Whether every sequence starts from the same theta_0 (learned, not phi(x_0))."""
        return isinstance(self.init, LearnedInit)

    def convolve(self, x: Float[Array, "b T d"], *, fast_vjp: bool = True):
        """The non-autoregressive unroll (every input read from `x`) in convolutional mode,
        equal to `unroll(x, ones)` up to rounding:

            theta_k = A^k theta_0 + sum_{j=1..k} (A^(k-j) B) (x_j - x_{j-1})

        The kernel A^j B is one chain of T matrix-vector products with A whatever the
        batch size, and the sum a causal convolution over time (blocked matrix products).
        With a shared theta_0 (`init="learned"`) the free term A^k theta_0 joins the same
        chain, so nothing costs batch x T x D^2; with a hypernetwork each sequence's
        theta_0 differs and A^k theta_0 needs the batched recurrence (`powers` over the
        batch). Not available with `theta_clip`, which makes the recurrence nonlinear.

        **Returns:** `(mean, sigma)` as `unroll`.
        """
        if self.theta_clip:
            raise ValueError("the convolutional mode needs a linear recurrence; theta_clip "
                             "clips theta after each update")
        steps = x.shape[1]
        theta0 = jax.vmap(self.init)(x[:, 0])
        dx = jnp.concatenate([jnp.zeros_like(x[:, :1]), jnp.diff(x, axis=1)], axis=1)
        if self.shares_theta0:
            chain = powers(self.A, jnp.concatenate([self.B.T, theta0[:1]]), steps,
                           fast_vjp=fast_vjp, precision=self.precision)
            inputs = self.B.shape[1]
            kernel, free = chain[:, :inputs], chain[:, inputs]  # (T, D)
        else:
            kernel = powers(self.A, self.B.T, steps, fast_vjp=fast_vjp, precision=self.precision)
            free = powers(self.A, theta0, steps, fast_vjp=fast_vjp,
                          precision=self.precision).swapaxes(0, 1)  # (b, T, D)
        # Theta is made block by block of steps and piece by piece of the root's weights
        # (see `AbstractRoot.pieces`), each piece read out as it comes: the (b, T, D)
        # trajectory is never assembled, nor cut into the root's leaves (on a CPU that
        # concatenation and split cost 0.8 s of a 3.9 s batch-256 step; docs/performance.md).
        # A shared A^k theta_0 enters the convolution's own products (`shared`).
        free = self.root.split(free)
        shared = free if self.shares_theta0 else None
        taus = self.next_tau(x, jnp.arange(steps)).astype(x.dtype)  # (b, T)
        per_step = jax.vmap(self.readout, in_axes=(0, 0, 0, None))
        readout = jax.vmap(per_step, in_axes=(0, 0, 0, 0))
        outputs = []
        for start, stop, thetas in convolution_blocks(dx, self.root.split(kernel), shared=shared,
                                                      precision=self.precision):
            if shared is None:
                thetas = tuple(piece[:, start:stop] + part for piece, part in zip(free, thetas))
            outputs.append(readout(thetas, taus[:, start:stop], x[:, start:stop], x[:, 0]))
        return jax.tree.map(lambda *blocks: jnp.concatenate(blocks, axis=1), *outputs)

    def states(self, x: Float[Array, "b T d"], forced: Float[Array, "b T"]) -> Float[Array, "T b D"]:
        """The weight trajectories theta_k, shape (T, batch, D)."""
        rest = eqx.tree_at(lambda m: m.A, self, replace=None)
        params, static = eqx.partition(rest, eqx.is_array)
        _, inputs, last = _recur(static, self.A, params, (x, forced), None)
        return jnp.concatenate([inputs, last[None]])


def _recur(static, A, params, args, taps):
    """The WARP recurrence over a batch; A enters only as `theta @ A.T`, at the model's
    precision (see `transition`), and `taps[k - 1]` (when given) is added to the product
    that makes theta_k (see `linear_unroll`).

    **Returns:** `((means, sigmas), inputs, last)`: the forecasts, `inputs[k]` = theta_k
    for k < T - 1 (the product that makes theta_{k+1} multiplies it) and theta_{T-1}.
    """
    model = eqx.combine(params, static)
    x, forced = args
    theta0 = jax.vmap(model.init)(x[:, 0])
    x0 = x[:, 0]

    def readout(theta, tau, x, x0):
        pieces = model.root.split(theta)
        return jax.vmap(model.readout)(pieces, tau, x, x0)

    def clip(theta):
        return jnp.clip(theta, -model.theta_clip, model.theta_clip) if model.theta_clip else theta

    theta0 = clip(theta0)
    mean0, sigma0 = readout(theta0, model.next_tau(x0, 0), x0, x0)

    apply_A = transition(A, model.precision)

    def step(carry, x_in, k):
        previous, x_prev = carry
        theta = apply_A(previous)
        theta = theta if taps is None else theta + taps[k - 1]
        theta = clip(theta + (x_in - x_prev) @ model.B.T)
        mean, sigma = readout(theta, model.next_tau(x_in, k), x_in, x0)
        return (theta, x_in), (previous, sigma), mean

    (last, _), (inputs, sigmas), means = feedback_scan(step, (theta0, x0), x, forced, mean0,
                                                       start=1)
    means = jnp.concatenate([mean0[None], means]).swapaxes(0, 1)
    if sigma0 is not None:
        sigmas = jnp.concatenate([sigma0[None], sigmas]).swapaxes(0, 1)
    return (means, sigmas), inputs, last


def _run(static, A, params, args, taps):
    """`linear_unroll`'s `run` for WARP (see `_recur`)."""
    outputs, inputs, _ = _recur(static, A, params, args, taps)
    return outputs, inputs


def _check_choices(**given) -> None:
    allowed = {"precision": PRECISIONS, "transition": TRANSITIONS, "final": sorted(FINALS),
               "init": ("hypernetwork", "learned")}
    for name, value in given.items():
        if value not in allowed[name]:
            raise ValueError(f"{name} must be one of {allowed[name]}, got {value!r}")


def make_warp(
    data_size: int,
    out_size: int,
    steps: int,
    *,
    width: int = 48,
    depth: int = 3,
    activation: str = "swish",
    init: str = "hypernetwork",
    hyper_hidden: int = 2,
    final: str = "none",
    clip_bound: float = 38.0,
    uncertainty: bool = False,
    sigma_min: float = 1e-4,
    theta_clip: float = 0.0,
    root_previous: bool = False,
    fourier: int = 0,
    root: tuple[AbstractRoot, Float[Array, " D"]] | None = None,
    transition: str = "dense",
    rank: int = 8,
    precision: str = "float32",
    timed: bool = False,
    controls: int = 0,
    dtype=jnp.float32,
    key: PRNGKeyArray,
) -> WARP:
    """Build a WARP model with A = I and B = 0.

    **Arguments:**

    - `data_size`: d, the input dimension.
    - `out_size`: the output dimension (d for forecasting, the class count for
      classification).
    - `steps`: the training sequence length T (sets tau_k = k / (T - 1)).
    - `width`, `depth`, `activation`: the root MLP (the paper: 48, 3, swish).
    - `init`: `"hypernetwork"` (theta_0 = phi(x_0)) or `"learned"` (theta_0 learned).
    - `hyper_hidden`: hidden layers of the hypernetwork.
    - `final`: final activation on the mean, `"none"`, `"clip"` (at `clip_bound`) or
      `"dynamic-tanh"`.
    - `uncertainty`: add a sigma head, sigma = max(softplus(s), `sigma_min`).
    - `theta_clip`: clip theta to [-w, w] after each update (0: off).
    - `root_previous`, `fourier`: extend the root's input with the current input value
      and with `fourier` sine/cosine pairs of tau.
    - `root`: a root and its initial weights, in place of the MLP root (a grey-box root
      from `warp_phys.physics_root`, for WARP-Phys, which takes its own `previous`);
      `width`, `depth`, `activation`, `root_previous` and `fourier` then do not apply.
    - `transition`: the structure of A: `"dense"` (D x D, the paper),
      `"diagonal-low-rank"` (diag + a rank-`rank` product, D (1 + 2 rank) parameters) or
      `"block-diagonal"` (one dense block per layer of the root). Each starts at I.
    - `precision`: of the products with A in the recurrence, `"float32"` (full),
      `"tf32"` (TF32 tensor cores on an NVIDIA GPU) or `"bf16"` (bfloat16 inputs, the
      state and the accumulation stay in `dtype`).
    - `timed`: the inputs end in the two time channels of irregularly sampled data
      (`_known.py`): the root then reads each sample's own time and B the real gaps.
    - `controls`: m, the control inputs whose values now and at the next sample follow
      the states in the inputs (B and the hypernetwork read them).
    - `dtype`: the parameters' dtype.
    - `key`: a JAX PRNG key.
    """
    _check_choices(precision=precision, transition=transition, final=final, init=init)
    root_key, hyper_key = jr.split(key)  # (kept as it was: runs reproduce across versions)
    in_size = data_size + 2 * controls + (CHANNELS if timed else 0)
    if root is None:
        root, theta0 = mlp_root(in_size, out_size * (2 if uncertainty else 1), width=width,
                                depth=depth, activation=activation, fourier=fourier,
                                previous=root_previous, dtype=dtype, key=root_key)
    elif uncertainty:
        raise ValueError("an uncertainty head needs the MLP root; a given root has none")
    else:
        root, theta0 = root
    size = root.size
    if init == "learned":
        initial = LearnedInit(theta0)
    else:
        initial = Hypernetwork(in_size, size, hidden=hyper_hidden, activation=activation,
                               dtype=dtype, key=hyper_key)
    final_fn = _final(final, clip_bound, dtype)
    A = _transition(transition, size, rank, root, dtype, jr.fold_in(key, 2))
    return WARP(A=A, B=jnp.zeros((size, in_size), dtype=dtype), init=initial, final=final_fn,
                root=root, data_size=data_size, out_size=out_size, steps=steps,
                uncertainty=uncertainty, sigma_min=sigma_min, theta_clip=theta_clip,
                precision=precision, timed=timed)


def _final(final: str, clip_bound: float, dtype) -> AbstractFinal:
    """The final activation `final` names."""
    if final == "clip":
        return SymmetricClip(clip_bound)
    return DynamicTanh(dtype) if final == "dynamic-tanh" else NoFinal()


def _transition(transition: str, size: int, rank: int, root, dtype, key):
    """A at the identity, in the structure `transition` names."""
    if transition == "diagonal-low-rank":
        return DiagonalLowRank(size, rank, dtype=dtype, key=key)
    if transition == "block-diagonal":
        return BlockDiagonal(root.blocks, dtype=dtype)
    return jnp.eye(size, dtype=dtype)
