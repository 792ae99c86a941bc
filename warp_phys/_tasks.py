"""Tasks: what a model reads and what it must predict, built from simulated trajectories.

A task turns a batch of trajectories `y` (n, T, d) into the model's `inputs` and its
`targets` (both (n, T, d)) plus per-trajectory extras worth storing. The default task,
`Forecast`, reads the trajectory and predicts its continuation; `RepeatCopy` is the
paper's Lotka-Volterra memory task.
"""

import abc
import dataclasses

import numpy as np

from ._errors import WarpPhysError


class AbstractTask(abc.ABC):
    """Builds model inputs and targets from simulated trajectories."""

    name: str

    @abc.abstractmethod
    def build(
        self, y: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Return `(inputs, targets, extras)` for trajectories `y` of shape (n, T, d)."""

    def check(self, steps: int) -> None:
        """Raise `WarpPhysError` if the task cannot be built on `steps` time steps."""

    def to_json(self) -> dict:
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class Forecast(AbstractTask):
    """Read the trajectory, predict its continuation: inputs and targets are `y` itself."""

    name = "forecast"

    def build(self, y, rng):
        return y, y, {}


@dataclasses.dataclass(frozen=True)
class RepeatCopy(AbstractTask):
    """The repeat-copy memory task (paper section 3.2, Lotka-Volterra).

    The input is the true trajectory for its first `L` steps and zero afterwards, `L`
    drawn uniformly per trajectory from `segment` (inclusive). The target is that
    `L`-step segment, then `gap` zero steps, then the segment again, and so on to the end
    of the sequence. The drawn `L` is stored as the extra `segment_length`.

    **Arguments:**

    - `segment`: the (low, high) range of segment lengths, inclusive.
    - `gap`: the number of zero steps between repeats.
    """

    segment: tuple[int, int] = (32, 63)
    gap: int = 50
    name = "repeat-copy"

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
