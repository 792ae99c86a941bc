"""Optimisers: one final class per Optax optimiser, with WARP's extras.

Every optimiser clips the gradient, scales the update of WARP's D x D matrix A by its own
factor (`a_lr_scale`) and reduces its learning rate on a plateau of the training loss
(`optax.contrib.reduce_on_plateau`). `OPTIMISERS` maps each name
(`warp-phys fit --optimiser NAME`) to its class.

**Example:** `wp.AdaBelief(1e-3, a_lr_scale=0.05)`.
"""

import dataclasses
from collections.abc import Callable
from typing import ClassVar, Literal

import equinox as eqx
import jax
import optax

from ._errors import WarpPhysError
from ._options import AbstractOptions, option
from ._warp import WARP


@dataclasses.dataclass(frozen=True)
class AbstractOptimiser(AbstractOptions):
    """The learning rate, its schedule and the gradient's treatment; subclasses choose the
    Optax rule (`rule`)."""

    lr: float = option(1e-3, "Learning rate.", rule="positive")
    _: dataclasses.KW_ONLY
    a_lr_scale: float = option(
        0.05, "Learning-rate multiplier for WARP's D x D matrix A: adaptive optimisers move "
        "every entry by about the learning rate, so A's spectrum moves like lr x sqrt(D).",
        rule="positive")
    grad_clip: Literal["global-norm", "elementwise", "none"] = option(
        "global-norm", "Gradient clipping: global-norm, elementwise or none.")
    grad_clip_value: float = option(1.0, "Clipping threshold.", rule="positive")
    plateau_factor: float = option(0.5, "Reduce-on-plateau: factor applied to the learning "
                                   "rate.", rule="positive")
    plateau_patience: int = option(10, "Reduce-on-plateau: epochs' worth of steps without "
                                   "improvement before reducing.", rule="positive")
    plateau_accumulation: int = option(16, "Reduce-on-plateau: steps averaged per check.",
                                       rule="positive")
    plateau_min_scale: float = option(0.01, "Reduce-on-plateau: the smallest scale of the "
                                      "learning rate.", rule="positive")

    transform: ClassVar[Callable[..., optax.GradientTransformation]]
    """The Optax rule of a final class, called with `learning_rate=`."""

    def __post_init__(self):
        if not hasattr(type(self), "transform"):
            raise TypeError(f"{type(self).__name__} is abstract: use one of "
                            "AdaBelief, Adam, AdamW, SGD, Lion, RMSProp")
        super().__post_init__()

    def rule(self, learning_rate: float) -> optax.GradientTransformation:
        """The Optax update rule at `learning_rate`."""
        return type(self).transform(learning_rate=learning_rate)

    def make(self) -> optax.GradientTransformationExtraArgs:
        """The full Optax chain: clipping, the rule, A's scale, reduce-on-plateau."""
        clip = {"global-norm": optax.clip_by_global_norm, "elementwise": optax.clip}
        return optax.chain(
            clip[self.grad_clip](self.grad_clip_value) if self.grad_clip in clip
            else optax.identity(),
            self.rule(self.lr),
            optax.masked(optax.scale(self.a_lr_scale), _only_A),
            optax.contrib.reduce_on_plateau(
                factor=self.plateau_factor, patience=self.plateau_patience,
                accumulation_size=self.plateau_accumulation,
                min_scale=self.plateau_min_scale),
        )


def _only_A(params):
    nothing = jax.tree_util.tree_map(lambda _: False, params)
    return eqx.tree_at(lambda m: m.A, nothing, True) if isinstance(params, WARP) else nothing


def lr_scale(opt_state) -> float:
    """The current reduce-on-plateau scale of the learning rate."""
    return float(optax.tree_utils.tree_get(opt_state, "scale"))


@dataclasses.dataclass(frozen=True)
class AdaBelief(AbstractOptimiser):
    """AdaBelief (`optax.adabelief`), the paper's optimiser."""

    name = "adabelief"
    transform = staticmethod(optax.adabelief)


@dataclasses.dataclass(frozen=True)
class Adam(AbstractOptimiser):
    """Adam (`optax.adam`)."""

    name = "adam"
    transform = staticmethod(optax.adam)


@dataclasses.dataclass(frozen=True)
class AdamW(AbstractOptimiser):
    """AdamW (`optax.adamw`, its default weight decay)."""

    name = "adamw"
    transform = staticmethod(optax.adamw)


@dataclasses.dataclass(frozen=True)
class SGD(AbstractOptimiser):
    """Plain stochastic gradient descent (`optax.sgd`)."""

    name = "sgd"
    transform = staticmethod(optax.sgd)


@dataclasses.dataclass(frozen=True)
class Lion(AbstractOptimiser):
    """Lion (`optax.lion`)."""

    name = "lion"
    transform = staticmethod(optax.lion)


@dataclasses.dataclass(frozen=True)
class RMSProp(AbstractOptimiser):
    """RMSProp (`optax.rmsprop`)."""

    name = "rmsprop"
    transform = staticmethod(optax.rmsprop)


OPTIMISERS: dict[str, type[AbstractOptimiser]] = {
    cls.name: cls for cls in (AdaBelief, Adam, AdamW, SGD, Lion, RMSProp)}
"""Every optimiser by name."""


def optimiser_class(name: str) -> type[AbstractOptimiser]:
    if name not in OPTIMISERS:
        raise WarpPhysError(f"unknown optimiser {name!r}; choose one of {', '.join(OPTIMISERS)}")
    return OPTIMISERS[name]
