"""The affine map between the data's units and a model's, fitted on the training split."""

import dataclasses
from typing import Literal

import numpy as np

from ._dataset import Dataset


Scaling = Literal["standard", "minmax", "none"]


@dataclasses.dataclass(frozen=True)
class Normaliser:
    """Affine map to the model's units, `(x - shift) / scale`, fitted on training data."""

    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, scaling: Scaling, train: Dataset) -> "Normaliser":
        """Fit to the inputs and targets of `train`: `standard` (zero mean, unit standard
        deviation per feature), `minmax` (to [-1, 1], global over features: the paper's
        Lotka-Volterra choice) or `none` (the identity). With missing values (NaN in the
        targets) only the observed targets count. Of the known input channels after the
        states (`_times.py`), control inputs are scaled the same way, each on its own, and
        sample times are left as they are."""
        d = train.targets.shape[-1]
        known = train.inputs.shape[-1] - d
        values = np.concatenate([train.inputs[..., :d], train.targets], axis=1).reshape(-1, d)
        missing = np.isnan(train.targets).any()
        if missing:
            values = train.targets.reshape(-1, train.y.shape[-1])
        mean, std, low, high = ((np.nanmean, np.nanstd, np.nanmin, np.nanmax) if missing
                                else (np.mean, np.std, np.min, np.max))
        if scaling == "standard":
            shift, scale = mean(values, axis=0), std(values, axis=0)
        elif scaling == "minmax":
            low, high = low(values), high(values)
            shift = np.full(values.shape[1], (high + low) / 2)
            scale = np.full(values.shape[1], (high - low) / 2)
        else:
            shift, scale = np.zeros(values.shape[1]), np.ones(values.shape[1])
        scale = np.where(scale > 0, scale, 1.0)
        u_shift, u_scale = _controls(scaling, train.extras.get("controls"))
        m = len(u_shift)  # each control twice (now and next), then the times, left as they are
        return cls(np.concatenate([shift, u_shift, u_shift, np.zeros(known - 2 * m)]),
                   np.concatenate([scale, u_scale, u_scale, np.ones(known - 2 * m)]))

    def to_json(self):
        return {"shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, data):
        return cls(np.asarray(data["shift"]), np.asarray(data["scale"]))

    def __call__(self, x):
        """`x` (..., c) in model units: c is every input channel, or the states alone (a
        target or a forecast)."""
        c = x.shape[-1]
        return (x - self.shift[:c]) / self.scale[:c]

    def inverse(self, x):
        c = x.shape[-1]
        return x * self.scale[:c] + self.shift[:c]


def _controls(scaling: Scaling, controls: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Shift and scale of each control (n, T, m) of the training split (none: empty)."""
    if controls is None or not controls.shape[-1]:
        return np.zeros(0), np.ones(0)
    values = controls.reshape(-1, controls.shape[-1])
    if scaling == "standard":
        shift, scale = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    elif scaling == "minmax":
        low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        shift, scale = (high + low) / 2, (high - low) / 2
    else:
        shift, scale = np.zeros(values.shape[1]), np.ones(values.shape[1])
    return shift, np.where(scale > 0, scale, 1.0)
