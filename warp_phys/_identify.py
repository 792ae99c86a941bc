"""In-context identification: what WARP-Phys inferred, refined on the context itself.

The recurrence infers a sequence's physical unknowns amortised: theta at the last step
read from the data encodes them (`warp_phys.inferred_parameters`). Out of distribution
that guess saturates at the training box (msd quick: test-ood MSE 104x test-id, while a
least-squares fit of the same law to each context forecasts both to about 1e-9,
`benchmarks/context_fit.py`). `InContext` takes the guess as the start of a few
Levenberg-Marquardt steps (`optimistix.LevenbergMarquardt`) on the unconstrained unknowns
u, which minimise the one-step residuals of the physics on the context,

    r_k(u) = root.predict(transform(u), tau_{k+1}, x_k, x_0) - x_{k+1},   k + 1 < c,

c being the leading steps read from the data (the context at test time), and then
forecasts the rest with the physics under the refined parameters, each step fed its own
previous forecast (or the data where a step is forced). The outputs inside the context
stay the model's own. Everything is jitted and vmapped over the batch; the Jacobian is
forward mode, through a Diffrax solve too (`ODEFlow(forward=True)`).

The refined parameters hold over the whole forecast window (the `"mlp"` form's variation
along tau is averaged into the start). A missing value in the context counts as the last
value observed before it (the inputs hold it, `_dataset.held`).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Float

from ._feedback import feedback_scan
from ._flow import ODEFlow


CHUNK = 32
"""Sequences refined at once. Levenberg-Marquardt through `jax.scipy.linalg.expm` vmapped
over 128 sequences hung on the 2-core development CPU (jax 0.10.2, every XLA worker idle;
`benchmarks/context_fit.py` saw the same at 256, never at 64)."""


class InContext(eqx.Module):
    """A WARP-Phys model whose inferred parameters are refined on each context before it
    forecasts. Build it with `WARPPhysConfig(refine=N).inference(model)`.

    **Arguments:**

    - `model`: a WARP model with a physics root (`warp_phys.physics_root`).
    - `steps`: Levenberg-Marquardt steps per sequence.

    In training the refined unknowns are constants (no gradient flows through the
    steps): the loss trains the recurrence through its own outputs inside the context,
    and shared unknown-term weights through the forecasts under the refined parameters.
    """

    model: eqx.Module
    steps: int = eqx.field(static=True)

    @property
    def root(self):
        return self.model.root

    def identify(self, x: Float[Array, "b T d"], forced: Float[Array, "b T"]
                 ) -> tuple[Float[Array, "b P"], Float[Array, "b P"]]:
        """The free parameters of each sequence as the recurrence inferred them (averaged
        over the forecast window's tau) and after refinement on its context, each (b, P)
        ordered as `System.free_parameters`."""
        u0, before = self._start(x, forced)
        refined = self._refined(u0, x, _leading(forced))
        return before, jax.vmap(self.root.transform)(refined)

    def unroll(self, x: Float[Array, "b T d"], forced: Float[Array, "b T"], *,
               fast_vjp: bool = True):
        """`(mean, None)` as `WARP.unroll`: the model's own outputs inside the context, the
        physics under the refined parameters after it."""
        own, _ = self.model.unroll(x, forced, fast_vjp=fast_vjp)
        u0, _ = self._start(x, forced)
        context = _leading(forced)
        u = self._refined(u0, x, context)
        p = jax.vmap(self.root.transform)(u)
        rolled = self._rollout(p, x, forced)
        after = jnp.arange(x.shape[1])[None, :] >= (context - 1)[:, None]
        return jnp.where(after[..., None], rolled, own), None

    def _start(self, x, forced):
        """The unknowns u (b, U) at which refinement starts, the mean over the forecast
        window's tau of what theta at the last context step encodes, and the parameters
        (b, P) it encodes, averaged over the same taus (`inferred_parameters`)."""
        states = self.model.states(x, forced)  # (T, b, D)
        context = _leading(forced)
        theta = jnp.take_along_axis(states, (context - 1)[None, :, None], axis=0)[0]
        steps = x.shape[1]
        taus = self.model.next_tau(x, jnp.arange(steps))  # (b, T): tau_{k+1}
        latent = jax.vmap(jax.vmap(self.root.latent, in_axes=(None, 0)))(theta, taus)
        window = jnp.arange(steps)[None, :] >= (context - 1)[:, None]
        weights = (window / window.sum(1, keepdims=True)).astype(theta.dtype)
        p = jax.vmap(jax.vmap(self.root.transform))(latent)
        return (jnp.einsum("bt,btu->bu", weights, latent),
                jnp.einsum("bt,btp->bp", weights, p))

    def _refined(self, u0, x, context):
        """`_refine` over the batch, `CHUNK` sequences at a time."""
        return jax.lax.map(lambda args: self._refine(*args), (u0, x, context), batch_size=CHUNK)

    def _refine(self, u0, xs, context):
        """Levenberg-Marquardt on one sequence's unknowns from `u0`; the start is kept
        where the steps did not lower the residuals (a failed solve gives NaN)."""
        root = jax.lax.stop_gradient(self.root)
        if not root.flow.forward_mode and isinstance(root.flow, ODEFlow):
            # Few unknowns, many residuals: forward mode through the solves.
            root = dataclasses.replace(root, flow=root.flow.with_options(forward=True))
        u0 = jax.lax.stop_gradient(u0)
        # In JAX's default float (optimistix's damping constants take it: under x64 a
        # float32 start met a float64 damping term).
        dtype = u0.dtype
        u0 = u0.astype(jnp.result_type(float))
        steps = xs.shape[0]
        ks = jnp.arange(steps - 1)
        taus = self.model.next_tau(xs[:-1], ks)
        valid = (ks + 1 < context)[:, None]

        def residuals(u, _):
            p = root.transform(u.astype(dtype))
            forecast = jax.vmap(lambda k, tau: root.predict(p, tau, xs[k], xs[0]))(ks, taus)
            d = forecast.shape[-1]
            return jnp.where(valid, forecast - xs[1:, :d], 0.0).astype(u0.dtype)

        solution = optx.least_squares(
            residuals, optx.LevenbergMarquardt(rtol=1e-8, atol=1e-10), u0, max_steps=self.steps,
            throw=False, options={"jac": "fwd"})
        u = solution.value

        def loss(v):
            return jnp.sum(residuals(v, None) ** 2)

        better = jnp.isfinite(loss(u)) & (loss(u) <= loss(u0))
        return jnp.where(better, u, u0).astype(dtype)

    def _rollout(self, p, x, forced):
        """The physics under parameters `p` (b, P) over the whole sequence, each step fed
        the data where forced and its own previous forecast elsewhere."""
        root, x0 = self.root, x[:, 0]
        predict = jax.vmap(root.predict)

        def cell(carry, x_in, k):
            tau = self.model.next_tau(x_in, k)
            return carry, None, self.model.final(predict(p, tau, x_in, x0))

        first = self.model.final(predict(p, self.model.next_tau(x0, 0), x0, x0))
        _, _, means = feedback_scan(cell, None, x, forced, first, start=1)
        return jnp.concatenate([first[None], means]).swapaxes(0, 1)


def _leading(forced: Float[Array, "b T"]) -> Array:
    """The steps each sequence reads from the data before its first fed-back one (all T
    when every step is forced)."""
    fed = forced <= 0
    return jnp.where(fed.any(1), jnp.argmax(fed, axis=1), forced.shape[1])
