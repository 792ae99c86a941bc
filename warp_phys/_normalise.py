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
        states (`_known.py`), control inputs are scaled the same way, each on its own, and
        sample times are left as they are."""
        d = train.targets.shape[-1]
        known = train.inputs.shape[-1] - d
        values = np.concatenate([train.inputs[..., :d], train.targets], axis=1).reshape(-1, d)
        missing = np.isnan(train.targets).any()
        if missing:
            values = train.targets.reshape(-1, d)
        shift, scale = _affine(scaling, values, pooled=True, nan=missing)
        controls = train.extras.get("controls")
        u_shift, u_scale = (np.zeros(0), np.ones(0)) if controls is None else _affine(
            scaling, controls.reshape(-1, controls.shape[-1]), pooled=False, nan=True)
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


def _affine(scaling: Scaling, values: np.ndarray, *, pooled: bool, nan: bool):
    """Shift and scale per column of `values` (N, c): `standard`, `minmax` (over all
    columns together when `pooled`) or `none`; `nan` skips missing values. A column that
    does not vary keeps scale 1."""
    mean, std, low, high = ((np.nanmean, np.nanstd, np.nanmin, np.nanmax) if nan
                            else (np.mean, np.std, np.min, np.max))
    c = values.shape[1]
    if scaling == "standard":
        shift, scale = mean(values, axis=0), std(values, axis=0)
    elif scaling == "minmax":
        axis = None if pooled else 0
        low, high = low(values, axis=axis), high(values, axis=axis)
        shift = np.broadcast_to((high + low) / 2, (c,)).copy()
        scale = np.broadcast_to((high - low) / 2, (c,)).copy()
    else:
        shift, scale = np.zeros(c), np.ones(c)
    return shift, np.where(scale > 0, scale, 1.0)
