"""Weight-space analysis: what a trained WARP model's hidden state, a network's weights,
does along a sequence.

    weight_trajectories   theta_k for every sequence of a split, run as at test time
    PCA                   principal axes fitted on training trajectories, applied to any
    tau_correlation       per weight, the correlation of theta_k with tau_k (the paper's
                          "readout" figure: a root evaluated at tau decodes its own weights)
    probe                 how well the leading components, read at the end of the context,
                          predict each physical parameter (linear, R^2 per parameter)
    transition_matrices   A and B as arrays, with the eigenvalues of A

Every function here returns arrays; the `*_figure` functions take those arrays and
return matplotlib figures (nothing is shown or saved). `warp-phys plot RUN_DIR` runs the
lot on a run directory.
"""

import dataclasses

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._dataset import Dataset
from ._errors import WarpPhysError
from ._evaluate import task_of
from ._normalise import Normaliser
from ._plots import (
    matrices_figure as matrices_figure,
    pca_figure as pca_figure,
    probe_figure as probe_figure,
    weights_figure as weights_figure,
)
from ._warp import WARP


@dataclasses.dataclass(frozen=True)
class WeightTrajectories:
    """The hidden states of a WARP model over one split.

    - `theta`: (n, S, D), the weights after reading input `steps[s]` of each sequence.
    - `steps`: (S,), the step indices kept (every `stride`-th, and always the last).
    - `tau`: (S,), the normalised time the root is evaluated at after each kept step.
    - `params`: (n, p), the true free parameters of each sequence; `param_names` names them.
    - `context`: the context length; steps after it read the model's own forecasts.
    """

    theta: np.ndarray
    steps: np.ndarray
    tau: np.ndarray
    params: np.ndarray
    param_names: tuple[str, ...]
    context: int
    split: str

    def at(self, step: int) -> np.ndarray:
        """theta after reading input `step`, (n, D)."""
        where = np.flatnonzero(self.steps == step)
        if not where.size:
            raise WarpPhysError(f"step {step} was not kept (stride {self.steps[1:2] - self.steps[:1]}); "
                                "use stride=1 or a kept step")
        return self.theta[:, where[0]]


def weight_trajectories(model: WARP, data: Dataset, normaliser: Normaliser, *,
                        stride: int = 1, count: int | None = None,
                        batch: int = 256) -> WeightTrajectories:
    """The weight trajectories theta_k of `model` on every sequence of `data`, run as at
    test time: true inputs inside the context, the model's own forecasts after it (the
    classification and copy tasks read their inputs throughout).

    **Arguments:**

    - `model`: a trained `warp_phys.WARP` (black-box or grey-box).
    - `data`: a split, as from `warp_phys.generate`.
    - `normaliser`: the run's (`Run.normaliser`), mapping data to model units.
    - `stride`: keep every `stride`-th step (and the last): theta is (n, T, D) floats,
      2.5 GB for 512 sequences of the paper's msd model at stride 1. The last context
      step is always kept.
    - `count`: only the first `count` sequences (default: all).
    - `batch`: sequences per device call.
    """
    if not isinstance(model, WARP):
        raise WarpPhysError(f"weight trajectories need a WARP model (warp or warp-phys), "
                            f"not {type(model).__name__}")
    if stride < 1:
        raise WarpPhysError(f"stride must be a positive integer, got {stride}")
    x = normaliser(data.inputs[:count]).astype(np.float32)
    n, T, _ = x.shape
    steps = np.unique(np.concatenate([np.arange(0, T, stride), [data.context - 1, T - 1]]))
    forced = task_of(data).inference_mask(n, T, data.context)
    chunks = []
    for i in range(0, n, batch):
        theta = _states(model, jnp.asarray(x[i : i + batch]), jnp.asarray(forced[i : i + batch]))
        chunks.append(np.asarray(theta)[steps].swapaxes(0, 1))
    theta = np.concatenate(chunks)
    if not np.isfinite(theta).all():
        bad = int((~np.isfinite(theta).all(axis=(1, 2))).sum())
        raise WarpPhysError(f"{bad} of {n} weight trajectories on {data.split} left finite "
                            "values; the model diverged there (see the run's metrics)")
    tau = np.asarray([float(model.tau(k + 1)) for k in steps])
    return WeightTrajectories(theta, steps, tau, data.params[:n], tuple(data.param_names),
                              data.context, data.split)


@eqx.filter_jit
def _states(model, x, forced):
    return model.states(x, forced)


@dataclasses.dataclass(frozen=True)
class PCA:
    """Principal axes of a cloud of weight vectors.

    Fit it on the training trajectories (`PCA.fit(train.theta)`), then `transform` any
    split into the same axes, so in- and out-of-distribution sequences are comparable.
    """

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D), orthonormal rows, by decreasing variance
    explained_variance: np.ndarray  # (k,)
    explained_variance_ratio: np.ndarray  # (k,), of the total variance

    @classmethod
    def fit(cls, theta: np.ndarray, components: int = 10, *, max_points: int = 50_000,
            seed: int = 0) -> "PCA":
        """Fit on `theta` of shape (..., D); at most `max_points` vectors, drawn at random,
        enter the fit (the covariance is D x D whatever the count)."""
        points = np.asarray(theta, np.float64).reshape(-1, np.shape(theta)[-1])
        if len(points) > max_points:
            points = points[np.random.default_rng(seed).choice(len(points), max_points, replace=False)]
        mean = points.mean(axis=0)
        centred = points - mean
        if centred.shape[0] < centred.shape[1]:  # fewer points than weights: the Gram matrix
            _, s, vt = np.linalg.svd(centred, full_matrices=False)
            variance, axes = s**2 / max(len(points) - 1, 1), vt
        else:
            variance, axes = np.linalg.eigh(centred.T @ centred / max(len(points) - 1, 1))
            variance, axes = variance[::-1], axes[:, ::-1].T
        variance = np.clip(variance, 0.0, None)
        total = variance.sum()
        k = min(components, len(variance))
        ratio = variance[:k] / total if total > 0 else np.zeros(k)
        # A deterministic sign: the largest loading of each axis is positive.
        axes = axes[:k] * np.sign(axes[:k][np.arange(k), np.abs(axes[:k]).argmax(axis=1)])[:, None]
        return cls(mean, axes, variance[:k], ratio)

    def transform(self, theta: np.ndarray) -> np.ndarray:
        """Coordinates of `theta` (..., D) on the principal axes, (..., k)."""
        return (np.asarray(theta, np.float64) - self.mean) @ self.components.T

    def inverse(self, scores: np.ndarray) -> np.ndarray:
        """Weight vectors (..., D) from coordinates (..., j), j <= k: the reconstruction from
        the leading j components."""
        j = np.shape(scores)[-1]
        return np.asarray(scores) @ self.components[:j] + self.mean


def tau_correlation(trajectories: WeightTrajectories) -> np.ndarray:
    """Pearson correlation of each weight theta_k[j] with tau_k over every sequence and
    step, shape (D,). A weight that never moves has no correlation: 0."""
    theta = trajectories.theta
    tau = np.broadcast_to(trajectories.tau[None, :], theta.shape[:2])
    t = (tau - tau.mean()).reshape(-1)
    w = (theta - theta.mean(axis=(0, 1))).reshape(-1, theta.shape[-1])
    denominator = np.sqrt((t**2).sum() * (w**2).sum(axis=0))
    return np.divide(t @ w, denominator, out=np.zeros(theta.shape[-1]), where=denominator > 0)


def probe(pca: PCA, train: WeightTrajectories, tests: dict[str, WeightTrajectories], *,
          step: int | None = None, components: tuple[int, ...] = (1, 2, 5, 10)) -> dict:
    """How much of each physical parameter a linear readout of the leading principal
    components of theta holds.

    A least-squares map from the first j PCA coordinates of theta at `step` (default: the
    last context step, the state the forecast starts from) to the true parameters is fitted
    on `train` and scored on each of `tests` by R^2 = 1 - SSE / SST per parameter (1: fully
    predicted, 0: no better than the training mean, negative: worse).

    **Returns:** `{"components": [j...], "names": [...], "r2": {split: (len(j), p) array}}`.
    """
    step = train.context - 1 if step is None else step
    js = sorted({j for j in components if 1 <= j <= len(pca.explained_variance)})
    if not js:
        raise WarpPhysError(f"probe components {components} exceed the PCA's "
                            f"{len(pca.explained_variance)}")
    train_scores = pca.transform(train.at(step))
    r2 = {split: np.zeros((len(js), train.params.shape[1])) for split in tests}
    for row, j in enumerate(js):
        features = np.column_stack([train_scores[:, :j], np.ones(len(train_scores))])
        weights, *_ = np.linalg.lstsq(features, train.params, rcond=None)
        for split, test in tests.items():
            scores = pca.transform(test.at(step))[:, :j]
            predicted = np.column_stack([scores, np.ones(len(scores))]) @ weights
            r2[split][row] = _r2(test.params, predicted)
    return {"components": js, "names": list(train.param_names), "step": step, "r2": r2}


def _r2(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    sse = ((true - predicted) ** 2).sum(axis=0)
    sst = ((true - true.mean(axis=0)) ** 2).sum(axis=0)
    return np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan)


def transition_matrices(model: WARP) -> dict[str, np.ndarray]:
    """`A` (D x D), `B` (D x d) and the eigenvalues of A (complex, (D,)), as NumPy arrays.
    A starts at the identity: `A - I` is what training changed."""
    if not isinstance(model, WARP):
        raise WarpPhysError(f"A and B belong to WARP models, not {type(model).__name__}")
    A, B = np.asarray(model.transition_matrix(), np.float64), np.asarray(model.B, np.float64)
    return {"A": A, "B": B, "eigenvalues": np.linalg.eigvals(A)}
