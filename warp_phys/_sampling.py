"""Sampling: when a declared system's trajectories are observed, as a logger would.

By default every trajectory is observed at every point of its grid. `System(sampling=
wp.Sampling(drop=..., steps=...))` makes `generate` drop a share of the samples and cut
trajectories to lengths of their own, from a random stream of its own, so a model can be
trained and tested on data with gaps and of different lengths as measured data have.
A dropped or cut sample is a missing value (NaN in `Dataset.y` and `targets`; `inputs`
hold the last value seen), skipped by losses and metrics.
"""

import dataclasses

import numpy as np

from ._errors import WarpPhysError


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Which grid points of each trajectory are observed.

    **Arguments:**

    - `drop`: the share of samples after the first that are missing (each state of a
      dropped sample; the first sample is always observed), in [0, 1).
    - `steps`: `(low, high)`: each trajectory is observed for a number of steps drawn
      uniformly from this range (inclusive), then ends; None: every trajectory runs the
      whole grid. `low` must be above the system's context.

    **Example:** `sampling=wp.Sampling(drop=0.2, steps=(150, 256))`.
    """

    drop: float = 0.0
    steps: tuple[int, int] | None = None

    def __post_init__(self):
        if isinstance(self.drop, bool) or not isinstance(self.drop, (int, float)) or not (
                0 <= self.drop < 1):
            raise WarpPhysError(f"Sampling(drop={self.drop!r}): drop must be a share in [0, 1)")
        if self.steps is not None:
            low, high = self.steps
            if not (isinstance(low, int) and isinstance(high, int) and 2 <= low <= high):
                raise WarpPhysError(f"Sampling(steps={self.steps!r}): steps must be integers "
                                    "2 <= low <= high")
            object.__setattr__(self, "steps", (low, high))

    def check(self, steps: int, context: int, where: str) -> None:
        """Raise if this sampling cannot apply to a grid of `steps` with `context`."""
        if self.steps is not None and not (context < self.steps[0] and self.steps[1] <= steps):
            raise WarpPhysError(f"{where}: sampling steps {self.steps} must lie above the "
                                f"context ({context}) and within the grid's {steps} steps")

    def apply(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`y` (n, T, d) with the unobserved samples set to NaN."""
        n, steps, _ = y.shape
        observed = rng.random((n, steps)) >= self.drop
        observed[:, 0] = True
        if self.steps is not None:
            lengths = rng.integers(self.steps[0], self.steps[1] + 1, size=n)
            observed &= np.arange(steps)[None, :] < lengths[:, None]
        return np.where(observed[..., None], y, np.nan)

    def to_json(self) -> dict:
        return {"drop": float(self.drop), "steps": None if self.steps is None else list(self.steps)}
