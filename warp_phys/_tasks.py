"""Tasks: what a model reads, what it must predict, how it is scored.

A task turns a batch of trajectories `y` (n, T, d) into the model's `inputs` and its
`targets` (both (n, T, d)) plus per-trajectory extras worth storing, and owns everything
that differs between tasks afterwards: which steps read the truth in training and at
test time, the loss, the test metrics and the score that selects the best checkpoint.

- `Forecast` (the default): read the trajectory, predict its continuation; after the
  context the model feeds back its own forecasts.
- `RepeatCopy`: the paper's Lotka-Volterra memory task; inputs and targets differ, so
  the model always reads its inputs.
- `Classify`: predict a class from the whole sequence (chosen by declaring a `label`).
"""

import abc
import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from ._errors import WarpPhysError


class AbstractTask(abc.ABC):
    """What a model reads and predicts, and how it is trained and scored."""

    name: ClassVar[str]
    feeds_back: ClassVar[bool] = False
    """Whether steps after the context may read the model's own forecast (teacher
    forcing applies); otherwise every step reads the data."""
    targets_are_inputs: ClassVar[bool] = True
    """Whether the targets are the inputs themselves (what a law of the inputs predicts)."""
    metric: ClassVar[str] = "mse"
    """The validation metric that selects the best checkpoint (`score` of it)."""
    quick: ClassVar[dict] = {}
    """Options (flat names) the general quick preset sets for this task."""

    @abc.abstractmethod
    def build(
        self, y: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Return `(inputs, targets, extras)` for trajectories `y` of shape (n, T, d)."""

    def check(self, steps: int) -> None:
        """Raise `WarpPhysError` if the task cannot be built on `steps` time steps."""

    def to_json(self) -> dict:
        return {"name": self.name, **dataclasses.asdict(self)}

    def check_training(self, forcing: float, *, where: str) -> None:
        """Raise if the task cannot train with teacher-forcing probability `forcing`."""

    def out_size(self, data_size: int, classes: int) -> int:
        """The size of a model's output at each step."""
        return data_size

    def forced(self, key, batch: int, steps: int, context: int, probability) -> jax.Array:
        """The training mask (batch, T): 1 where a step reads the truth. Every step, unless
        the task feeds back forecasts (then see `Forecast.forced`)."""
        return jnp.ones((batch, steps), jnp.float32)

    def inference_mask(self, n: int, steps: int, context: int) -> np.ndarray:
        """The test-time mask (n, T): every step reads its input."""
        return np.ones((n, steps), np.float32)

    def loss(self, mean, sigma, targets, labels, *, masked: bool = False) -> jax.Array:
        """The training loss of outputs `mean` (batch, T, out), `mean[:, k]` forecasting
        step k + 1: the MSE, or the Gaussian NLL when the model gives a `sigma`. With
        `masked`, a missing target (NaN) counts for nothing: the mean is over the observed
        ones (static, so complete data trains exactly as before)."""
        prediction, target = mean[:, :-1], targets[:, 1:]
        average = jnp.mean
        if masked:
            seen = jnp.isfinite(target)
            target = jnp.where(seen, target, prediction)  # no error, no NaN in the gradient
            average = lambda a: jnp.sum(jnp.where(seen, a, 0.0)) / jnp.maximum(seen.sum(), 1)  # noqa: E731
        if sigma is None:
            return average((prediction - target) ** 2)
        sigma = sigma[:, :-1]
        return (average(jnp.log(sigma) + 0.5 * ((target - prediction) / sigma) ** 2)
                + 0.5 * math.log(2 * math.pi))

    def metrics(self, outputs: np.ndarray, data, normaliser) -> dict:
        """Test metrics of model `outputs` (n, T, out; model units) on `data`, in the
        data's own units (see `regression_metrics`)."""
        return regression_metrics(normaliser.inverse(outputs.astype(np.float64)), data)

    def score(self, metrics: dict) -> float:
        """Lower is better: what selects the best checkpoint on the validation split."""
        return metrics["mse"]


def regression_metrics(prediction: np.ndarray, data) -> dict:
    """MSE and MAE on the forecast window (the steps after the context), the MSE over the
    whole sequence (context included), and the naive forecast (repeat the last context
    value). A rollout that leaves finite values is counted in `diverged`, never averaged
    in as NaN."""
    n, c = len(data), data.context
    finite = np.isfinite(prediction).all(axis=(1, 2))
    average = np.nanmean if np.isnan(data.targets).any() else np.mean  # skip missing values
    d = data.targets.shape[-1]  # the states; known input channels (times) follow them
    prediction, target, inputs = prediction[finite], data.targets[finite], data.inputs[finite, :, :d]
    if not finite.any():
        inf = float("inf")
        return {"mse": inf, "mae": inf, "mse_whole": inf, "naive_mse": inf, "naive_mae": inf,
                "n": n, "diverged": n}
    error = prediction[:, c - 1 : -1] - target[:, c:]
    naive = target[:, c:] - inputs[:, c - 1 : c]
    against_truth = {}
    if "clean" in data.extras and data.targets is data.y:  # noisy data: also the truth
        truth = data.extras["clean"][finite]
        against_truth = {"mse_clean": float(average((prediction[:, c - 1 : -1] - truth[:, c:]) ** 2)),
                         "naive_mse_clean": float(average((truth[:, c:] - inputs[:, c - 1 : c]) ** 2))}
    return {
        "mse": float(average(error**2)),
        "mae": float(average(np.abs(error))),
        "mse_whole": float(average((prediction[:, :-1] - target[:, 1:]) ** 2)),
        "naive_mse": float(average(naive**2)),
        "naive_mae": float(average(np.abs(naive))),
        "n": n,
        "diverged": int(n - finite.sum()),
        **against_truth,
    }


@dataclasses.dataclass(frozen=True)
class Forecast(AbstractTask):
    """Read the trajectory, predict its continuation: inputs and targets are `y` itself.
    The model reads the truth inside the context; after it, the truth with the
    teacher-forcing probability in training and its own forecasts at test time."""

    name = "forecast"
    feeds_back = True

    def build(self, y, rng):
        return y, y, {}

    def forced(self, key, batch, steps, context, probability):
        k = jnp.arange(steps)
        draw = jr.uniform(key, (batch, steps)) < probability
        return ((k < context) | draw).astype(jnp.float32)

    def inference_mask(self, n, steps, context):
        inside = (np.arange(steps) < context).astype(np.float32)
        return np.broadcast_to(inside, (n, steps)).copy()


@dataclasses.dataclass(frozen=True)
class RepeatCopy(AbstractTask):
    """The repeat-copy memory task (paper section 3.2, Lotka-Volterra).

    The input is the true trajectory for its first `L` steps and zero afterwards, `L`
    drawn uniformly per trajectory from `segment` (inclusive). The target is that
    `L`-step segment, then `gap` zero steps, then the segment again, and so on to the end
    of the sequence. The drawn `L` is stored as the extra `segment_length`. Inputs and
    targets differ, so the model always reads its inputs.

    **Arguments:**

    - `segment`: the (low, high) range of segment lengths, inclusive.
    - `gap`: the number of zero steps between repeats.
    """

    segment: tuple[int, int] = (32, 63)
    gap: int = 50
    name = "repeat-copy"
    targets_are_inputs = False

    def check(self, steps: int) -> None:
        low, high = self.segment
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
            raise WarpPhysError(
                f"RepeatCopy: segment must be integers 1 <= low <= high, got {self.segment}"
            )
        if high > steps:
            raise WarpPhysError(
                f"RepeatCopy: segment length up to {high} exceeds the {steps} time steps; "
                "shorten the segment or add steps"
            )
        if not isinstance(self.gap, int) or self.gap < 0:
            raise WarpPhysError(f"RepeatCopy: gap must be an integer >= 0, got {self.gap}")

    def check_training(self, forcing, *, where):
        if forcing < 1.0:
            raise WarpPhysError(
                f"{where} reads inputs that differ from its targets (repeat-copy), so it cannot "
                "feed back its own forecasts; set forcing=1")

    def build(self, y, rng):
        n, steps, _ = y.shape
        low, high = self.segment
        lengths = rng.integers(low, high + 1, size=n)
        k = np.arange(steps)
        inputs = np.where((k[None, :] < lengths[:, None])[..., None], y, 0.0)
        # Position of each target step inside its period of (segment + gap) steps.
        period = lengths[:, None] + self.gap
        phase = k[None, :] % period
        source = np.take_along_axis(y, np.minimum(phase, lengths[:, None] - 1)[..., None], axis=1)
        targets = np.where((phase < lengths[:, None])[..., None], source, 0.0)
        return inputs, targets, {"segment_length": lengths}


@dataclasses.dataclass(frozen=True)
class Classify(AbstractTask):
    """Predict a trajectory's class from the whole sequence: the logits at the last step,
    trained with cross-entropy, scored by accuracy. A system that declares a `label`
    gets this task."""

    name = "classify"
    metric = "accuracy"
    # A classifier never feeds its outputs back, so nothing needs bounding (the paper's
    # classification runs use no final activation): on JapaneseVowels the clip left test
    # accuracy at 88.6% (best epoch 5 of 40); none and 100 epochs: 91.6% (92.4% in
    # batches of 64, but BasicMotions' 34 training series then make one step an epoch).
    quick = dict(final="none", epochs=100)

    def build(self, y, rng):
        return y, y, {}

    def out_size(self, data_size, classes):
        return classes

    def loss(self, mean, sigma, targets, labels, *, masked=False):
        logits = mean[:, -1]
        if masked:  # sequences of different lengths: each is read at its last sample
            last = _last_observed(jnp.isfinite(targets).any(axis=-1), jnp)
            logits = mean[jnp.arange(mean.shape[0]), last]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def metrics(self, outputs, data, normaliser):
        last = _last_observed(np.isfinite(data.targets).any(axis=-1), np)
        logits = outputs[np.arange(len(outputs)), last]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, data.labels).mean()
        return {"accuracy": float(np.mean(logits.argmax(-1) == data.labels)),
                "cross_entropy": float(ce), "n": len(data)}

    def score(self, metrics):
        return 1 - metrics["accuracy"]


def _last_observed(observed, xp):
    """The index of each sequence's last observed step, from `observed` (n, T)."""
    return xp.max(xp.where(observed, xp.arange(observed.shape[1]), 0), axis=1)


TASKS = {cls.name: cls for cls in (Forecast, RepeatCopy, Classify)}


def task_from_json(data: dict) -> AbstractTask:
    """The task a dataset's metadata (`Dataset.meta["task"]`) records."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "name"}
    return TASKS[data["name"]](**fields)
