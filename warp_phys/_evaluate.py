"""Evaluation: normalisation, predictions, and the test metrics of a trained model.

Every metric is reported in the data's own units, on the forecast window (the steps after
the context), with the model running fully autoregressively after the context.
"""

import dataclasses

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optax

from ._config import FitConfig
from ._dataset import Dataset
from ._generate import generate
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


def metrics(model: WARP, data: Dataset, normaliser: Normaliser, kind: str) -> dict:
    """Test metrics in the data's own units: MSE and MAE on the forecast window (steps
    after the context), whole-sequence MSE, the naive last-context-value forecast, and
    accuracy for classification."""
    x = normaliser(data.inputs).astype(np.float32)
    n, steps, _ = x.shape
    mean = predict(model, x, inference_mask(kind, n, steps, data.context))
    if kind == "classify":
        logits = mean[:, -1]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, data.labels).mean()
        return {"accuracy": float(np.mean(logits.argmax(-1) == data.labels)),
                "cross_entropy": float(ce), "n": n}
    prediction = normaliser.inverse(mean.astype(np.float64))
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


def build_model(config: FitConfig, system: System, *, key) -> WARP:
    """The model `config` describes for `system`, freshly initialised."""
    kind = task_kind(system)
    out = len(system.classes) if kind == "classify" else len(system.state)
    return make_warp(
        len(system.state), out, system.steps, width=config.width, depth=config.depth,
        activation=config.activation, init=config.init, hyper_hidden=config.hyper_hidden,
        final=config.final, clip_bound=config.clip_bound, uncertainty=config.uncertainty,
        sigma_min=config.sigma_min, theta_clip=config.theta_clip,
        root_previous=config.root_previous, fourier=config.fourier, dtype=jnp.float32,
        key=key,
    )
