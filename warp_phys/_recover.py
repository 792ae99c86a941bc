"""A learned unknown term back to symbols: a sparse expression over a library of candidates.

After training, each unknown term (`wp.Unknown`) is a network. `recover_term` samples it
where the data go (the term's inputs at the training split's samples), and fits a sparse
linear combination of candidate terms by sequentially thresholded least squares (the
SINDy recipe): polynomials of the inputs up to `degree`, and each function the
declaration itself uses (`sin`, `exp`, ...) of each input. Columns are scaled to unit
spread before the fit, so the threshold compares terms by their share of the term, not by
their units. The result says how well the expression matches the network, and on which
range of the inputs it holds.
"""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from ._unknown import TermNetworks


@dataclasses.dataclass(frozen=True)
class RecoveredTerm:
    """One unknown term as an expression.

    - `name`, `inputs`: the term and the symbols it reads.
    - `expression`: the sparse SymPy expression of the inputs.
    - `relative_error`: RMS of (network - expression) over RMS of the network, on the
      samples.
    - `ranges`: the range of each input the samples span (the expression holds there).
    - `samples`: (inputs (n, k), network values (n,)) the fit used.
    """

    name: str
    inputs: tuple[sp.Symbol, ...]
    expression: sp.Expr
    relative_error: float
    ranges: tuple[tuple[float, float], ...]
    samples: tuple[np.ndarray, np.ndarray]

    def markdown(self) -> str:
        where = ", ".join(f"{s.name} in [{lo:.3g}, {hi:.3g}]" for s, (lo, hi) in
                          zip(self.inputs, self.ranges))
        args = ", ".join(s.name for s in self.inputs)
        return (f"{self.name}({args}) = {sp.N(self.expression, 4)}\n\n"
                f"(fitted to the learned network on {len(self.samples[1])} samples where the "
                f"data go, {where}; RMS misfit {self.relative_error:.2%} of the term's RMS)")


def library(inputs: tuple[sp.Symbol, ...], functions, degree: int) -> list[sp.Expr]:
    """The candidate terms: the monomials of `inputs` of degree 0..`degree`, then each of
    `functions` (SymPy function classes) of each input."""
    terms = [sp.Integer(1)]
    for k in range(1, degree + 1):
        terms += [sp.Mul(*c) for c in itertools.combinations_with_replacement(inputs, k)]
    terms += [f(s) for f in functions for s in inputs]
    return terms


def functions_of(system) -> list:
    """The elementary functions (sin, exp, tanh, ...) the declaration's equations use."""
    found = set()
    for e in system.equations:
        found |= {type(a) for a in sp.sympify(e).atoms(sp.Function)
                  if not isinstance(a, sp.core.function.AppliedUndef)}
    return sorted(found, key=lambda f: f.__name__)


def stlsq(features: np.ndarray, target: np.ndarray, threshold: float, iterations: int = 10
          ) -> np.ndarray:
    """Sequentially thresholded least squares: coefficients of `features` (n, m) for
    `target` (n,), every one whose column-scaled size is under `threshold` times the
    target's spread set to zero."""
    spread = features.std(0)
    spread = np.where(spread > 0, spread, np.abs(features).max(0) + 1e-12)
    scaled = features / spread
    size = target.std() + 1e-12
    active = np.ones(features.shape[1], bool)
    coef = np.zeros(features.shape[1])
    for _ in range(iterations):
        coef[:] = 0
        coef[active] = np.linalg.lstsq(scaled[:, active], target, rcond=None)[0]
        small = np.abs(coef) < threshold * size
        if not (active & small).any():
            break
        active &= ~small
    return coef / spread


def recover_term(system, networks: TermNetworks, weights, train, j: int = 0, *,
                 degree: int = 3, threshold: float = 0.02, samples: int = 4000,
                 seed: int = 0) -> RecoveredTerm:
    """The `j`-th unknown term of `system`, learned as `networks` with `weights`, as a
    sparse expression fitted where the `train` dataset's samples go (at most `samples` of
    them, drawn with `seed`)."""
    term = system.unknowns[j]
    inputs = tuple(term.args)
    d = len(system.state)
    y = train.targets[..., :d].reshape(-1, d)
    t = np.broadcast_to(train.t, train.targets.shape[:2]).reshape(-1)
    keep = np.isfinite(y).all(1)
    y, t = y[keep], t[keep]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(y), size=min(samples, len(y)), replace=False)
    y, t = y[pick], t[pick]
    w = jnp.asarray(weights)
    values = np.asarray(jax.vmap(lambda ti, yi: networks(ti, yi, w)[j])(
        jnp.asarray(t, w.dtype), jnp.asarray(y, w.dtype)), np.float64)
    state = list(system.state)
    columns = np.stack([t if s == system.time else y[:, state.index(s)] for s in inputs], 1)
    candidates = library(inputs, functions_of(system), degree)
    evaluate = sp.lambdify(inputs, candidates, modules="numpy")
    features = np.stack([np.broadcast_to(np.asarray(v, float), (len(columns),))
                         for v in evaluate(*columns.T)], 1)
    coef = stlsq(features, values, threshold)
    fitted = features @ coef
    expression = sp.Add(*[sp.Float(c, 4) * f for c, f in zip(coef, candidates) if c != 0])
    error = float(np.sqrt(np.mean((fitted - values) ** 2)) / (np.sqrt(np.mean(values**2)) + 1e-12))
    ranges = tuple((float(c.min()), float(c.max())) for c in columns.T)
    return RecoveredTerm(name=term.func.__name__, inputs=inputs, expression=expression,
                         relative_error=error, ranges=ranges, samples=(columns, values))
