"""The linear recurrence theta_k = A theta_{k-1} + ..., with a backward pass for A that is
one large matrix product.

Plain reverse-mode autodiff of a scan accumulates dA = sum_k g_k theta_{k-1}^T as a
D x D carry: every step reads and writes it, which for the paper's D = 4898 is 96 MB of
memory traffic per step on top of reading A itself. Here the scan is differentiated with
A held constant and a zero "tap" e_k added to each theta_k, so the scan's own backward
pass yields g_k = dL/de_k for every step (a (T, B, D) array, no D x D carry), and then

    dA = einsum("tbi,tbj->ij", g[1:], theta[:-1])

is a single (D, T*B) @ (T*B, D) matrix product.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp


def linear_unroll(run: Callable, A, params, args, *, fast_vjp: bool = True):
    """Evaluate `run(A, params, args, taps) -> (outputs, states)` and return `outputs`.

    `run` must use `A` only as `theta_{k-1} @ A.T` to form `theta_k`, add `taps[k]` (when
    `taps` is not None) to `theta_k`, and return in `states[k]` the `theta_k` that step
    k + 1 multiplies by `A`; `states` has shape (T, B, D).

    With `fast_vjp=True` the gradient with respect to `A` is computed as one matrix
    product over all steps (see the module docstring); with `False`, by plain autodiff.
    Both give the same gradients (tested to 1e-6 relative in float64).
    """
    if not fast_vjp:
        return run(A, params, args, None)[0]
    return _linear_unroll(run, A, params, args)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _linear_unroll(run, A, params, args):
    return run(A, params, args, None)[0]


def _forward(run, A, params, args):
    states_shape = jax.eval_shape(lambda: run(A, params, args, None)[1])
    taps = jnp.zeros(states_shape.shape, states_shape.dtype)
    (outputs, states), pullback = jax.vjp(lambda p, a, e: run(A, p, a, e), params, args, taps)
    return outputs, (pullback, states)


def _backward(run, residuals, cotangent):
    pullback, states = residuals
    dparams, dargs, dtaps = pullback((cotangent, jnp.zeros_like(states)))
    dA = jnp.einsum("tbi,tbj->ij", dtaps[1:], states[:-1])
    return dA, dparams, dargs


_linear_unroll.defvjp(_forward, _backward)
