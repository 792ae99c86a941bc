"""Sampling: when a declared system's trajectories are observed, as a logger would.

By default every trajectory is observed at every point of its grid. `System(sampling=
wp.Sampling(drop=..., steps=..., jitter=...))` makes `generate` drop a share of the
samples, cut trajectories to lengths of their own and move each sample off the grid to a
random time, from random streams of its own, so a model can be trained and tested on data
with gaps, of different lengths and irregularly sampled, as measured data are. A dropped
or cut sample is a missing value (NaN in `Dataset.y` and `targets`; `inputs` hold the last
value seen), skipped by losses and metrics; irregular times reach the models as input
channels (`_known.py`).
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
    - `jitter`: irregular sampling, a share of the grid step in [0, 1): sample k >= 1 of
      each trajectory is taken at t_k - jitter * dt * U(0, 1) instead of on the grid point
      t_k (the first stays at the start), so times differ between trajectories and the
      gaps between samples vary from (1 - jitter) dt to (1 + jitter) dt. 0: on the grid.

    **Example:** `sampling=wp.Sampling(drop=0.2, steps=(150, 256), jitter=0.5)`.
    """

    drop: float = 0.0
    steps: tuple[int, int] | None = None
    jitter: float = 0.0

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
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, float)) or not (
                0 <= self.jitter < 1):
            raise WarpPhysError(f"Sampling(jitter={self.jitter!r}): jitter must be a share of "
                                "the grid step in [0, 1)")

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

    @property
    def irregular(self) -> bool:
        """Whether samples are moved off the grid (each trajectory has its own times)."""
        return self.jitter > 0

    def times(self, ts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """The sample times (n, T) of `n` trajectories on the grid `ts`."""
        dt = np.diff(ts)
        early = self.jitter * rng.random((n, len(ts) - 1)) * dt
        return np.concatenate([np.full((n, 1), ts[0]), ts[1:] - early], axis=1)

    def to_json(self) -> dict:
        # jitter only when set, so the hashes of declarations without it are unchanged.
        return {"drop": float(self.drop), "steps": None if self.steps is None else list(self.steps),
                **({"jitter": float(self.jitter)} if self.jitter else {})}
