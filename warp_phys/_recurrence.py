"""The linear recurrence theta_k = A theta_{k-1} + ..., with a backward pass for A that is
one large matrix product.

Plain reverse-mode autodiff of a scan accumulates dA = sum_k g_k theta_{k-1}^T as a
D x D carry: every step reads and writes it, which for the paper's D = 4898 is 96 MB of
memory traffic per step on top of reading A itself. Here the scan is differentiated with
A held constant and a zero "tap" e_k added to the result of each product theta_{k-1} A^T,
so the scan's own backward pass yields g_k = dL/de_k for every product (a (T - 1, B, D)
array, no D x D carry), and then, with the products' inputs stacked as x_k = theta_{k-1},

    dA = einsum("kbi,kbj->ij", g, x)

is a single (D, (T - 1) B) @ ((T - 1) B, D) matrix product over two arrays the scans
wrote whole, so nothing is sliced or copied before it. On a CPU both per-step products
are made as `matrix @ columns`, the batch as the columns of a (D, B) array, the pullback's
through a transposed copy of A (see `transition`).

Also here: structured transitions (A diagonal plus low-rank, or block-diagonal by root
layer), the precision of the products with A, and the convolutional mode's pieces (the
kernel A^k C as one chain, and a causal convolution over time by blocked matrix products).
"""

import abc
import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np
from jaxtyping import Array, Float

from ._root import split


PRECISIONS = ("float32", "tf32", "bf16")


def _dot(a, b, contract: tuple[int, int], precision: str, dtype):
    """The product of `a` and `b` over their indices `contract` at `precision` (see
    `transition`), in `dtype`."""
    if precision == "bf16":
        a, b, level = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), None
    else:
        level = jax.lax.Precision.HIGHEST if precision == "float32" else jax.lax.Precision.DEFAULT
    return jax.lax.dot_general(a, b, (((contract[0],), (contract[1],)), ((), ())),
                               precision=level, preferred_element_type=dtype)


def _times_transpose(x, matrix, precision: str):
    """`x @ matrix.T` at `precision`, in x's dtype: one contraction of both last indices,
    with no transpose op that XLA could lay out on its own."""
    return _dot(x, matrix, (x.ndim - 1, 1), precision, x.dtype)


def _times_transpose_by_columns(x, matrix, precision: str):
    """`x @ matrix.T` for x of shape (B, D) (what `transition` is given: a batch of
    states, or a chain's rows; under vmap too), computed as `(matrix @ x.T).T` with `x.T` made
    a (D, B) array of its own. XLA's CPU kernel reads the matrix faster in this form
    (`A @ columns` in benchmarks/products.py: 1.3x at batch 64, 1.6x at batch 8); the
    barriers keep XLA from folding the two transposes (B x D copies, small beside the
    D x D matrix) back into the product's layout, which restores the slower kernel."""
    columns = jax.lax.optimization_barrier(x.T)
    return jax.lax.optimization_barrier(_dot(matrix, columns, (1, 0), precision, x.dtype)).T


class AbstractTransition(eqx.Module):
    """A structured D x D transition matrix A, applied without forming it."""

    @abc.abstractmethod
    def __call__(self, theta: Float[Array, "b D"], precision: str = "float32") -> Float[Array, "b D"]:
        """`theta @ A.T`."""

    @abc.abstractmethod
    def dense(self) -> Float[Array, "D D"]:
        """A as a D x D array."""


class DiagonalLowRank(AbstractTransition):
    """A = diag(diagonal) + left @ right.T (rank r), started at the identity: diagonal 1,
    left 0, right random (so both factors receive gradients)."""

    diagonal: Float[Array, " D"]
    left: Float[Array, "D r"]
    right: Float[Array, "D r"]

    def __init__(self, size: int, rank: int, *, dtype=jnp.float32, key):
        self.diagonal = jnp.ones(size, dtype)
        self.left = jnp.zeros((size, rank), dtype)
        self.right = jax.random.normal(key, (size, rank), dtype) / size**0.5

    def __call__(self, theta, precision="float32"):
        low = _times_transpose(_times_transpose(theta, self.right.T, precision), self.left, precision)
        return theta * self.diagonal + low

    def dense(self):
        return jnp.diag(self.diagonal) + self.left @ self.right.T


class BlockDiagonal(AbstractTransition):
    """A = blockdiag(A_1, ..., A_L), one block per layer of the root network (theta lists
    each layer's weights contiguously), each started at the identity."""

    blocks: tuple[Float[Array, "n n"], ...]

    def __init__(self, sizes: tuple[int, ...], *, dtype=jnp.float32):
        self.blocks = tuple(jnp.eye(n, dtype=dtype) for n in sizes)

    def __call__(self, theta, precision="float32"):
        pieces = split(theta, [b.shape[0] for b in self.blocks])
        return jnp.concatenate([_times_transpose(piece, block, precision)
                                for piece, block in zip(pieces, self.blocks)], axis=-1)

    def dense(self):
        return jax.scipy.linalg.block_diag(*self.blocks)


TRANSITIONS = ("dense", "diagonal-low-rank", "block-diagonal")


def transition(A, precision: str = "float32") -> Callable:
    """`theta -> theta @ A.T` for a dense A (a D x D array) or a structured one (an
    `AbstractTransition`), at a chosen precision, the result in theta's dtype.

    - `float32`: the full precision of the parameters' dtype (XLA's HIGHEST);
    - `tf32`: XLA's DEFAULT, which lets an NVIDIA GPU use TF32 tensor cores for float32
      (the same as float32 on a CPU);
    - `bf16`: A and theta rounded to bfloat16 for the product, accumulated in theta's
      dtype; a dense A is rounded once, outside any loop over steps.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if isinstance(A, AbstractTransition):
        return lambda theta: A(theta, precision)
    matrix = A.astype(jnp.bfloat16) if precision == "bf16" else A
    if jax.default_backend() != "cpu":
        return lambda theta: _times_transpose(theta, matrix, precision)
    # XLA's CPU kernel reads the matrix of a product fastest as `matrix @ columns`, the
    # contracted index of the matrix contiguous and the batch in the columns (33 GB/s at
    # batch 8 against 20 for `theta @ A.T` and 12 for `g @ A`, benchmarks/products.py).
    # Both products take that form: the forward `A @ theta.T`, the pullback `A.T @ g.T`
    # with a transposed copy of A made here, once, outside any loop over steps.
    transposed = jax.lax.stop_gradient(matrix.T)
    return lambda theta: _dense_product(theta, matrix, transposed, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _dense_product(x, matrix, transposed, precision):
    """`x @ matrix.T`, whose pullback computes `g @ matrix` as `g @ transposed.T`."""
    return _times_transpose_by_columns(x, matrix, precision)


def _dense_product_forward(x, matrix, transposed, precision):
    return _times_transpose_by_columns(x, matrix, precision), (x, transposed)


def _dense_product_backward(precision, residuals, g):
    x, transposed = residuals
    dmatrix = jnp.einsum("bi,bj->ij", g, x).astype(transposed.dtype)
    return (_times_transpose_by_columns(g, transposed, precision).astype(x.dtype), dmatrix,
            None)


_dense_product.defvjp(_dense_product_forward, _dense_product_backward)


def linear_unroll(run: Callable, A, params, args, *, fast_vjp: bool = True):
    """Evaluate `run(A, params, args, taps) -> (outputs, inputs)` and return `outputs`.

    `run` must use `A` only in a chain of P products `x_j @ A.T` (a scan, one per step),
    add `taps[j]` (when `taps` is not None) to the result of product j, and return in
    `inputs[j]` the `x_j` it multiplied; `taps` and `inputs` have shape (P, B, D).

    With `fast_vjp=True` the gradient with respect to `A` is computed as one matrix
    product over all steps (see the module docstring); with `False`, by plain autodiff.
    Both give the same gradients (tested to 1e-6 relative in float64).
    """
    if not fast_vjp or isinstance(A, AbstractTransition):
        # A structured A is differentiated by autodiff: its per-step accumulators hold its
        # own few parameters, not D x D.
        return run(A, params, args, None)[0]
    return _linear_unroll(run, A, params, args)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _linear_unroll(run, A, params, args):
    return run(A, params, args, None)[0]


def _forward(run, A, params, args):
    inputs = jax.eval_shape(lambda: run(A, params, args, None)[1])
    taps = jnp.zeros(inputs.shape, inputs.dtype)
    # The inputs are an auxiliary output: no cotangent is formed (or added) for them.
    outputs, pullback, inputs = jax.vjp(lambda p, a, e: run(A, p, a, e), params, args, taps,
                                        has_aux=True)
    return outputs, (pullback, inputs)


def _backward(run, residuals, cotangent):
    pullback, inputs = residuals
    dparams, dargs, dtaps = pullback(cotangent)
    # Flattened first, so the one product contracts a single index that both arrays
    # already hold contiguously (an einsum over k and b made XLA copy both into a
    # permuted layout first; see docs/performance.md).
    size = inputs.shape[-1]
    dA = dtaps.reshape(-1, size).T @ inputs.reshape(-1, size)
    return dA, dparams, dargs


_linear_unroll.defvjp(_forward, _backward)


# ------------------------------------------------------------------------------ convolution
# Unrolled, theta_k = A^k theta_0 + sum_{j=1..k} A^(k-j) B dx_j: when every input is read
# from the data (no feedback of the model's own forecasts), the whole trajectory is a
# causal convolution of the inputs with the kernel A^j B, plus the free term A^k theta_0.


def _powers(A, rows, steps, taps, *, precision="float32"):
    """`linear_unroll`'s `run` for the chain rows_k = rows_{k-1} @ A.T from `rows`: the
    output is (rows @ (A^k).T) for k = 0..len(steps)-1, the products' inputs all but the
    last of them."""
    apply = transition(A, precision)

    def step(r, j):
        out = apply(r)
        return (out if taps is None else out + taps[j]), r

    last, inputs = jax.lax.scan(step, rows, steps[:-1])
    return jnp.concatenate([inputs, last[None]]), inputs


def powers(A, rows, steps: int, *, fast_vjp: bool = True, precision: str = "float32"):
    """`out[k] = rows @ (A^k).T` for k < `steps`, shape (steps, n, D): A^k applied to each
    of the n rows of `rows` (n, D). One matrix-vector chain, differentiated like the
    recurrence (see `linear_unroll`); products at `precision` (see `transition`)."""
    run = functools.partial(_powers, precision=precision)
    return linear_unroll(run, A, rows, jnp.arange(steps), fast_vjp=fast_vjp)


def causal_convolution(inputs, kernel, *, block: int = 8, precision: str = "float32"):
    """`out[b, k] = sum_{j <= k} inputs[b, j] @ kernel[k - j]` for inputs (b, T, c) and a
    kernel (T, c, D), returns (b, T, D): causal, the output at step k never sees an input
    after k. The blocks of `convolution_blocks`, joined."""
    blocks = convolution_blocks(inputs, (kernel,), block=block, precision=precision)
    return jnp.concatenate([out for _, _, (out,) in blocks], axis=1)


def convolution_blocks(inputs, kernels, *, shared=None, block: int = 8,
                       precision: str = "float32"):
    """`causal_convolution(inputs, kernel)` for each of `kernels` (T, c, n_i), plus, with
    `shared` (one (T, n_i) array per kernel), `shared[i][k]` at every step k of every
    sequence, made in blocks of output steps: a list of `(start, stop, outs)` with
    `outs[i]` the result for `kernels[i]` at steps [start, stop), shape (b, stop - start,
    n_i). A consumer can use each block as it comes and each kernel's part as its own
    array, so the whole (b, T, D) result is never assembled, nor cut up again (the root's
    leaves: see `AbstractRoot.pieces`).

    Made as matrix products, one per `block` consecutive output steps and kernel: the
    rows of block [s, e) are the lagged inputs `inputs[b, k - l]` for the lags l < e its
    last step needs (zero where l > k), so its product contracts e * c numbers against
    the first e kernel steps, and the lags no output of the block uses are never
    multiplied (about half of the T x T, for small blocks). The channels c are the data's
    few dimensions, so the rows are small beside the kernel. The shared term enters the
    same product, as one more row column per step of the block that is 1 on that step's
    rows, so its gradient (a sum over the batch) is made by the same product's transpose
    rather than by XLA's slow CPU sum over a leading axis.

    Blocks of 8 steps: in the lotka-volterra training step at batch 256 (D = 4898), run in
    turn in one process with blocks of 16, they took 3.04 s against 3.12 s (3.42 against
    3.47 in another run; a third tied), though they compile in 10 s against 6. The
    convolution alone, forward and backward at b = T = 256, c = 2: 1.83 s in blocks of 8
    (2.0-2.2 s in 16, 32 or 64), against 9.8 s by FFT over time, the form this replaced
    (benchmarks/convolution.py, `convolution-cpu.json` and
    `convolution-cpu-block16-default.json`). Products at `precision` (see `transition`)."""
    batch, steps, channels = inputs.shape
    blocks = []
    for start in range(0, steps, block):
        stop = min(start + block, steps)
        k = np.arange(start, stop)[:, None]
        lag = np.arange(stop)[None, :]
        lagged = jnp.where(jnp.asarray(lag <= k)[None, :, :, None],
                           inputs[:, np.maximum(k - lag, 0)], 0)  # (b, stop - start, stop, c)
        rows = [lagged.reshape(batch * (stop - start), stop * channels)]
        weights = [[kernel[:stop].reshape(stop * channels, -1)] for kernel in kernels]
        if shared is not None:
            # Row (b, k) picks shared[k]: one more column per step of the block.
            rows.append(jnp.tile(jnp.eye(stop - start, dtype=inputs.dtype), (batch, 1)))
            for weight, term in zip(weights, shared, strict=True):
                weight.append(term[start:stop])
        rows = jnp.concatenate(rows, axis=1)
        outs = tuple(_dot(rows, jnp.concatenate(weight), (1, 0), precision, inputs.dtype)
                     .reshape(batch, stop - start, -1) for weight in weights)
        blocks.append((start, stop, outs))
    return blocks
