"""The configuration of a training run: which system, which model, how to train it.

A `FitConfig` is made of objects: a model config (`WARPConfig`, `GRUConfig`, ...; see
`_models.py`), an optimiser (`AdaBelief`, ...; `_optimiser.py`), the training loop
(`Training`) and the data (`Data`). Every field of every part has a distinct *flat
name*, the language shared by presets, `make_config` overrides and command-line flags.
A `FitConfig` is written to its run directory as `config.json` (`to_json`), and read
back by `from_json`, which also reads the flat files of warp-phys 0.1.
"""

import dataclasses
from typing import Any, Literal

from ._errors import WarpPhysError
from ._models import MODELS, AbstractModelConfig, AbstractWARPConfig, WARPConfig, model_class
from ._normalise import Scaling
from ._optimiser import OPTIMISERS, AbstractOptimiser, AdaBelief, optimiser_class
from ._options import AbstractOptions, ConfigError, option


@dataclasses.dataclass(frozen=True, kw_only=True)
class Data(AbstractOptions):
    """How many trajectories each split holds, and how they are normalised."""

    n_train: int | None = option(None, "Training trajectories (None: the system's declared "
                                 "size).", rule="positive")
    n_val: int | None = option(None, "Validation trajectories (None: the system's size).",
                               rule="positive")
    n_test: int | None = option(None, "Trajectories in each test split (None: the system's "
                                "size).", rule="positive")
    normalise: Scaling = option("standard", "standard, minmax or none (metrics are always in "
                                "data units).")
    law: str = option("", "A system file (or name) whose law describes the data (a file of "
                      "measured trajectories, or a system's simulations); WARP-Phys and the "
                      "Neural ODE's node_physics use it, e.g. a law with an unknown term.")
    context: int | None = option(None, "For a file of measured trajectories: the steps a "
                                 "forecast observes (None: the law's, else 40%).",
                                 rule="positive")

    def sizes(self) -> dict[str, int | None]:
        """The size of every split (`test` for each test split)."""
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Training(AbstractOptions):
    """The training loop: epochs, batches, teacher forcing, validation, checkpoints."""

    epochs: int = option(40, "Training epochs.", rule="positive")
    batch_size: int = option(16, "Minibatch size.", rule="positive")
    forcing: float = option(0.25, "Teacher-forcing probability per step after the context.",
                            rule="probability")
    forcing_schedule: Literal["constant", "linear"] = option(
        "constant", "constant, or linear (from 1 down to forcing over the epochs).")
    val_every: int = option(1, "Validate every this many epochs.", rule="positive")
    patience: int = option(0, "Stop after this many validations without improvement (0: "
                           "never).", rule="non-negative")
    checkpoint_every: int = option(1, "Write the resumable checkpoint every this many "
                                   "epochs (and after the first): with 1, a kill loses at "
                                   "most the epoch under way.", rule="positive")
    checkpoint_seconds: float = option(60.0, "Also write it once this many seconds have "
                                       "passed since the last one.", rule="positive")
    devices: int = option(1, "Data-parallel training over this many devices (the batch is "
                          "split, the model replicated).", rule="positive")

    def forcing_at(self, epoch: int) -> float:
        """The teacher-forcing probability of `epoch` (from 1)."""
        if self.forcing_schedule == "linear":  # from always forced down to `forcing`
            progress = min(1.0, (epoch - 1) / max(1, self.epochs - 1))
            return 1.0 - (1.0 - self.forcing) * progress
        return self.forcing


@dataclasses.dataclass(frozen=True, kw_only=True)
class FitConfig(AbstractOptions):
    """Everything that defines a training run (see `warp-phys fit --help`).

    **Arguments:**

    - `system`: a system name, a path to a `.py` file, or a file of measured trajectories
      (`.csv`, `.parquet`, `.npz`).
    - `model`: a model config, e.g. `wp.WARPConfig(width=16)` or `wp.GRUConfig()`.
    - `optimiser`: e.g. `wp.AdaBelief(1e-3, a_lr_scale=0.05)`.
    - `training`, `data`: `wp.Training(...)`, `wp.Data(...)`.
    - `seed`: for data, initialisation and batches.
    - `preset`: the preset the configuration was resolved from (recorded only).
    """

    system: str = option("msd", "A system name, a path to a .py file, or a file of "
                         "measured trajectories.")
    model: AbstractModelConfig = option(WARPConfig(), "The model and its hyperparameters.")
    optimiser: AbstractOptimiser = option(AdaBelief(), "The optimiser and its schedule.")
    training: Training = option(Training(), "The training loop.")
    data: Data = option(Data(), "The splits' sizes and normalisation.")
    seed: int = option(0, "Seed for data, initialisation and batches.", rule="non-negative")
    preset: str = option("", "The preset the configuration was resolved from ('' if none).")

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **super().to_json()}

    def load_system(self):
        """The system this configuration trains on (`warp_phys.load_system` of `system`,
        with `data.law` and `data.context` for a file of measured trajectories)."""
        from ._registry import load_system

        return load_system(self.system, law=self.data.law or None, context=self.data.context)

    def flat(self) -> dict[str, Any]:
        """Every option by its flat name (the model and optimiser by their names)."""
        values = {"system": self.system, "seed": self.seed, "preset": self.preset,
                  "model": self.model.name, "optimiser": self.optimiser.name}
        for part in (self.model, self.optimiser, self.training, self.data):
            values.update({f.name: getattr(part, f.name) for f in dataclasses.fields(part)})
        return values

    def replace(self, **flat) -> "FitConfig":
        """A copy with some options changed, by flat name (`config.replace(lr=3e-4)`)."""
        return from_flat({**self.flat(), **flat})

    @classmethod
    def from_json(cls, data: dict) -> "FitConfig":
        """A configuration from `config.json` (this format, or warp-phys 0.1's flat one)."""
        if "format" not in data:
            return _from_legacy(data)
        if data["format"] != FORMAT:
            raise WarpPhysError(f"config.json has format {data['format']}; this warp-phys reads "
                                f"format {FORMAT}: upgrade warp-phys")
        parts = {"model": (MODELS, data["model"]), "optimiser": (OPTIMISERS, data["optimiser"])}
        built = {name: _named(registry, dict(values)) for name, (registry, values) in parts.items()}
        return cls(system=data["system"], seed=data["seed"], preset=data["preset"],
                   training=Training(**data["training"]), data=Data(**data["data"]), **built)


FORMAT = 2
"""The version of `config.json`; files without one are warp-phys 0.1's flat format."""

_TOP = ("system", "seed", "preset", "model", "optimiser")


def _named(registry: dict, values: dict):
    name = values.pop("name")
    if name not in registry:
        raise WarpPhysError(f"config.json names an unknown {name!r}; known: {', '.join(registry)}")
    return registry[name](**values)


def owners(option_name: str) -> list[str]:
    """The option classes that have a field `option_name`."""
    classes = [*MODELS.values(), *OPTIMISERS.values(), Training, Data]
    return [c.__name__ for c in classes if option_name in c.fields()]


def known_options(model: type[AbstractModelConfig], optimiser: type[AbstractOptimiser]
                  ) -> set[str]:
    """The flat option names a configuration with these model and optimiser classes has."""
    return set().union(model.fields(), optimiser.fields(), Training.fields(), Data.fields(), _TOP)


def from_flat(values: dict[str, Any], *, strict: bool = True) -> FitConfig:
    """A `FitConfig` from flat option values (`model` and `optimiser` by name; missing
    options take their defaults). With `strict`, an option that no part of the chosen
    configuration has is an error naming where it belongs."""
    model = model_class(values.get("model", WARPConfig.name))
    optimiser = optimiser_class(values.get("optimiser", AdaBelief.name))
    rest = {k: v for k, v in values.items() if k not in _TOP}
    parts = {"model": model, "optimiser": optimiser, "training": Training, "data": Data}
    if strict:
        taken = set().union(*(cls.fields() for cls in parts.values()))
        for name in sorted(set(rest) - taken):
            where = owners(name)
            if not where:
                raise ConfigError("FitConfig", name, "is not an option of warp-phys")
            raise ConfigError(model.__name__, name, f"does not apply to model {model.name!r} "
                              f"(it is an option of {', '.join(where)})")
    built = {name: cls.from_values(rest, strict=False) for name, cls in parts.items()}
    top = {k: values[k] for k in ("system", "seed", "preset") if k in values}
    return FitConfig(**top, **built)


def _from_legacy(data: dict) -> FitConfig:
    """warp-phys 0.1's flat `config.json`: every option of every model in one object."""
    values = dict(data)
    for gone in ("normaliser", "loss"):  # the normaliser is the run's; the task sets the loss
        values.pop(gone, None)
    if not issubclass(model_class(values.get("model", WARPConfig.name)), AbstractWARPConfig):
        if values.get("final") == "dynamic-tanh":  # the baselines honoured only clip
            values["final"] = "none"
    return from_flat(values, strict=False)
