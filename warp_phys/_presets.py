"""Presets: named sets of option values, general ones here and a system's own in its file.

A preset is `{selector: {option: value}}`, a selector being `"*"` (every model) or a model
config class (`wp.WARPPhysConfig`; an abstract one such as `AbstractWARPConfig` selects
its whole family). Options are flat names, as in `warp_phys.make_config` and on the
command line; an entry applies to the objects that have the option and is skipped by the
others (a preset's `hidden` is the baselines', its `width` WARP's).

Layers, from the general to the specific: warp-phys's general preset (`quick`, good
defaults for any system: minutes on a laptop CPU; `paper`, the paper's settings for a
GPU), then the system's own `System(presets=...)` entry of the same name; within each,
`"*"` before class selectors. Explicit options override all of them.
"""

from pathlib import Path
from typing import Any

from ._config import FitConfig, from_flat, known_options
from ._errors import WarpPhysError
from ._models import (
    AbstractBaselineConfig, AbstractModelConfig, AbstractWARPConfig, WARPConfig, WARPPhysConfig,
    model_class,
)
from ._optimiser import AdaBelief, optimiser_class
from ._registry import load_system
from ._system import System


def quick(system: System) -> dict:
    """Minutes on a 2-core CPU; the option classes' defaults are this preset's values
    (root 1 -> 16 x 2 -> d, AdaBelief 1e-3 with A at 0.05x, forecasts clipped at 8
    standard deviations, batches of 16, 40 epochs), plus a subset of the data, a learned
    theta_0 where every trajectory starts from the same state, and for WARP-Phys the
    physics run one interval from each step's input where the law has a starting state.
    """
    return {
        "*": dict(n_train=1024, n_val=256, n_test=512,
                  init="learned" if system.fixed_initial_state else "hypernetwork", **system.task.quick),
        # On msd, seed 0, WARP-Phys's validation MSE reached 0.146 at epoch 25 from each
        # step's input, against 2.29 at best (then a collapse to 107) from x0. A closed
        # form has no starting state.
        WARPPhysConfig: dict(root_previous=system.solution is None),
    }


def paper(system: System) -> dict:
    """The paper's configurations (REFERENCE.md section 3; paper appendix C): root
    1 -> 48 x 3 -> d, hypernetwork with 2 hidden layers, AdaBelief 1e-5 with one rate for
    everything, batch 1024, reduce-on-plateau 0.5/20/50/0.01, 1000 epochs, the system's
    own split sizes."""
    return {
        "*": dict(width=48, depth=3, init="hypernetwork", hyper_hidden=2, epochs=1000,
                  batch_size=1024, lr=1e-5, a_lr_scale=1.0, forcing=0.25, plateau_patience=20,
                  plateau_accumulation=50, n_train=None, n_val=None,
                  n_test=None),
        AbstractWARPConfig: dict(final="dynamic-tanh", clip_bound=38.0),
        AbstractBaselineConfig: dict(final="none", clip_bound=38.0, hidden=64),
    }


GENERAL = {"quick": quick, "paper": paper}
"""The general presets, by name."""


def preset_names(system: System) -> tuple[str, ...]:
    """The presets `system` can use: the general ones and its own."""
    return tuple(dict.fromkeys([*GENERAL, *system.presets]))


def resolve_preset(system: System, preset: str, model: type[AbstractModelConfig]
                   ) -> tuple[dict[str, Any], dict[str, str]]:
    """The option values `preset` gives a `model` on `system`, and where each came from.

    **Returns:** `(values, sources)`: flat option values, and for each the layer that set
    it (`"quick"`, `"systems/msd.py quick"`, ...).
    """
    if preset not in preset_names(system):
        raise WarpPhysError(f"unknown preset {preset!r} for system {system.name!r}; choose one "
                            f"of {', '.join(preset_names(system))}")
    layers = []
    if preset in GENERAL:
        layers.append((preset, GENERAL[preset](system)))
    if preset in system.presets:
        layers.append((f"system {system.name!r} {preset}", system.presets[preset]))
    values, sources = {}, {}
    for source, table in layers:
        for selector, entries in _ordered(table, system):
            if selector == "*" or (isinstance(selector, type) and issubclass(model, selector)):
                values.update(entries)
                sources.update(dict.fromkeys(entries, source))
    return values, sources


def _ordered(table, system: System):
    """The entries of a preset table, `"*"` first, each checked."""
    for selector in table:
        if selector != "*" and not (isinstance(selector, type)
                                    and issubclass(selector, AbstractModelConfig)):
            raise WarpPhysError(
                f"system {system.name!r}: a preset selector must be '*' or a model config "
                f"class such as wp.WARPPhysConfig, got {selector!r}")
    keys = sorted(table, key=lambda s: s != "*")
    return [(s, dict(table[s])) for s in keys]


def resolve(system, preset: str = "quick", **overrides) -> tuple[FitConfig, dict[str, str]]:
    """The configuration `preset` gives `system`, with `overrides`, and the source of every
    option that is not a class default (`"quick"`, `"system 'msd' quick"`, `"given"`)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    declared = load_system(system, law=given.get("law") or None, context=given.get("context"))
    if given.get("law"):  # a law is re-read from anywhere
        given["law"] = _resolved(given["law"])
    model = model_class(given.get("model", WARPConfig.name))
    values, sources = resolve_preset(declared, preset, model)
    if declared.measured is not None:  # a file holds what it holds: no preset sizes
        for size in ("n_train", "n_val", "n_test"):
            values.pop(size, None)
    optimiser = optimiser_class(given.get("optimiser", values.get("optimiser", AdaBelief.name)))
    # A preset's options reach the objects that have them; explicit ones must apply.
    known = known_options(model, optimiser)
    values = {k: v for k, v in values.items() if k in known}
    sources = {k: v for k, v in sources.items() if k in values}
    values.update(given)
    sources.update(dict.fromkeys(given, "given"))
    if declared.measured is not None:  # the file's own path, so the run re-reads it anywhere
        name = declared.measured.path
    else:
        name = str(system) if isinstance(system, (str, Path)) else declared.name
    config = from_flat({**values, "system": str(name), "preset": preset})
    return config, {k: v for k, v in sources.items() if k not in ("system", "preset")}


def _resolved(law: str) -> str:
    """A law given as a path, made absolute (a name of a built-in system stays a name)."""
    return str(Path(law).resolve()) if law.endswith(".py") or "/" in law else law


def make_config(system, preset: str = "quick", **overrides) -> FitConfig:
    """A `FitConfig` for `system` from `preset`, with `overrides` by flat option name
    (None values keep the preset's).

    **Example:** `wp.make_config("msd", "quick", model="gru", lr=3e-4)`.
    """
    return resolve(system, preset, **overrides)[0]
