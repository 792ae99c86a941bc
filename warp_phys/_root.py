"""Root networks and their final activations.

The root network is the function f_theta(tau) that WARP's hidden state parameterises.
Every root is an `AbstractRoot`: `root(theta, tau, x, x0)` evaluates it with weights
`theta` at normalised time `tau`, given the step's input `x` and the sequence's first
input `x0`. The black-box root (`MLPRoot`) is an MLP whose weights *are* theta, flattened
leaf by leaf in tree order (W0, b0, W1, b1, ...); grey-box roots compiled from a system's
declaration live in `_greybox.py`. Equinox's partition/combine and JAX's tree utilities
take a network apart and put it back, never hand-written layer maths: theta is the
network's leaves, each flattened, one after another, and its pieces (one per leaf)
reshaped are the leaves again.
"""

import abc
import itertools
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


ACTIVATIONS: dict[str, Callable] = {
    "swish": jax.nn.swish,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "softplus": jax.nn.softplus,
}


def split(theta: Float[Array, "... D"], sizes) -> tuple[Array, ...]:
    """`theta` cut along its last axis into consecutive pieces of lengths `sizes`."""
    edges = list(itertools.accumulate(sizes))[:-1]
    return tuple(jnp.split(theta, edges, axis=-1))


class FlatRoot(eqx.Module):
    """A root network with its weights taken out: what remains evaluates the network
    whose weights are any vector `theta` of length `size`, or theta's `pieces` (one per
    leaf of the network: each weight matrix and bias, flattened).

    Build it with `FlatRoot.from_network(network)`, which also returns the network's own
    weights as a vector (a sensible theta_0: they carry the network's initialisation).
    """

    static: eqx.Module = eqx.field(static=True)
    treedef: jax.tree_util.PyTreeDef = eqx.field(static=True)
    shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    blocks: tuple[int, ...] = eqx.field(static=True, default=())

    @classmethod
    def from_network(cls, network: eqx.Module) -> tuple["FlatRoot", Float[Array, " D"]]:
        params, static = eqx.partition(network, eqx.is_array)
        with_paths, treedef = jax.tree_util.tree_flatten_with_path(params)
        # theta lists the leaves in tree order, so each layer's weights (all the leaves of
        # one module: a Linear's weight and bias) form one contiguous block.
        blocks: list[int] = []
        owner = None
        for path, leaf in with_paths:
            if path[:-1] != owner:
                blocks.append(0)
                owner = path[:-1]
            blocks[-1] += leaf.size
        leaves = [leaf for _, leaf in with_paths]
        theta = jnp.concatenate([leaf.ravel() for leaf in leaves])
        shapes = tuple(leaf.shape for leaf in leaves)
        return cls(static=static, treedef=treedef, shapes=shapes, blocks=tuple(blocks)), theta

    @property
    def size(self) -> int:
        return sum(self.pieces)

    @property
    def pieces(self) -> tuple[int, ...]:
        """The number of weights in each leaf, in theta's order."""
        return tuple(math.prod(shape) for shape in self.shapes)

    def assemble(self, pieces: tuple[Array, ...]) -> eqx.Module:
        """The root network whose leaves, flattened, are `pieces`."""
        leaves = [piece.reshape(shape) for piece, shape in zip(pieces, self.shapes, strict=True)]
        return eqx.combine(jax.tree_util.tree_unflatten(self.treedef, leaves), self.static)

    def network(self, theta: Float[Array, " D"]) -> eqx.Module:
        """The root network whose weights are `theta`."""
        return self.assemble(split(theta, self.pieces))

    def __call__(self, theta: Float[Array, " D"], features: Float[Array, " f"]) -> Array:
        return self.network(theta)(features)


class AbstractRoot(eqx.Module):
    """The function WARP's hidden state parameterises."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """D_theta, the length of the weight vector."""

    @property
    def blocks(self) -> tuple[int, ...]:
        """Lengths of the contiguous pieces of theta that belong to one layer each (one
        piece when the root has no layers), for a block-diagonal transition."""
        return (self.size,)

    @property
    def pieces(self) -> tuple[int, ...]:
        """Lengths of the consecutive pieces of theta that `evaluate` takes as arrays of
        their own (for a network, its leaves: each weight matrix and bias); one piece by
        default. A caller that makes theta piece by piece (the convolutional mode) then
        never assembles, or cuts up, the whole vector."""
        return (self.size,)

    def split(self, theta: Float[Array, "... D"]) -> tuple[Array, ...]:
        """`theta` (or anything indexed like it along its last axis) cut into its `pieces`."""
        return split(theta, self.pieces)

    @abc.abstractmethod
    def __call__(self, theta: Float[Array, " D"], tau: Float[Array, ""], x: Float[Array, " d"],
                 x0: Float[Array, " d"]) -> Array:
        """The root's output with weights `theta` at normalised time `tau`, given the step's
        input `x` and the first input `x0` of the sequence."""

    def evaluate(self, pieces: tuple[Array, ...], tau: Float[Array, ""], x: Float[Array, " d"],
                 x0: Float[Array, " d"]) -> Array:
        """`self(theta, tau, x, x0)` for theta given as its `pieces` (see `split`)."""
        return self(jnp.concatenate(pieces, axis=-1), tau, x, x0)


class MLPRoot(AbstractRoot):
    """The black-box root: an MLP of tau (optionally of sine/cosine features of tau and of
    the step's input too) whose weights are theta."""

    flat: FlatRoot
    fourier: int = eqx.field(static=True)
    previous: bool = eqx.field(static=True)

    @property
    def size(self) -> int:
        return self.flat.size

    @property
    def blocks(self) -> tuple[int, ...]:
        return self.flat.blocks

    @property
    def pieces(self) -> tuple[int, ...]:
        return self.flat.pieces

    def network(self, theta: Float[Array, " D"]) -> eqx.Module:
        """The MLP whose weights are `theta`."""
        return self.flat.network(theta)

    def features(self, tau: Float[Array, ""], x: Float[Array, " d"]) -> Float[Array, " f"]:
        """The MLP's input at normalised time `tau`, given the step's input `x`."""
        tau = jnp.asarray(tau, x.dtype)
        parts = [tau[None]]
        if self.fourier:
            freqs = jnp.arange(1, self.fourier + 1, dtype=tau.dtype)
            parts += [jnp.sin(2 * jnp.pi * freqs * tau), jnp.cos(2 * jnp.pi * freqs * tau)]
        if self.previous:
            parts.append(x)
        return jnp.concatenate(parts)

    def __call__(self, theta, tau, x, x0):
        return self.evaluate(self.split(theta), tau, x, x0)

    def evaluate(self, pieces, tau, x, x0):
        return self.flat.assemble(pieces)(self.features(tau, x))


def mlp_root(data_size: int, out_size: int, *, width: int, depth: int, activation: str,
             fourier: int = 0, previous: bool = False, dtype=jnp.float32,
             key: PRNGKeyArray) -> tuple[MLPRoot, Float[Array, " D"]]:
    """An MLP root with `depth` hidden layers of `width` (the paper's dynamics root is
    1 -> 48 x 3 -> 2, D_theta = 4898), and its initial weights as a vector. Its input is
    tau, plus `fourier` sine/cosine pairs of tau and, with `previous`, the step's input."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    in_size = 1 + 2 * fourier + (data_size if previous else 0)
    network = eqx.nn.MLP(in_size, out_size, width, depth, activation=ACTIVATIONS[activation],
                         dtype=dtype, key=key)
    flat, theta0 = FlatRoot.from_network(network)
    return MLPRoot(flat, fourier, previous), theta0


# ----------------------------------------------------------------------- final activations


class AbstractFinal(eqx.Module):
    """A final activation applied to the root's mean output."""

    def __call__(self, y: Array) -> Array:
        raise NotImplementedError


class NoFinal(AbstractFinal):
    """No final activation."""

    def __call__(self, y):
        return y


class SymmetricClip(AbstractFinal):
    """`clip(y, -bound, bound)` (the paper clips MSD outputs to +-38)."""

    bound: float = eqx.field(static=True)

    def __call__(self, y):
        return jnp.clip(y, -self.bound, self.bound)


class DynamicTanh(AbstractFinal):
    """`alpha * tanh((y - b) / a) + beta` with trainable scalars, started at
    (a, b, alpha, beta) = (1, 0, 1, 0).

    ??? cite "Reference"
        Zhu, Chen, He, LeCun and Liu, *Transformers without normalization*, CVPR 2025.
    """

    a: Float[Array, ""]
    b: Float[Array, ""]
    alpha: Float[Array, ""]
    beta: Float[Array, ""]

    def __init__(self, dtype=float):
        self.a, self.b, self.alpha, self.beta = (jnp.asarray(v, dtype) for v in (1.0, 0.0, 1.0, 0.0))

    def __call__(self, y):
        return self.alpha * jnp.tanh((y - self.b) / self.a) + self.beta


FINALS = {"none": NoFinal, "clip": SymmetricClip, "dynamic-tanh": DynamicTanh}
