"""Evaluation: normalisation, predictions, and the test metrics of a trained model.

Every metric is reported in the data's own units, on the forecast window (the steps after
the context), with the model running fully autoregressively after the context.
"""

import dataclasses
import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from ._baselines import make_gru, make_lstm, make_ncde, make_node
from ._compile import compile_system
from ._config import FitConfig
from ._dataset import Dataset
from ._errors import WarpPhysError
from ._generate import generate
from ._greybox import centre, physics_root
from ._system import System
from ._warp import WARP, make_warp


# ------------------------------------------------------------------------------ data


@dataclasses.dataclass(frozen=True)
class Normaliser:
    """Affine map to the model's units, `(x - shift) / scale`, fitted on training data."""

    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, train: Dataset) -> "Normaliser":
        values = np.concatenate([train.inputs, train.targets], axis=1).reshape(-1, train.y.shape[-1])
        if kind == "standard":
            shift, scale = values.mean(axis=0), values.std(axis=0)
        elif kind == "minmax":  # to [-1, 1], global over features (the paper's LV choice)
            low, high = values.min(), values.max()
            shift = np.full(values.shape[1], (high + low) / 2)
            scale = np.full(values.shape[1], (high - low) / 2)
        else:
            shift, scale = np.zeros(values.shape[1]), np.ones(values.shape[1])
        return cls(shift, np.where(scale > 0, scale, 1.0))

    def to_json(self):
        return {"shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, data):
        return cls(np.asarray(data["shift"]), np.asarray(data["scale"]))

    def __call__(self, x):
        return (x - self.shift) / self.scale

    def inverse(self, x):
        return x * self.scale + self.shift


def task_kind(system: System) -> str:
    """`classify` (a label is declared), `copy` (inputs and targets differ) or `forecast`."""
    if system.label is not None:
        return "classify"
    return "forecast" if system.task.name == "forecast" else "copy"


def load_splits(system: System, config: FitConfig, splits=None, *,
                progress: bool = False) -> dict[str, Dataset]:
    """The datasets a run uses (default: every split the system has), from the cache."""
    sizes = {"train": config.n_train, "val": config.n_val}
    return {
        split: generate(system, split, sizes.get(split, config.n_test), seed=config.seed,
                        progress=progress)
        for split in (splits or system.splits)
    }


# ------------------------------------------------------------------------------ prediction


def predict(model: WARP, x: np.ndarray, forced: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Deterministic mean predictions (n, T, out) in the model's units, in batches."""
    out = [_predict(model, jnp.asarray(x[i : i + batch]), jnp.asarray(forced[i : i + batch]))
           for i in range(0, len(x), batch)]
    return np.concatenate([np.asarray(o) for o in out])


@eqx.filter_jit
def _predict(model, x, forced):
    return model.unroll(x, forced, fast_vjp=False)[0]


def inference_mask(kind: str, n: int, steps: int, context: int) -> np.ndarray:
    """Truth inside the context, own forecasts after it; classification and the copy task
    always read their inputs."""
    if kind != "forecast":
        return np.ones((n, steps), np.float32)
    return np.broadcast_to((np.arange(steps) < context).astype(np.float32), (n, steps)).copy()


def forecast(model, data: Dataset, normaliser: Normaliser, kind: str = "forecast") -> np.ndarray:
    """Predictions in the data's units, (n, T, d), where `[:, k]` forecasts step k + 1:
    fully autoregressive after the context (see `inference_mask`)."""
    x = normaliser(data.inputs).astype(np.float32)
    n, steps, _ = x.shape
    mean = predict(model, x, inference_mask(kind, n, steps, data.context))
    return normaliser.inverse(mean.astype(np.float64))


def trajectory_errors(model, data: Dataset, normaliser: Normaliser, kind: str = "forecast") -> np.ndarray:
    """Each trajectory's forecast-window MSE in the data's units, shape (n,); inf for a
    rollout that left finite values."""
    c = data.context
    prediction = forecast(model, data, normaliser, kind)
    err = np.mean((prediction[:, c - 1 : -1] - data.targets[:, c:]) ** 2, axis=(1, 2))
    return np.where(np.isfinite(err), err, np.inf)


def metrics(model: WARP, data: Dataset, normaliser: Normaliser, kind: str) -> dict:
    """Test metrics in the data's own units: MSE and MAE on the forecast window (steps
    after the context), whole-sequence MSE, the naive last-context-value forecast, and
    accuracy for classification."""
    n = len(data)
    if kind == "classify":
        x = normaliser(data.inputs).astype(np.float32)
        logits = predict(model, x, inference_mask(kind, n, x.shape[1], data.context))[:, -1]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, data.labels).mean()
        return {"accuracy": float(np.mean(logits.argmax(-1) == data.labels)),
                "cross_entropy": float(ce), "n": n}
    prediction = forecast(model, data, normaliser, kind)
    target = data.targets
    c = data.context
    # A rollout that leaves finite values is counted, never averaged in as NaN.
    finite = np.isfinite(prediction).all(axis=(1, 2))
    prediction, target, inputs = prediction[finite], target[finite], data.inputs[finite]
    forecast_err = prediction[:, c - 1 : -1] - target[:, c:]
    naive = target[:, c:] - inputs[:, c - 1 : c]
    return {
        "mse": float(np.mean(forecast_err**2)) if finite.any() else float("inf"),
        "mae": float(np.mean(np.abs(forecast_err))) if finite.any() else float("inf"),
        "mse_whole": float(np.mean((prediction[:, :-1] - target[:, 1:]) ** 2)) if finite.any() else float("inf"),
        "naive_mse": float(np.mean(naive**2)) if finite.any() else float("inf"),
        "naive_mae": float(np.mean(np.abs(naive))) if finite.any() else float("inf"),
        "n": n,
        "diverged": int(n - finite.sum()),
    }


def build_model(config: FitConfig, system: System, normaliser: Normaliser | None = None, *,
                key):
    """The model `config` describes for `system`, freshly initialised; `normaliser` (the
    training data's) tells physics-informed models the data's units. With
    `config.budget`, the model's width is chosen to bring its trainable parameters as
    close to the budget as the architecture allows."""
    if config.budget is None:
        width = config.width if config.model.startswith("warp") else config.hidden
        return _build(config, system, normaliser, width, key)
    return sized(lambda width: _build(config, system, normaliser, width, key), config.budget,
                 what=f"--model {config.model}")


def sized(make, budget: int, *, what: str):
    """`make(width)` at the width whose parameter count is closest to `budget` (counted
    without allocating: `eqx.filter_eval_shape`)."""
    @functools.cache
    def count(width):
        leaves = jax.tree_util.tree_leaves(eqx.filter_eval_shape(make, width))
        return sum(math.prod(leaf.shape) for leaf in leaves
                   if isinstance(leaf, jax.ShapeDtypeStruct) and jnp.issubdtype(leaf.dtype, jnp.inexact))

    if count(1) == count(2):
        raise WarpPhysError(f"{what} has a fixed size ({count(1)} parameters) that --budget cannot change")
    low, high = 1, 2
    while count(high) < budget and high < 2**14:
        low, high = high, high * 2
    while high - low > 1:  # the count grows with width
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid) < budget else (low, mid)
    return make(min((low, high), key=lambda w: abs(count(w) - budget)))


def _build(config: FitConfig, system: System, normaliser, width: int, key):
    kind = task_kind(system)
    d = len(system.state)
    out = len(system.classes) if kind == "classify" else d
    shift = 0.0 if normaliser is None else normaliser.shift
    scale = 1.0 if normaliser is None else normaliser.scale
    dt = (system.t_span[1] - system.t_span[0]) / (system.steps - 1)
    if config.model in ("warp", "warp-phys"):
        root = None
        if config.model == "warp-phys":
            root = physics_root(system, form=config.physics_form, shift=shift, scale=scale,
                                width=width, depth=config.depth, activation=config.activation,
                                reach=config.physics_reach, previous=config.root_previous,
                                key=jr.fold_in(key, 1))
        return make_warp(
            d, out, system.steps, width=width, depth=config.depth,
            activation=config.activation, init=config.init, hyper_hidden=config.hyper_hidden,
            final=config.final, clip_bound=config.clip_bound, uncertainty=config.uncertainty,
            sigma_min=config.sigma_min, theta_clip=config.theta_clip,
            root_previous=config.root_previous, fourier=config.fourier, root=root,
            transition=config.transition, rank=config.rank, precision=config.precision,
            dtype=jnp.float32, key=key,
        )
    # Baselines honour --final clip as a bound on their forecasts (fed back and scored).
    bound = config.clip_bound if config.final == "clip" else None
    if config.model == "gru":
        return make_gru(d, out, system.steps, hidden=width, bound=bound, key=key)
    if config.model == "lstm":
        return make_lstm(d, out, system.steps, hidden=width, bound=bound, key=key)
    if config.model == "ncde":
        return make_ncde(d, out, system.steps, dt=dt, hidden=width, depth=config.depth,
                         bound=bound, key=key)
    physics = {}
    if config.node_physics:
        physics = dict(vector_field=compile_system(system).vector_field,
                       p0=jnp.asarray(centre(system), jnp.float32), shift=shift, scale=scale,
                       t0=system.t_span[0])
    return make_node(d, out, system.steps, dt=dt, hidden=width, depth=config.depth,
                     code=config.code, classify=kind == "classify", bound=bound, key=key,
                     **physics)
