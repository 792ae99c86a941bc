"""Evaluation: a trained model's predictions on a split, and its test metrics.

Every metric is reported in the data's own units, on the forecast window (the steps after
the context), with the model running as its task says at test time (fully autoregressive
after the context for forecasting; see `AbstractTask.inference_mask`). What is measured
is the task's (`AbstractTask.metrics`).
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._dataset import Dataset
from ._normalise import Normaliser
from ._tasks import AbstractTask, Classify, task_from_json


def task_of(data: Dataset) -> AbstractTask:
    """The task a dataset was built for (a labelled dataset is a classification's)."""
    return Classify() if data.labels.size else task_from_json(data.meta["task"])


def predict(model, x: np.ndarray, forced: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Deterministic mean outputs (n, T, out) in the model's units, in batches."""
    out = [_predict(model, jnp.asarray(x[i : i + batch]), jnp.asarray(forced[i : i + batch]))
           for i in range(0, len(x), batch)]
    return np.concatenate([np.asarray(o) for o in out])


@eqx.filter_jit
def _predict(model, x, forced):
    return model.unroll(x, forced, fast_vjp=False)[0]


def outputs(model, data: Dataset, normaliser: Normaliser, task: AbstractTask) -> np.ndarray:
    """The model's outputs on `data` in its own units, (n, T, out), run as `task` runs at
    test time."""
    x = normaliser(data.inputs).astype(np.float32)
    n, steps, _ = x.shape
    return predict(model, x, task.inference_mask(n, steps, data.context))


def forecast(model, data: Dataset, normaliser: Normaliser, task: AbstractTask) -> np.ndarray:
    """Predictions in the data's units, (n, T, d), where `[:, k]` forecasts step k + 1."""
    return normaliser.inverse(outputs(model, data, normaliser, task).astype(np.float64))


def trajectory_errors(model, data: Dataset, normaliser: Normaliser,
                      task: AbstractTask) -> np.ndarray:
    """Each trajectory's forecast-window MSE in the data's units, shape (n,); inf for a
    rollout that became non-finite."""
    c = data.context
    prediction = forecast(model, data, normaliser, task)
    average = np.nanmean if np.isnan(data.targets).any() else np.mean  # skip missing values
    err = average((prediction[:, c - 1 : -1] - data.targets[:, c:]) ** 2, axis=(1, 2))
    return np.where(np.isfinite(err), err, np.inf)


def metrics(model, data: Dataset, normaliser: Normaliser, task: AbstractTask) -> dict:
    """The test metrics of `model` on `data` (see the task's `metrics`)."""
    return task.metrics(outputs(model, data, normaliser, task), data, normaliser)
