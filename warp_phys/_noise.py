"""Observation noise: what a measurement adds to the true state, declared per state.

A `System` may declare `noise={state: wp.Gaussian(std=...)}`; `generate` then draws the
noise from a random stream of its own (the parameters' and the task's draws are the same
with or without it) and adds it to the simulated trajectory. The clean trajectory is kept
in the dataset (`extras["clean"]`), and the test metrics are reported against it too
(`mse_clean`), so a model can be judged against the truth and not only the noisy data.
"""

import abc
import dataclasses
import math

import numpy as np

from ._errors import WarpPhysError


class AbstractNoise(abc.ABC):
    """Noise added to one observed state."""

    @abc.abstractmethod
    def sample(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noise for the observations `y` (n, T) of one state."""

    @abc.abstractmethod
    def to_json(self) -> dict:
        """What the declaration's hash records."""


@dataclasses.dataclass(frozen=True)
class Gaussian(AbstractNoise):
    """Gaussian observation noise, independent at every sample.

    **Arguments:**

    - `std`: an absolute standard deviation, in the state's units.
    - `relative`: a standard deviation relative to the state's own spread: this times the
      standard deviation of the state over each trajectory (a flat trajectory gets none).

    Both may be given; their variances add.

    **Example:** `noise={x: wp.Gaussian(std=0.01), v: wp.Gaussian(relative=0.05)}`.
    """

    std: float = 0.0
    relative: float = 0.0

    def __post_init__(self):
        for name in ("std", "relative"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value >= 0):
                raise WarpPhysError(f"Gaussian({name}={value!r}): {name} must be a finite "
                                    "number >= 0")
        if self.std == 0 and self.relative == 0:
            raise WarpPhysError("Gaussian(): give std= (absolute) or relative= (a share of "
                                "the state's spread), or declare no noise for that state")

    def sample(self, y, rng):
        spread = y.std(axis=1, keepdims=True)
        scale = np.sqrt(self.std**2 + (self.relative * spread) ** 2)
        return scale * rng.standard_normal(y.shape)

    def to_json(self) -> dict:
        return {"kind": "Gaussian", "std": float(self.std), "relative": float(self.relative)}


def add_noise(y: np.ndarray, noises: tuple, rng: np.random.Generator) -> np.ndarray:
    """`y` (n, T, d) with each state's noise added (`noises[j]` for state j, None for a
    state measured exactly)."""
    noisy = y.copy()
    for j, noise in enumerate(noises):
        if noise is not None:
            noisy[..., j] += noise.sample(y[..., j], rng)
    return noisy
