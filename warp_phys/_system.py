"""The declaration of a dynamical system: the one place its physics is written down.

A `System` is plain data (SymPy expressions, numbers and distributions), validated when
it is constructed. It is not a JAX object: `warp_phys.compile_system` turns it into JAX
functions, and `warp_phys.generate` into datasets.
"""

import dataclasses
import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import diffrax as dfx
import sympy as sp

from ._distributions import AbstractDistribution, Choice
from ._errors import WarpPhysError
from ._noise import AbstractNoise
from ._sampling import Sampling
from ._tasks import AbstractTask, Classify, Forecast
from ._unknown import terms_of


SPLITS = ("train", "val", "test-id", "test-ood", "test-paper")
"""Every split a system generates. `train`, `val` and `test-id` are drawn from the train
box; `test-ood` from the OoD box but outside the train box in at least one quantity;
`test-paper` from the whole OoD box (the paper's protocol, a mix of ID and OoD)."""

DEFAULT_SIZES = {"train": 1024, "val": 256, "test": 512}


@dataclasses.dataclass(frozen=True)
class Measurements:
    """Where a system's trajectories come from when they are measured, not simulated:
    a file of the user's own (see `warp_phys.read_trajectories`).

    - `path`: the file (`.csv`, `.parquet` or `.npz`).
    - `sha256`: its contents' SHA-256 when it was read (part of the system's hash, so
      runs trained on an earlier version of the file are stale).
    - `splits`: the splits it holds, in `SPLITS` order.
    - `rule`: how trajectories were assigned to splits (its `split` column, or a seeded
      draw by trajectory).
    - `same_start`: whether every trajectory starts from the same state.
    - `classes`: the class names of labelled measurements (a classification task), else
      empty.
    - `irregular`: whether the trajectories' times lie on no common grid (each has its
      own, read by the models as input channels: `_known.py`).
    """

    path: str
    sha256: str
    splits: tuple[str, ...]
    rule: str
    same_start: bool = False
    classes: tuple[str, ...] = ()
    irregular: bool = False
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _sympify(value, what: str) -> sp.Expr:
    try:
        return sp.sympify(value)
    except (sp.SympifyError, TypeError) as e:
        raise WarpPhysError(f"{what} is not a SymPy expression: {value!r} ({e})") from None


def _as_number(value) -> float | None:
    """`value` as a float if it is a plain number or a numeric SymPy expression."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, sp.Basic) and value.is_number:
        try:
            return float(value)
        except TypeError:
            return None
    try:
        import numpy as np

        if isinstance(value, np.number):
            return float(value)
    except ImportError:  # pragma: no cover
        pass
    return None


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class System:
    """A dynamical system declared with SymPy: equations, parameters, initial states, grid.

    **Arguments:**

    - `name`: a short name (letters, digits, `-`, `_`, `.`), used for files and runs.
    - `state`: the state symbols, in order.
    - `equations`: `d/dt` of each state, as SymPy expressions in the state, the
      parameters and the time symbol. Optional when `solution` is given.
    - `parameters`: a mapping from parameter symbol to a fixed number or a distribution
      (`wp.Uniform`, `wp.LogUniform`, `wp.Choice`). Fixed constants are substituted;
      distributed ones are sampled per trajectory and stored with the data.
    - `initial_state`: a mapping from each state symbol to a number, a distribution or
      a SymPy expression of the parameters. Not needed when `solution` is given.
    - `t_span`: the (start, end) of the time grid.
    - `steps`: the number of uniformly spaced time points, start and end included (>= 2).
    - `context`: how many leading steps a forecasting model observes (1 <= context < steps).
    - `solution`: an optional closed form, the state as expressions of the time symbol
      and the parameters. Used as is for generation, and (by the grey-box models) with
      its free parameters learned.
    - `label`: an optional parameter with a `wp.Choice` distribution whose value is the
      class of a trajectory (classification tasks); the class index is the position of
      the value in the choice's train values.
    - `task`: what models read and predict; `wp.Forecast()` (default) or
      `wp.RepeatCopy(...)`.
    - `sizes`: default number of trajectories, `{"train": ..., "val": ..., "test": ...}`
      (the test size applies to each test split).
    - `time`: the time symbol used in the expressions (default `t`).
    - `noise`: observation noise per state, `{state: wp.Gaussian(std=..., relative=...)}`,
      added by `generate` from a random stream of its own; the clean trajectories are
      kept and the test metrics reported against them as well (`mse_clean`).
    - `sampling`: which samples are observed and when, `wp.Sampling(drop=..., steps=(low,
      high), jitter=...)`: a share of dropped samples, per-trajectory lengths and random
      sample times off the grid, drawn by `generate` from random streams of their own
      (forecasting tasks only; default: every grid point).
    - `measured`: `warp_phys.Measurements` when the trajectories come from a file, not
      from simulation: then `equations` and `solution` may both be absent (nothing is
      known of the law), and the grid (`t_span`, `steps`) is the file's. Made by
      `warp_phys.load_system("runs.csv")`, never by hand.
    - `simulated`: the declaration whose simulation gives the data when this system is
      a law fitted to another system's trajectories (a law with an unknown term, say):
      the splits, their sizes and the grid are its. Made by
      `warp_phys.load_system("pendulum", law="systems/partial.py")`, never by hand.
    - `solver`: the Diffrax solver of a system with neither a closed form nor linear
      equations: `diffrax.Kvaerno5()` for a stiff system, which generation and grey-box
      models then both use (an explicit solver declared here serves generation; grey-box
      models train with Tsit5). Default `None`: Dopri8, and generation hands over to
      Kvaerno5 (with a warning) when Dopri8 grinds (see `warp_phys.ODEFlow`).
    - `controls`: inputs that drive the system, `{u: signal}`: symbols the equations use
      beside the states, each with the signal generation draws for it, an expression of
      the time and of parameters (e.g. `a * sp.sin(w * t)` with `a`, `w` declared in
      `parameters` with train and OoD ranges, so each trajectory gets a signal of its
      own), or None for a law whose controls come only from a file's `u:` columns. The
      values at each sample reach the models as input channels, now and at the next
      sample (known to the experimenter, never forecast); a grey-box law reads them
      there, linearly interpolated between samples.
    - `description`, `units`: free text, shown by `warp-phys systems`.
    - `presets`: training presets of this system, `{preset: {selector: {option: value}}}`
      with `"*"` (every model) or a model config class (`wp.WARPPhysConfig`) as the
      selector and option names as in `warp_phys.make_config`; layered over warp-phys's
      general presets (see `warp_phys.resolve_preset`). They do not enter `hash`.

    **Example:**

    ```python
    theta, omega = sp.symbols("theta omega")
    g, length = sp.symbols("g length", positive=True)
    system = wp.System(
        name="pendulum",
        state=[theta, omega],
        equations=[omega, -(g / length) * sp.sin(theta)],
        parameters={g: 9.81, length: wp.Uniform(train=(0.5, 1.5), ood=(0.25, 2.0))},
        initial_state={theta: wp.Uniform(train=(-1.0, 1.0)), omega: 0.0},
        t_span=(0.0, 5.0), steps=200, context=50,
    )
    ```
    """

    name: str
    state: Sequence[sp.Symbol]
    equations: Sequence[Any] | None = None
    parameters: Mapping[sp.Symbol, Any] = dataclasses.field(default_factory=dict)
    initial_state: Mapping[sp.Symbol, Any] = dataclasses.field(default_factory=dict)
    t_span: tuple[float, float]
    steps: int
    context: int
    solution: Sequence[Any] | Any | None = None
    label: sp.Symbol | None = None
    task: AbstractTask = Forecast()
    sizes: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SIZES))
    time: sp.Symbol = sp.Symbol("t")
    solver: dfx.AbstractAdaptiveSolver | None = None
    controls: Mapping[sp.Symbol, Any] = dataclasses.field(default_factory=dict)
    noise: Mapping[sp.Symbol, AbstractNoise] = dataclasses.field(default_factory=dict)
    sampling: Sampling | None = None
    measured: Measurements | None = None
    simulated: "System | None" = None
    description: str = ""
    units: Mapping[sp.Symbol, str] = dataclasses.field(default_factory=dict)
    presets: Mapping[str, Mapping] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise WarpPhysError(
                f"name must be letters, digits, '-', '_' or '.', got {self.name!r}"
            )
        set_ = functools.partial(object.__setattr__, self)
        where = f"system {self.name!r}"
        set_("state", self._checked_state(where))
        set_("parameters", self._checked_parameters(where))
        self._check_names(where)
        set_("controls", self._checked_controls(where))
        if self.solution is not None:
            set_("solution", self._checked_solution(where))
        set_("equations", self._checked_equations(where))
        set_("initial_state", self._checked_initial_state(where))
        set_("t_span", self._checked_grid(where))
        set_("task", self._checked_task(where))
        set_("noise", self._checked_noise(where))
        if self.sampling is not None:
            if not isinstance(self.sampling, Sampling):
                raise WarpPhysError(f"{where}: sampling must be a wp.Sampling(...), got "
                                    f"{self.sampling!r}")
            if not isinstance(self.task, Forecast):
                raise WarpPhysError(f"{where}: sampling applies to forecasting; a "
                                    f"{self.task.name} task reads every step")
            self.sampling.check(self.steps, self.context, where)
        if self.measured is not None and not isinstance(self.measured, Measurements):
            raise WarpPhysError(f"{where}: measured must be a warp_phys.Measurements or None")
        if self.simulated is not None and not isinstance(self.simulated, System):
            raise WarpPhysError(f"{where}: simulated must be a warp_phys.System or None")
        set_("sizes", self._checked_sizes(where))
        if self.solver is not None and not isinstance(self.solver, dfx.AbstractAdaptiveSolver):
            raise WarpPhysError(
                f"{where}: solver must be a Diffrax solver with an error estimate, such as "
                f"diffrax.Kvaerno5() for a stiff system, or None; got {self.solver!r}")
        set_("units", {getattr(k, "name", str(k)): str(v) for k, v in dict(self.units).items()})
        if not isinstance(self.presets, Mapping) or not all(
                isinstance(v, Mapping) for v in self.presets.values()):
            raise WarpPhysError(
                f"{where}: presets must be a dict {{preset name: {{'*' or a model config "
                "class: {option: value}}}}}, e.g. {'quick': {'*': dict(lr=1e-3)}}"
            )

    def _checked_state(self, where):
        state = tuple(self.state) if isinstance(self.state, Sequence) else None
        if not state or not all(isinstance(s, sp.Symbol) for s in state):
            raise WarpPhysError(
                f"{where}: state must be a non-empty list of SymPy symbols, got {self.state!r}"
            )
        if len({s.name for s in state}) != len(state):
            raise WarpPhysError(f"{where}: state symbols must have distinct names: {state}")
        if not isinstance(self.time, sp.Symbol):
            raise WarpPhysError(f"{where}: time must be a SymPy symbol, got {self.time!r}")
        return state

    def _checked_parameters(self, where):
        if not isinstance(self.parameters, Mapping):
            raise WarpPhysError(
                f"{where}: parameters must be a dict {{symbol: value or distribution}}"
            )
        parameters = {}
        for symbol, value in self.parameters.items():
            if not isinstance(symbol, sp.Symbol):
                raise WarpPhysError(
                    f"{where}: parameter keys must be SymPy symbols, got {symbol!r}"
                )
            if isinstance(value, AbstractDistribution):
                value.check(f"{where}, parameter {symbol.name!r}")
            elif (number := _as_number(value)) is not None and math.isfinite(number):
                value = number
            else:
                raise WarpPhysError(
                    f"{where}: parameter {symbol.name!r} has no usable value ({value!r}); "
                    "give a finite number to fix it or a distribution such as "
                    "wp.Uniform(train=(low, high))"
                )
            parameters[symbol] = value
        return parameters

    def _check_names(self, where):
        state, parameters = self.state, self.parameters
        names = [s.name for s in state] + [s.name for s in parameters]
        if len(set(names)) != len(names):
            raise WarpPhysError(
                f"{where}: a parameter has the same name as a state or another parameter "
                f"({names}); rename it"
            )
        if self.time.name in names:
            raise WarpPhysError(
                f"{where}: {self.time.name!r} is the time symbol and cannot be a state or "
                "a parameter; rename it or pass time=<another symbol>"
            )

    def _checked_solution(self, where):
        state, parameters = self.state, self.parameters
        solution = self.solution
        if not isinstance(solution, Sequence) or isinstance(solution, str):
            solution = [solution]
        solution = tuple(
            _sympify(s, f"{where}: solution {i}") for i, s in enumerate(solution)
        )
        if len(solution) != len(state):
            raise WarpPhysError(
                f"{where}: {len(solution)} solution expression(s) for "
                f"{len(state)} state variable(s); give one per state"
            )
        for i, expr in enumerate(solution):
            self._check_symbols(
                expr, {*parameters, self.time}, f"solution for {state[i].name}"
            )
        return solution

    def _checked_controls(self, where):
        if not isinstance(self.controls, Mapping):
            raise WarpPhysError(f"{where}: controls must be a dict {{input symbol: signal "
                                "expression or None}}")
        taken = {s.name for s in (*self.state, *self.parameters, self.time)}
        controls = {}
        for symbol, signal in self.controls.items():
            if not isinstance(symbol, sp.Symbol) or symbol.name in taken:
                raise WarpPhysError(f"{where}: control {symbol!r} must be a SymPy symbol of its "
                                    "own (not a state, a parameter or the time)")
            if signal is not None:
                signal = _sympify(signal, f"{where}: control {symbol.name!r}")
                self._check_symbols(signal, {*self.parameters, self.time},
                                    f"signal of control {symbol.name}")
            controls[symbol] = signal
        if controls and self.solution is not None:
            raise WarpPhysError(f"{where}: a closed-form solution cannot take control inputs; "
                                "declare equations instead")
        return controls

    def _checked_equations(self, where):
        state = self.state
        known = {*self.state, *self.parameters, self.time, *self.controls}
        if self.equations is None:
            if self.solution is None and self.measured is None:
                raise WarpPhysError(
                    f"{where}: give equations=[d/dt of each state] or a closed-form "
                    "solution=[...]"
                )
        else:
            if not isinstance(self.equations, Sequence) or isinstance(self.equations, str):
                raise WarpPhysError(f"{where}: equations must be a list of expressions")
            equations = tuple(
                _sympify(e, f"{where}: equation {i}") for i, e in enumerate(self.equations)
            )
            if len(equations) != len(state):
                raise WarpPhysError(
                    f"{where}: {len(equations)} equation(s) for {len(state)} state "
                    f"variable(s) {[s.name for s in state]}; give d/dt of each state, in order"
                )
            for s, expr in zip(state, equations):
                self._check_symbols(expr, known, f"equation for d{s.name}/dt")
            self._check_unknowns(equations, where)
            return equations
        return None

    def _check_unknowns(self, equations, where):
        """Each unknown term (`wp.Unknown`) reads states or the time, and one name is one
        function of one list of inputs."""
        readable = {*self.state, self.time}
        seen: dict[str, tuple] = {}
        for term in terms_of(equations):
            name = term.func.__name__
            for arg in term.args:
                if arg not in readable:
                    raise WarpPhysError(
                        f"{where}: the unknown term {term} reads {arg}, which is not a state or "
                        f"the time {self.time.name!r}; a term's inputs are the system's states "
                        "or its time (wp.Unknown(name, *symbols))")
            if seen.setdefault(name, term.args) != term.args:
                raise WarpPhysError(
                    f"{where}: the unknown term {name!r} is written with inputs "
                    f"{list(seen[name])} and {list(term.args)}; one term is one function of "
                    "the same inputs everywhere")
        if seen and self.solution is not None:
            raise WarpPhysError(f"{where}: a closed-form solution cannot hold unknown terms; "
                                "declare the equations alone")
        if seen and self.controls:
            raise WarpPhysError(f"{where}: unknown terms in a law with control inputs are not "
                                "supported yet; declare the controls' effect in full")

    def _checked_initial_state(self, where):
        state, parameters = self.state, self.parameters
        if not isinstance(self.initial_state, Mapping):
            raise WarpPhysError(f"{where}: initial_state must be a dict {{state: value}}")
        initial = {}
        if self.solution is None and self.equations is None:  # measured, with no law
            if self.initial_state:
                raise WarpPhysError(f"{where}: a system with no law has no initial_state")
        elif self.solution is not None:
            if self.initial_state:
                raise WarpPhysError(
                    f"{where}: the initial state follows from solution=; remove initial_state"
                )
        else:
            for symbol in self.initial_state:
                if symbol not in state:
                    raise WarpPhysError(
                        f"{where}: initial_state names {symbol!r}, which is not a state "
                        f"variable {[s.name for s in state]}"
                    )
            for s in state:
                if s not in self.initial_state:
                    raise WarpPhysError(
                        f"{where}: initial_state has no value for state {s.name!r}; give a "
                        "number, a distribution or an expression of the parameters"
                    )
                value = self.initial_state[s]
                what = f"{where}, initial state of {s.name!r}"
                if isinstance(value, AbstractDistribution):
                    value.check(what)
                elif (number := _as_number(value)) is not None:
                    if not math.isfinite(number):
                        raise WarpPhysError(f"{what}: {value!r} is not finite")
                    value = number
                else:
                    value = _sympify(value, what)
                    self._check_symbols(value, set(parameters), f"initial state of {s.name}")
                initial[s] = value
        return initial

    def _checked_grid(self, where):
        try:
            t0, t1 = (float(v) for v in self.t_span)
        except (TypeError, ValueError):
            raise WarpPhysError(
                f"{where}: t_span must be (start, end), got {self.t_span!r}"
            ) from None
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
            raise WarpPhysError(
                f"{where}: t_span must be finite with end > start, got {self.t_span!r}"
            )
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 2:
            raise WarpPhysError(
                f"{where}: steps must be an integer >= 2, got {self.steps!r}"
            )
        if not isinstance(self.context, int) or not 1 <= self.context < self.steps:
            raise WarpPhysError(
                f"{where}: context must be an integer with 1 <= context < steps "
                f"({self.steps}), got {self.context!r}"
            )
        return t0, t1

    def _checked_task(self, where):
        if self.label is not None:
            if not isinstance(self.parameters.get(self.label), Choice):
                raise WarpPhysError(
                    f"{where}: label must be a parameter with a wp.Choice distribution, "
                    f"got {self.label!r}"
                )
        if not isinstance(self.task, AbstractTask):
            raise WarpPhysError(
                f"{where}: task must be wp.Forecast() or wp.RepeatCopy(...), got {self.task!r}"
            )
        task = self.task
        if self.label is not None and not isinstance(task, (Forecast, Classify)):
            raise WarpPhysError(f"{where}: a label makes a classification task; drop label= "
                                f"or task={task!r}")
        if self.label is not None:
            task = Classify()
        elif isinstance(task, Classify) and not (self.measured and self.measured.classes):
            raise WarpPhysError(f"{where}: wp.Classify() needs label=<a wp.Choice parameter>")
        task.check(self.steps)
        return task

    def _checked_noise(self, where):
        if not isinstance(self.noise, Mapping):
            raise WarpPhysError(f"{where}: noise must be a dict {{state: wp.Gaussian(...)}}")
        by_name = {s.name: s for s in self.state}
        noise = {by_name.get(k, k) if isinstance(k, str) else k: v for k, v in self.noise.items()}
        for symbol, value in noise.items():
            if symbol not in self.state:
                raise WarpPhysError(f"{where}: noise names {symbol!r}, which is not a state "
                                    f"variable {[s.name for s in self.state]}")
            if not isinstance(value, AbstractNoise):
                raise WarpPhysError(f"{where}: the noise of {symbol.name!r} must be a "
                                    f"wp.Gaussian(std=..., relative=...), got {value!r}")
        return {s: noise[s] for s in self.state if s in noise}

    def _checked_sizes(self, where):
        sizes = dict(DEFAULT_SIZES)
        for key, value in dict(self.sizes).items():
            if key not in DEFAULT_SIZES:
                raise WarpPhysError(
                    f"{where}: sizes has unknown key {key!r}; use {sorted(DEFAULT_SIZES)}"
                )
            if not isinstance(value, int) or value < 1:
                raise WarpPhysError(f"{where}: sizes[{key!r}] must be a positive integer")
            sizes[key] = value
        return sizes

    def _check_symbols(self, expr: sp.Expr, allowed: set, what: str) -> None:
        if expr.has(sp.I):  # e.g. sqrt(-1), or I typed for an index
            raise WarpPhysError(
                f"system {self.name!r}: {what} has the imaginary unit I ({expr}); states and "
                "laws are real: rewrite it with real terms")
        allowed_names = {s.name: s for s in allowed}
        for symbol in sorted(expr.free_symbols, key=lambda s: s.name):
            if symbol in allowed:
                continue
            if symbol.name in allowed_names:
                raise WarpPhysError(
                    f"system {self.name!r}: {what} uses a symbol {symbol.name!r} whose "
                    f"assumptions ({symbol.assumptions0}) differ from the declared one "
                    f"({allowed_names[symbol.name].assumptions0}); use the same symbol object"
                )
            kinds = {"equation": f"a state, a parameter, a control or the time {self.time.name!r}",
                     "solution": f"a parameter or the time {self.time.name!r}",
                     "signal": f"a parameter or the time {self.time.name!r}",
                     "initial": "a parameter"}[what.split()[0]]
            raise WarpPhysError(
                f"system {self.name!r}: {what} uses {symbol.name!r}, which is not {kinds}; "
                "add it to parameters= or fix the name"
            )

    # ----------------------------------------------------------------- derived views

    @property
    def free_parameters(self) -> tuple[sp.Symbol, ...]:
        """The parameters drawn per trajectory (those with a distribution), in order."""
        return tuple(s for s, v in self.parameters.items() if isinstance(v, AbstractDistribution))

    @property
    def fixed_parameters(self) -> dict[sp.Symbol, float]:
        """The parameters fixed to a number."""
        return {s: v for s, v in self.parameters.items() if not isinstance(v, AbstractDistribution)}

    @property
    def random_initial_state(self) -> tuple[sp.Symbol, ...]:
        """The state variables whose initial value is drawn per trajectory."""
        return tuple(s for s, v in self.initial_state.items() if isinstance(v, AbstractDistribution))

    @property
    def fixed_initial_state(self) -> bool:
        """Whether every trajectory starts from the same state (numbers only, no closed
        form, no distribution, no expression of the parameters; for measurements, what the
        file shows)."""
        if self.measured is not None:
            return self.measured.same_start
        if self.simulated is not None:
            return self.simulated.fixed_initial_state
        return self.solution is None and all(
            isinstance(v, (int, float)) for v in self.initial_state.values())

    @property
    def draws(self) -> tuple[tuple[str, AbstractDistribution], ...]:
        """Every quantity sampled per trajectory, as (name, distribution): the free
        parameters, then the random initial-state components (named `x(t0)`)."""
        return tuple(
            [(s.name, self.parameters[s]) for s in self.free_parameters]
            + [(f"{s.name}(t0)", self.initial_state[s]) for s in self.random_initial_state]
        )

    @property
    def has_ood(self) -> bool:
        """Whether any sampled quantity has an OoD box wider than its train box."""
        return any(dist.has_ood for _, dist in self.draws)

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits this system can generate (`test-ood` needs an OoD box), or those its
        measurements hold."""
        if self.measured is not None:
            return self.measured.splits
        if self.simulated is not None:
            return self.simulated.splits
        return tuple(s for s in SPLITS if s != "test-ood" or self.has_ood)

    @property
    def ood_split(self) -> str | None:
        """The split that shows a model out of distribution: `test-ood`, else `test-paper`
        (a mix), else None (a file with no test-ood split)."""
        return next((s for s in ("test-ood", "test-paper") if s in self.splits), None)

    @property
    def known_channels(self) -> int:
        """Input channels after the states that a model reads and never forecasts: each
        control's value now and at the next sample, then the two sample times of irregular
        data (`_known.py`)."""
        return 2 * len(self.controls) + (2 if self.timed else 0)

    @property
    def timed(self) -> bool:
        """Whether each trajectory has sample times of its own (irregular sampling: a
        file's, or `Sampling(jitter=...)`), which models read as input channels
        (`_known.py`); otherwise every trajectory lies on the uniform grid."""
        if self.measured is not None:
            return self.measured.irregular
        return self.sampling is not None and self.sampling.irregular

    @property
    def unknowns(self) -> tuple:
        """The unknown terms (`wp.Unknown`) the equations hold, ordered by name: a system
        with any is a model of data, never a generator."""
        return terms_of(self.equations)

    @property
    def has_law(self) -> bool:
        """Whether equations or a closed form are declared (a measured system may have
        neither)."""
        return self.equations is not None or self.solution is not None

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names for classification systems (empty otherwise)."""
        if self.measured is not None and self.measured.classes:
            return self.measured.classes
        if self.label is None:
            return ()
        return tuple(f"{v:g}" for v in self.parameters[self.label]._values("train"))

    @functools.cached_property
    def hash(self) -> str:
        """SHA-256 of everything that determines the generated data."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> dict:
        """The declaration as JSON-ready data (stored beside every dataset)."""

        def dist(value):
            if isinstance(value, AbstractDistribution):
                return {"kind": type(value).__name__, **{
                    k: (list(v) if v is not None else None)
                    for k, v in dataclasses.asdict(value).items()
                }}
            if isinstance(value, sp.Basic):
                return {"kind": "expression", "srepr": sp.srepr(value)}
            return value

        return {
            "name": self.name,
            "state": [sp.srepr(s) for s in self.state],
            "time": sp.srepr(self.time),
            "equations": None if self.equations is None else [sp.srepr(e) for e in self.equations],
            "solution": None if self.solution is None else [sp.srepr(e) for e in self.solution],
            "parameters": [[sp.srepr(s), dist(v)] for s, v in self.parameters.items()],
            "initial_state": [[sp.srepr(s), dist(v)] for s, v in self.initial_state.items()],
            "t_span": list(self.t_span),
            "steps": self.steps,
            "context": self.context,
            "label": None if self.label is None else sp.srepr(self.label),
            "task": self.task.to_json(),
            # Only when declared, so the hashes of systems that declare none are unchanged.
            **({} if self.solver is None else {"solver": type(self.solver).__name__}),
            **({} if not self.controls else {"controls": [
                [sp.srepr(u), None if v is None else sp.srepr(v)] for u, v in self.controls.items()]}),
            **({} if not self.noise else {"noise": {
                s.name: n.to_json() for s, n in self.noise.items()}}),
            **({} if self.sampling is None else {"sampling": self.sampling.to_json()}),
            **({} if self.simulated is None else {"simulated": self.simulated.hash}),
            **({} if self.measured is None else {"measured": {
                "file": Path(self.measured.path).name, "sha256": self.measured.sha256,
                "rule": self.measured.rule}}),
        }

    def replace(self, **changes) -> "System":
        """A copy with some fields changed, validated again.

        **Example:** `wp.load_system("lotka-volterra").replace(name="lv-long", steps=512)`
        """
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return (
            f"System(name={self.name!r}, state={[s.name for s in self.state]}, "
            f"parameters={[s.name for s in self.parameters]}, t_span={self.t_span}, "
            f"steps={self.steps}, context={self.context})"
        )
