"""Model configurations: one final class per model family, each able to build its model.

`WARPConfig` (black-box WARP), `WARPPhysConfig` (the grey-box WARP-Phys), `GRUConfig`,
`LSTMConfig`, `NeuralODEConfig` and `NeuralCDEConfig` hold the hyperparameters of their
family (see `_options.py` for how fields are declared) and build a freshly initialised
model for a system and a data normaliser with `build(system, normaliser, key=...)`.
`MODELS` is the one registry from a model's name (`warp-phys fit --model NAME`,
`config.json`) to its class.

**Example:**

```python
config = wp.WARPConfig(width=16, depth=2, init="learned")
model = config.build(wp.load_system("msd"), key=jax.random.PRNGKey(0))
```
"""

import abc
import dataclasses
import functools
import math
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from ._baselines import make_gru, make_lstm, make_ncde, make_node
from ._compile import compile_system
from ._errors import WarpPhysError
from ._greybox import centre, physics_root
from ._identify import InContext
from ._unknown import hybrid_flow, term_networks
from ._normalise import Normaliser
from ._options import AbstractOptions, ConfigError, option
from ._system import System
from ._tasks import Classify
from ._warp import make_warp


Activation = Literal["swish", "relu", "tanh", "gelu", "softplus"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AbstractModelConfig(AbstractOptions, abc.ABC):
    """A model family's hyperparameters, and how to build the model.

    Subclasses set `name` (the registry key), `width_field` (the field `budget` sizes)
    and implement `_build`."""

    weight_space: ClassVar[bool] = False
    """Whether the model's hidden state is a weight vector (WARP's PCA, weights and
    matrices figures apply)."""
    grey_box: ClassVar[bool] = False
    """Whether the model infers the declared law's parameters (and reports them)."""
    width_field: ClassVar[str] = "hidden"

    budget: int | None = option(
        None, "Size the model's width to about this many trainable parameters (None: use "
        "the width as given).", rule="positive")

    @abc.abstractmethod
    def _build(self, system: System, normaliser: Normaliser | None, width: int, *, key):
        """The model at `width` (the value of `width_field`, or the one `budget` chose)."""

    def build(self, system: System, normaliser: Normaliser | None = None, *, key):
        """A freshly initialised model for `system`; `normaliser` (the training data's)
        tells physics-informed models the data's units. With `budget`, the width is the
        one whose trainable parameter count comes closest to it."""
        if self.budget is None:
            return self._build(system, normaliser, getattr(self, self.width_field), key=key)
        return sized(lambda width: self._build(system, normaliser, width, key=key), self.budget,
                     what=f"{type(self).__name__}(budget={self.budget})")

    def forward(self, model, x, forced):
        """The model's outputs `(mean, sigma)` on a batch in training (sigma None for a
        model without an uncertainty head)."""
        return model.unroll(x, forced)

    def check_training(self, task, training) -> None:
        """Raise if this model cannot train on `task` with the `training` settings."""

    def inference(self, model):
        """The model as it forecasts at test time (and validation): the trained model
        itself, or for WARP-Phys with `refine` the model that refines its inferred
        parameters on each context (`warp_phys.InContext`)."""
        return model


def sized(make, budget: int, *, what: str):
    """`make(width)` at the width whose parameter count is closest to `budget` (counted
    without allocating: `eqx.filter_eval_shape`)."""
    @functools.cache
    def count(width):
        leaves = jax.tree_util.tree_leaves(eqx.filter_eval_shape(make, width))
        return sum(math.prod(leaf.shape) for leaf in leaves
                   if isinstance(leaf, jax.ShapeDtypeStruct) and jnp.issubdtype(leaf.dtype, jnp.inexact))

    if count(1) == count(2):
        raise WarpPhysError(f"{what}: the model has a fixed size ({count(1)} parameters) that a "
                            "budget cannot change")
    low, high = 1, 2
    while count(high) < budget and high < 2**14:
        low, high = high, high * 2
    while high - low > 1:  # the count grows with width
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid) < budget else (low, mid)
    return make(min((low, high), key=lambda w: abs(count(w) - budget)))


def _units(normaliser: Normaliser | None, system: System, controls: bool = False):
    """The normaliser's shift and scale of the states, or with `controls` of the control
    inputs (the channels after the states)."""
    d, m = len(system.state), len(system.controls)
    where = slice(d, d + m) if controls else slice(0, d)
    return (0.0, 1.0) if normaliser is None else (normaliser.shift[where], normaliser.scale[where])


def _sizes(system: System) -> tuple[int, int]:
    d = len(system.state)
    return d, system.task.out_size(d, len(system.classes))


# ------------------------------------------------------------------------------ WARP


@dataclasses.dataclass(frozen=True, kw_only=True)
class AbstractWARPConfig(AbstractModelConfig):
    """What black-box WARP and WARP-Phys share: theta_0, the recurrence, its products."""

    weight_space = True
    width_field = "width"

    width: int = option(16, "Root network width (WARP-Phys: the width of the MLP of tau).",
                        rule="positive")
    depth: int = option(2, "Root network hidden layers.", rule="positive")
    activation: Activation = option("swish", "Activation of the root and the hypernetwork.")
    init: Literal["hypernetwork", "learned"] = option(
        "hypernetwork", "theta_0: hypernetwork (theta_0 = phi(x_0)) or learned (one shared "
        "theta_0; good where the initial state is fixed).")
    hyper_hidden: int = option(1, "Hidden layers of the hypernetwork.", rule="positive")
    final: Literal["none", "clip", "dynamic-tanh"] = option(
        "clip", "Final activation on the forecast: none, clip (at clip_bound) or dynamic-tanh.")
    clip_bound: float = option(8.0, "With final clip: forecasts are clipped to [-B, B] in "
                               "normalised units.", rule="positive")
    theta_clip: float = option(0.0, "Clip theta to [-w, w] after each update (0: off).",
                               rule="non-negative")
    root_previous: bool = option(False, "WARP: the root also reads the step's input; "
                                 "WARP-Phys: the physics runs one interval from the step's "
                                 "input instead of from x0.")
    fourier: int = option(0, "Sine/cosine pairs of tau added to the root's input.",
                          rule="non-negative")
    transition: Literal["dense", "diagonal-low-rank", "block-diagonal"] = option(
        "dense", "Structure of A: dense (the paper), diagonal-low-rank, or block-diagonal "
        "(one block per root layer).")
    rank: int = option(8, "Rank of the low-rank part of a diagonal-low-rank A.", rule="positive")
    precision: Literal["float32", "tf32", "bf16"] = option(
        "float32", "The products with A: float32, tf32 (TF32 tensor cores on a GPU) or bf16 "
        "(bfloat16 inputs, float32 state).")
    mode: Literal["recurrent", "convolutional"] = option(
        "recurrent", "recurrent, or convolutional (exact, for training that reads every input "
        "from the data: forcing 1 or classification).")
    fast_vjp: bool = option(True, "Gradient of A as one matrix product over all steps.")

    def __post_init__(self):
        super().__post_init__()
        if self.mode == "convolutional" and self.theta_clip:
            raise ConfigError(type(self).__name__, "mode",
                              "convolutional needs a linear recurrence (theta_clip 0)", self.mode)

    def forward(self, model, x, forced):
        if self.mode == "convolutional":  # every input is read from the data
            return model.convolve(x, fast_vjp=self.fast_vjp)
        return model.unroll(x, forced, fast_vjp=self.fast_vjp)

    def check_training(self, task, training):
        if self.mode == "convolutional" and task.feeds_back and (
                training.forcing < 1.0 or training.forcing_schedule != "constant"):
            raise WarpPhysError(
                "mode='convolutional' needs every input read from the data, but forecasting "
                f"with forcing={training.forcing:g} feeds back the model's own forecasts; set "
                "forcing=1 or mode='recurrent'")

    def _warp(self, system: System, width: int, root, uncertainty: bool, sigma_min: float, *,
              key):
        d, out = _sizes(system)
        return make_warp(
            d, out, system.steps, width=width, depth=self.depth, activation=self.activation,
            init=self.init, hyper_hidden=self.hyper_hidden, final=self.final,
            clip_bound=self.clip_bound, uncertainty=uncertainty, sigma_min=sigma_min,
            theta_clip=self.theta_clip, root_previous=self.root_previous, fourier=self.fourier,
            root=root, transition=self.transition, rank=self.rank, precision=self.precision,
            timed=system.timed, controls=len(system.controls), dtype=jnp.float32, key=key)


@dataclasses.dataclass(frozen=True, kw_only=True)
class WARPConfig(AbstractWARPConfig):
    """Black-box WARP: theta_t = A theta_{t-1} + B (x_t - x_{t-1}), y_t = f_{theta_t}(tau)
    with an MLP root (see `warp_phys.make_warp`)."""

    name = "warp"

    uncertainty: bool = option(False, "Add a sigma head; the loss becomes the Gaussian NLL.")
    sigma_min: float = option(1e-4, "Floor of the predicted sigma.", rule="positive")

    def _build(self, system, normaliser, width, *, key):
        return self._warp(system, width, None, self.uncertainty, self.sigma_min, key=key)


@dataclasses.dataclass(frozen=True, kw_only=True)
class WARPPhysConfig(AbstractWARPConfig):
    """WARP-Phys: WARP whose root is the system's own physics, compiled from its
    declaration; theta carries the physical parameters (see `warp_phys.physics_root`)."""

    name = "warp-phys"
    grey_box = True

    physics_form: Literal["mlp", "direct"] = option(
        "mlp", "mlp (theta = weights of an MLP of tau giving the parameters; the paper) or "
        "direct (theta = the parameters).")
    physics_reach: float = option(3.0, "How many half-widths of its training range a "
                                  "parameter may leave the centre by.", rule="positive")
    term_width: int = option(16, "For a law with unknown terms (wp.Unknown): the width of "
                             "each term's MLP.", rule="positive")
    term_depth: int = option(2, "Hidden layers of each unknown term's MLP.", rule="positive")
    term_shared: bool = option(True, "One set of unknown-term weights for every trajectory, "
                               "trained as the model's own; false: theta carries them and the "
                               "recurrence adapts them per trajectory.")
    refine: int = option(0, "Levenberg-Marquardt steps that refine the inferred parameters "
                         "on each context before forecasting (0: off).", rule="non-negative")
    refine_training: bool = option(False, "Refine in training too (the refined parameters "
                                   "as constants), not only in validation and tests.")

    def inference(self, model):
        return InContext(model, self.refine) if self.refine else model

    def forward(self, model, x, forced):
        if self.refine and self.refine_training:
            return InContext(model, self.refine).unroll(x, forced)
        return super().forward(model, x, forced)

    def _build(self, system, normaliser, width, *, key):
        shift, scale = _units(normaliser, system)
        root = physics_root(system, form=self.physics_form, shift=shift, scale=scale,
                            width=width, depth=self.depth, activation=self.activation,
                            reach=self.physics_reach, previous=self.root_previous,
                            timed=system.timed, key=jr.fold_in(key, 1),
                            controls=_units(normaliser, system, controls=True),
                            terms=dict(width=self.term_width, depth=self.term_depth,
                                       shared=self.term_shared))
        return self._warp(system, width, root, False, 1e-4, key=key)


# ------------------------------------------------------------------------------ baselines


@dataclasses.dataclass(frozen=True, kw_only=True)
class AbstractBaselineConfig(AbstractModelConfig):
    """What the baselines share: a hidden size and an optional bound on the forecasts."""

    hidden: int = option(64, "Hidden size.", rule="positive")
    final: Literal["none", "clip"] = option(
        "clip", "clip bounds the forecasts (fed back and scored) to [-B, B] in normalised "
        "units; none leaves them free.")
    clip_bound: float = option(8.0, "The bound B of final clip.", rule="positive")

    @property
    def bound(self) -> float | None:
        return self.clip_bound if self.final == "clip" else None


@dataclasses.dataclass(frozen=True, kw_only=True)
class GRUConfig(AbstractBaselineConfig):
    """A GRU reading WARP's inputs (see `warp_phys.make_gru`)."""

    name = "gru"

    def _build(self, system, normaliser, width, *, key):
        d, out = _sizes(system)
        return make_gru(d, out, system.steps, hidden=width, bound=self.bound,
                        timed=system.timed, controls=len(system.controls), key=key)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LSTMConfig(AbstractBaselineConfig):
    """An LSTM reading WARP's inputs (see `warp_phys.make_lstm`)."""

    name = "lstm"

    def _build(self, system, normaliser, width, *, key):
        d, out = _sizes(system)
        return make_lstm(d, out, system.steps, hidden=width, bound=self.bound,
                         timed=system.timed, controls=len(system.controls), key=key)


def _dt(system: System) -> float:
    return (system.t_span[1] - system.t_span[0]) / (system.steps - 1)


def _known_field(system: System, shift, scale, config, key) -> dict:
    """The Neural ODE's known-physics term: the declared vector field, or for a law with
    unknown terms the law with each term a network (`hybrid_flow`) and their weights."""
    if not system.unknowns:
        compiled = compile_system(system)
        return dict(vector_field=(compiled.law or compiled).vector_field)
    networks, weights = term_networks(system, width=config.term_width, depth=config.term_depth,
                                      activation="swish", shift=shift, scale=scale,
                                      key=jr.fold_in(key, 7))
    return dict(vector_field=hybrid_flow(system, networks).vector_field, terms=weights)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NeuralODEConfig(AbstractBaselineConfig):
    """A latent Neural ODE (see `warp_phys.make_node`); with `node_physics` the declared
    vector field is a known term (a universal differential equation)."""

    name = "node"

    depth: int = option(2, "Hidden layers of the vector field's MLP.", rule="positive")
    code: int = option(16, "Size of the context code.", rule="positive")
    node_physics: bool = option(False, "Add the declared vector field as a known term (a "
                                "law with unknown terms: each term a network).")
    term_width: int = option(16, "With node_physics and a law with unknown terms: the width "
                             "of each term's MLP.", rule="positive")
    term_depth: int = option(2, "Hidden layers of each unknown term's MLP.", rule="positive")

    def _build(self, system, normaliser, width, *, key):
        d, out = _sizes(system)
        physics = {}
        m = len(system.controls)
        if m:
            u_shift, u_scale = _units(normaliser, system, controls=True)
            physics = dict(controls=m, control_shift=u_shift, control_scale=u_scale)
        if self.node_physics:
            shift, scale = _units(normaliser, system)
            physics |= dict(p0=centre(system), shift=shift, scale=scale, t0=system.t_span[0],
                            **_known_field(system, shift, scale, self, key))
        return make_node(d, out, system.steps, dt=_dt(system), hidden=width, depth=self.depth,
                         code=self.code, classify=isinstance(system.task, Classify),
                         bound=self.bound, timed=system.timed, key=key, **physics)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NeuralCDEConfig(AbstractBaselineConfig):
    """A Neural CDE on the cubic path through the inputs (see `warp_phys.make_ncde`)."""

    name = "ncde"

    # At hidden 64 one msd training step (batch 64, T = 256, two solver steps per
    # interval) took 5.0 s on 2 CPU cores, at 32 1.3 s: the field maps hidden -> hidden
    # x (1 + d).
    hidden: int = option(32, "Hidden size (the field maps it to hidden x (1 + d)).",
                         rule="positive")
    depth: int = option(2, "Hidden layers of the vector field's MLP.", rule="positive")

    def _build(self, system, normaliser, width, *, key):
        d, out = _sizes(system)
        return make_ncde(d, out, system.steps, dt=_dt(system), hidden=width, depth=self.depth,
                         bound=self.bound, timed=system.timed, controls=len(system.controls),
                         key=key)


MODELS: dict[str, type[AbstractModelConfig]] = {
    cls.name: cls for cls in (WARPConfig, WARPPhysConfig, NeuralODEConfig, NeuralCDEConfig,
                              GRUConfig, LSTMConfig)
}
"""Every model family by name: the one place a name selects a class."""


def model_class(name: str) -> type[AbstractModelConfig]:
    """The config class of the model family `name`."""
    if name not in MODELS:
        raise WarpPhysError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]
