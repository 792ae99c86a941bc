"""Distributions of the quantities a `System` samples: parameters and initial states.

Every distribution has two boxes: `train`, where training, validation and in-distribution
test data are drawn, and `ood`, the wider box that out-of-distribution test data come
from. The OoD box must contain the train box; when it is not given it equals the train
box, and the quantity then never makes a trajectory out of distribution.
"""

import abc
import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from ._errors import WarpPhysError


Box = Literal["train", "ood"]


class AbstractDistribution(abc.ABC):
    """A distribution with a training box and an out-of-distribution box."""

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator, n: int, box: Box) -> np.ndarray:
        """Draw `n` values from the `box` ("train" or "ood") as a float64 array."""

    @abc.abstractmethod
    def in_box(self, values: np.ndarray, box: Box) -> np.ndarray:
        """Whether each value lies in the `box`, as a boolean array."""

    @property
    @abc.abstractmethod
    def has_ood(self) -> bool:
        """Whether the OoD box is larger than the train box."""

    @abc.abstractmethod
    def describe(self, box: Box) -> str:
        """The box as short text, e.g. `[0.5, 1.5]`."""

    @abc.abstractmethod
    def bounds(self, box: Box) -> tuple[float, float]:
        """The smallest interval `(low, high)` holding every value of the `box`."""

    def check(self, name: str) -> None:
        """Raise `WarpPhysError` naming `name` if the declaration is invalid."""


def _as_range(name: str, which: str, value) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise WarpPhysError(
            f"{name}: {which} range must be a pair (low, high) of numbers, got {value!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise WarpPhysError(f"{name}: {which} range {value!r} must be finite")
    if low > high:
        raise WarpPhysError(
            f"{name}: {which} range has low > high ({low:g} > {high:g}); "
            f"write it as ({high:g}, {low:g})"
        )
    return low, high


@dataclasses.dataclass(frozen=True)
class _AbstractInterval(AbstractDistribution):
    train: tuple[float, float]
    ood: tuple[float, float] | None = None

    def bounds(self, box: Box) -> tuple[float, float]:
        return self.train if box == "train" or self.ood is None else self.ood

    def check(self, name: str) -> None:
        train = _as_range(name, "train", self.train)
        if self.ood is None:
            return
        ood = _as_range(name, "ood", self.ood)
        if ood[0] > train[0] or ood[1] < train[1]:
            raise WarpPhysError(
                f"{name}: OoD range ({ood[0]:g}, {ood[1]:g}) does not contain the train "
                f"range ({train[0]:g}, {train[1]:g}); widen the OoD range to include it"
            )

    def in_box(self, values: np.ndarray, box: Box) -> np.ndarray:
        low, high = self.bounds(box)
        return (values >= low) & (values <= high)

    @property
    def has_ood(self) -> bool:
        return self.ood is not None and tuple(self.ood) != tuple(self.train)

    def describe(self, box: Box) -> str:
        low, high = self.bounds(box)
        return f"[{low:g}, {high:g}]"


@dataclasses.dataclass(frozen=True)
class Uniform(_AbstractInterval):
    """Uniform on `train=(low, high)`; OoD data is uniform on `ood=(low, high)`.

    **Arguments:**

    - `train`: the training range.
    - `ood`: the out-of-distribution range; it must contain `train`. Defaults to `train`.

    **Example:**

    ```python
    length = wp.Uniform(train=(0.5, 1.5), ood=(0.25, 2.0))
    ```
    """

    def sample(self, rng, n, box):
        low, high = self.bounds(box)
        # What rng.uniform computes, without its refusal of a (0.0, -0.0) range.
        return low + (high - low) * rng.random(n)


@dataclasses.dataclass(frozen=True)
class LogUniform(_AbstractInterval):
    """Log-uniform (uniform in `log x`) on a positive range; for scales spanning decades.

    **Arguments:** as `Uniform`; both ranges must be positive.
    """

    def check(self, name: str) -> None:
        super().check(name)
        for which, box in (("train", self.train), ("ood", self.ood)):
            if box is not None and min(box) <= 0:
                raise WarpPhysError(
                    f"{name}: LogUniform {which} range {tuple(box)} must be positive; "
                    "use wp.Uniform for ranges that reach zero or below"
                )

    def sample(self, rng, n, box):
        low, high = self.bounds(box)
        return np.exp(rng.uniform(math.log(low), math.log(high), size=n))


@dataclasses.dataclass(frozen=True)
class Choice(AbstractDistribution):
    """A value chosen uniformly from a finite set; OoD data chooses from `ood`.

    Use it for discrete parameters, and for class labels (`System(label=...)`): the class
    of a trajectory is the index of its value in `train`.

    **Arguments:**

    - `train`: the values for training data.
    - `ood`: the values for out-of-distribution data; a superset of `train`.
    """

    train: Sequence[float]
    ood: Sequence[float] | None = None

    def _values(self, box: Box) -> tuple[float, ...]:
        values = self.train if box == "train" or self.ood is None else self.ood
        return tuple(float(v) for v in values)

    def check(self, name: str) -> None:
        for which, values in (("train", self.train), ("ood", self.ood)):
            if values is None:
                continue
            try:
                floats = [float(v) for v in values]
            except (TypeError, ValueError):
                raise WarpPhysError(
                    f"{name}: Choice {which} values must be numbers, got {values!r}"
                ) from None
            if not floats:
                raise WarpPhysError(f"{name}: Choice {which} values must not be empty")
        if self.ood is not None and not set(self._values("train")) <= set(
            self._values("ood")
        ):
            raise WarpPhysError(
                f"{name}: Choice OoD values {list(self.ood)} do not contain the train "
                f"values {list(self.train)}; add them to ood"
            )

    def sample(self, rng, n, box):
        values = np.asarray(self._values(box))
        return values[rng.integers(0, len(values), size=n)]

    def in_box(self, values, box):
        return np.isin(values, np.asarray(self._values(box)))

    @property
    def has_ood(self) -> bool:
        return self.ood is not None and set(self._values("ood")) != set(
            self._values("train")
        )

    def describe(self, box: Box) -> str:
        return "{" + ", ".join(f"{v:g}" for v in self._values(box)) + "}"

    def bounds(self, box: Box) -> tuple[float, float]:
        values = self._values(box)
        return min(values), max(values)

    def index(self, values: np.ndarray) -> np.ndarray:
        """The position of each value in `train`: the class index of a label."""
        lookup = {v: i for i, v in enumerate(self._values("train"))}
        return np.asarray([lookup[float(v)] for v in values], dtype=np.int64)
