"""Measured trajectories: a file of a user's own runs, read as a system and its splits.

A `.csv` or `.parquet` file is long format, one row per observation:

- `trajectory`: the id of the run the row belongs to (any value);
- `t`: the time of the observation;
- `split` (optional): `train`, `val`, `test-id` or `test-ood`; without it, trajectories
  are split by a seeded draw (`SEEDED`);
- `p:<name>` (optional): a known physical parameter of the run, the same on every row;
- `u:<name>` (optional): a control input applied to the run (see below);
- every other column: a state variable.

A `.npz` file holds the same as arrays: `t` (T,) or (n, T), `y` (n, T, d), and
optionally `params` (n, P), `split` (n,), `state_names` (d,) and `param_names` (P,).

Trajectories may have gaps and different lengths, from a common start: an empty cell
(NaN in `y`, or False in an optional boolean `mask` shaped like `y`) is a missing value,
and a sample past a trajectory's last one is padding. Models read a missing value as the
last one observed; losses and metrics skip it. When every trajectory's times lie on one
uniform grid, a grid point a trajectory does not sample is missing in every state; when
they lie on none (irregular sampling: `t` of shape (n, T) in a `.npz`, rows of its own
per trajectory), each trajectory keeps its own times, which the models read as input
channels (`_known.py`).

Control inputs are `u:<name>` columns (a `.npz`: `u` (n, T, m) and `control_names`): the
value applied at each sample, known from each trajectory's first sample on (an empty
cell holds the value before). Models read them as input channels, now and at the next
sample; a law names them in `controls` (`{F: None}` when it only reads them). Class
labels (`label`) are refused in one line naming the file and the column, never dropped
silently.
"""

import dataclasses
import hashlib
import re
import zipfile
from pathlib import Path

import numpy as np
import sympy as sp

from ._dataset import Dataset, held
from ._errors import WarpPhysError
from ._system import SPLITS, Measurements, System
from . import _uea as uea
from ._tasks import Classify, Forecast
from ._known import padded, with_channels


SUFFIXES = (".csv", ".parquet", ".npz")
FILE_SPLITS = ("train", "val", "test-id", "test-ood")
SEEDED = {"train": 0.7, "val": 0.15, "test-id": 0.15}
"""The shares of a seeded split by trajectory (seed 0, whatever the run's seed, so every
run of a study sees the same test trajectories)."""
NOT_YET_COLUMNS = {"label": "class labels"}
NOT_YET_ARRAYS = {"label": "class labels"}


class _Table:
    """The trajectories of a file: ids, one time grid, states (n, T, d), parameters
    (n, P), splits (n,) or None, and their names; with irregular sampling, `times` (n, T)
    holds each trajectory's own sample times (padding goes on by its last gap) and `t` a
    nominal grid over their span."""

    def __init__(self, path, ids, t, y, params, split, state_names, param_names, labels=None,
                 classes=(), times=None, controls=None, control_names=()):
        self.path, self.ids, self.t, self.y, self.params = path, ids, t, y, params
        self.times = times
        self.controls, self.control_names = controls, control_names  # (n, T, m), held
        self.split, self.state_names, self.param_names = split, state_names, param_names
        self.labels, self.classes = labels, classes  # class indices (n,) and names, if labelled


def is_measured(name_or_path) -> bool:
    """Whether `name_or_path` names a file of measured trajectories (by its suffix), or a
    UEA problem (`uea:NAME`)."""
    return uea.is_uea(name_or_path) or (isinstance(name_or_path, (str, Path))
                                        and Path(str(name_or_path)).suffix.lower() in SUFFIXES)


RESERVED = ("trajectory", "t", "split", "step", "part")
"""Column names that are not states (`step` and `part` are columns of `predict`'s table)."""

_SYSTEMS: dict[tuple, System] = {}


def measured_system(path, *, law: System | None = None, context: int | None = None) -> System:
    """The system of a file of measured trajectories (see the module docstring).

    **Arguments:**

    - `path`: a `.csv`, `.parquet` or `.npz` file.
    - `law`: a declaration whose state names match the file's state columns: its law,
      parameters and presets are kept (a grey-box model uses them), its grid is the file's.
    - `context`: how many leading steps a forecast observes (default: the law's, else 40%
      of the steps).
    """
    if uea.is_uea(path):
        if law is not None:
            raise WarpPhysError(f"{path} is classification data; it takes no law")
        if (path, context) not in _SYSTEMS:
            _SYSTEMS[path, context] = _uea_system(path, context)
        return _SYSTEMS[path, context]
    if law is not None and not isinstance(law, System):
        from ._registry import load_system

        law = load_system(law)
    path = Path(path).resolve()
    stat = path.stat() if path.is_file() else None
    key = (path, stat and (stat.st_mtime_ns, stat.st_size), law and law.hash, context)
    if stat is not None and key in _SYSTEMS:  # Run.system is asked often; read once
        return _SYSTEMS[key]
    _SYSTEMS[key] = system = _measured_system(path, law, context)
    return system


def _measured_system(path: Path, law: System | None, context: int | None) -> System:
    table = _read(path)
    t, steps = table.t, len(table.t)
    if law is not None:
        _check_law(table, law)
    if context is None:
        context = law.context if law is not None else max(1, round(0.4 * steps))
    if not 1 <= context < steps:
        raise WarpPhysError(f"{path}: context {context} must be at least 1 and below the "
                            f"{steps} steps of its trajectories; give --context")
    splits = _split_of(table)
    measured = Measurements(
        path=str(Path(path).resolve()), sha256=_file_sha256(Path(path)),
        splits=tuple(s for s in SPLITS if s in set(splits)),
        rule="split column" if table.split is not None else _seeded_rule(),
        same_start=bool((table.y[:, 0] == table.y[:1, 0]).all()),
        irregular=table.times is not None)
    grid = dict(t_span=(float(t[0]), float(t[-1])), steps=steps, context=context,
                measured=measured, sizes={"train": int((splits == "train").sum()),
                                          "val": int((splits == "val").sum()),
                                          "test": max(1, int((splits == "test-id").sum()))})
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem).strip("-.") or "measured"
    if law is not None:
        return law.replace(name=name, **grid)
    return System(name=name, state=[sp.Symbol(n) for n in table.state_names],
                  controls={sp.Symbol(n): None for n in table.control_names},
                  task=Forecast(), description=f"measured trajectories from {Path(path).name}",
                  **grid)


def _uea_table(source: str) -> _Table:
    y, labels, classes, split = uea.read(source)
    ids = [f"{s}-{i}" for i, s in enumerate(split)]
    names = tuple(f"c{j}" for j in range(y.shape[2]))
    return _Table(source, ids, np.arange(y.shape[1], dtype=np.float64), y,
                  np.zeros((len(y), 0)), split, names, (), labels=labels, classes=classes)


def _uea_system(source: str, context: int | None) -> System:
    table = _uea_table(source)
    steps = len(table.t)
    measured = Measurements(path=source, sha256=uea.sha256(source),
                            splits=("train", "val", "test-id"),
                            rule=f"{source}'s TRAIN/TEST files, val {uea.VAL_SHARE:.0%} of TRAIN "
                                 "(seed 0)", classes=table.classes)
    sizes = {s: int((table.split == s).sum()) for s in ("train", "val")}
    return System(name=source[len(uea.PREFIX):], state=[sp.Symbol(n) for n in table.state_names],
                  task=Classify(), t_span=(0.0, float(steps - 1)), steps=steps,
                  context=context or max(1, round(0.4 * steps)), measured=measured,
                  sizes={**sizes, "test": int((table.split == "test-id").sum())},
                  description=f"UEA classification, {len(table.classes)} classes (aeon)")


def read_trajectories(path, *, law: System | None = None, context: int | None = None,
                      sizes: dict | None = None) -> dict[str, Dataset]:
    """Read a file of measured trajectories as the `Dataset` of each split it holds.

    **Arguments:** `path`, `law`, `context` as `measured_system`; `sizes`: at most this
    many trajectories per split (`{"train": n, "val": n, "test": n}`, None: all), the
    first ones in the file's order.

    **Returns:** `{split: Dataset}`.

    **Example:**

    ```python
    data = wp.read_trajectories("runs.csv")
    data["train"].y.shape      # (n, T, d)
    ```
    """
    system = measured_system(path, law=law, context=context)
    return measured_splits(system, sizes or {})


def measured_splits(system: System, sizes: dict, splits=None) -> dict[str, Dataset]:
    """The datasets of a measured `system` (see `read_trajectories`): the file is read
    again and must still be the one the system was made from."""
    path = system.measured.path
    if uea.is_uea(path):
        if uea.sha256(path) != system.measured.sha256:
            raise WarpPhysError(f"{path}'s files in aeon changed since the run was made")
        table = _uea_table(path)
    else:
        path = Path(path)
        if not path.is_file():
            raise WarpPhysError(f"the measured trajectories {path} are gone; restore the file")
        if _file_sha256(path) != system.measured.sha256:
            raise WarpPhysError(f"{path} changed since system {system.name!r} was read from "
                                f"it (sha256 {system.measured.sha256[:12]} then); load it again")
        table = _read(path)
    of = _split_of(table)
    out = {}
    for split in splits or system.splits:
        if split not in system.splits:
            raise WarpPhysError(f"{path} has no {split} trajectories; its splits are "
                                f"{', '.join(system.splits)}")
        limit = sizes.get("test" if split.startswith("test") else split)
        rows = np.flatnonzero(of == split)[:limit]
        out[split] = _dataset(system, table, split, rows)
    return out


def read_like(path: Path, system: System) -> Dataset:
    """Every trajectory of a file, read for a model trained on `system`: the same state
    columns, sampled at the same time step, at least `system.context` steps long (the
    file's split column, if any, is ignored)."""
    table = _read(Path(path), splits=False)
    names = [s.name for s in system.state]
    if list(table.state_names) != names:
        raise WarpPhysError(f"{path} has state columns {list(table.state_names)}; the run was "
                            f"trained on {names}: name and order them the same")
    _check_controls(table, [u.name for u in system.controls], "the run")
    if table.times is not None and not system.timed:
        raise WarpPhysError(f"{path} is sampled irregularly; the run was trained on one uniform "
                            "grid and reads no sample times: resample the file onto its grid, "
                            "or train on irregular data")
    dt, trained = np.diff(table.t).mean(), (system.t_span[1] - system.t_span[0]) / (system.steps - 1)
    if not system.timed and not np.isclose(dt, trained, rtol=1e-6):
        raise WarpPhysError(f"{path} is sampled every {dt:g}; the run was trained on steps of "
                            f"{trained:g}: resample the file to that step")
    if len(table.t) <= system.context:
        raise WarpPhysError(f"{path}: trajectories of {len(table.t)} steps leave nothing after "
                            f"the run's context of {system.context} steps; give at least "
                            f"{system.context + 1} (--horizon forecasts past the data)")
    # A model that reads sample times reads them on the run's own scale (its t_span).
    span = system.t_span if system.timed else (float(table.t[0]), float(table.t[-1]))
    like = dataclasses.replace(system, t_span=span, steps=len(table.t))
    return _dataset(like, table, Path(path).name, np.arange(len(table.ids)), rule="all rows")


def _parameters(system: System, table: _Table) -> tuple[np.ndarray, tuple[str, ...]]:
    """The file's parameters, as the law orders its free parameters when there is a law
    (NaN for one the file does not give, which the analysis then leaves out)."""
    if not system.has_law or not system.free_parameters:
        return table.params, table.param_names
    names = tuple(s.name for s in system.free_parameters)
    columns = [table.param_names.index(n) if n in table.param_names else None for n in names]
    params = np.stack([table.params[:, j] if j is not None else np.full(len(table.ids), np.nan)
                       for j in columns], axis=1)
    return params, names


def _dataset(system: System, table: _Table, split: str, rows: np.ndarray,
             rule: str | None = None) -> Dataset:
    y = np.ascontiguousarray(table.y[rows])
    params, param_names = _parameters(system, table)
    observed = ~np.isnan(y)
    last = np.where(observed.any(axis=2), np.arange(y.shape[1]), 0).max(axis=1)
    short = np.flatnonzero(last < system.context)
    if short.size and isinstance(system.task, Forecast):
        raise WarpPhysError(
            f"{table.path}: trajectory {table.ids[rows[short[0]]]!r} ends at step "
            f"{last[short[0]]}, inside the context of {system.context} steps: nothing is left "
            "to forecast; drop it or give a shorter --context")
    meta = {
        "system": system.name, "hash": system.hash, "split": split, "seed": 0, "n": len(rows),
        "context": system.context, "t_span": list(system.t_span), "steps": system.steps,
        "state_names": list(table.state_names), "param_names": list(param_names),
        "fixed_parameters": {}, "classes": list(system.classes), "task": system.task.to_json(),
        "method": f"measured ({Path(table.path).name}, {rule or system.measured.rule})",
        "trajectories": [str(table.ids[i]) for i in rows],
        "missing": int((~observed).sum()),
        "failed": {"count": 0, "names": [], "draws": []},
    }
    labels = np.zeros(0, np.int64) if table.labels is None else table.labels[rows]
    times = None  # each trajectory's own sample times, for a model that reads them
    if system.timed:
        times = np.ascontiguousarray(table.times[rows] if table.times is not None
                                     else np.broadcast_to(table.t, y.shape[:2]))
    controls = None  # in the system's order of its controls
    if system.controls:
        order = [table.control_names.index(u.name) for u in system.controls]
        controls = np.ascontiguousarray(table.controls[rows][..., order])
        meta["control_names"] = [u.name for u in system.controls]
    extras = {k: v for k, v in (("times", times), ("controls", controls)) if v is not None}
    return Dataset(t=table.t, y=y, inputs=with_channels(held(y), times, system.t_span, controls),
                   targets=y, params=params[rows], y0=y[:, 0, :], labels=labels,
                   extras=extras, meta=meta)


def _seeded_rule() -> str:
    shares = "/".join(f"{100 * v:g}" for v in SEEDED.values())
    return f"seeded by trajectory ({shares}% train/val/test-id, seed 0)"


def _split_of(table: _Table) -> np.ndarray:
    """The split of each trajectory: the file's, or a seeded draw."""
    if table.split is not None:
        return table.split
    n = len(table.ids)
    if n < 3:
        raise WarpPhysError(f"{table.path}: {n} trajectories cannot be split into train, val "
                            "and test-id; add trajectories or a split column")
    order = np.random.default_rng(0).permutation(n)
    n_val = max(1, round(SEEDED["val"] * n))
    n_test = max(1, round(SEEDED["test-id"] * n))
    split = np.full(n, "train", dtype=object)
    split[order[:n_val]] = "val"
    split[order[n_val:n_val + n_test]] = "test-id"
    return split


def _check_law(table: _Table, law: System) -> None:
    if not isinstance(law.task, Forecast) or law.label is not None:
        raise WarpPhysError(f"the law {law.name!r} declares a {law.task.name} task; a file of "
                            "measured trajectories is forecast, so give a law with the default "
                            "task and no label")
    names = [s.name for s in law.state]
    if list(table.state_names) != names:
        missing = [n for n in names if n not in table.state_names]
        extra = [n for n in table.state_names if n not in names]
        what = (f"has no column {missing[0]!r}" if missing else
                f"has a column {extra[0]!r} that is not a state" if extra else
                f"orders its state columns {list(table.state_names)}")
        raise WarpPhysError(f"{table.path} {what} of the law {law.name!r} (state {names}); "
                            "name the file's state columns as the law's state, in its order")
    _check_controls(table, [u.name for u in law.controls], f"the law {law.name!r}")


def _check_controls(table: _Table, names: list[str], whose: str) -> None:
    """The file's `u:` columns must be the controls `names` (in any order)."""
    if sorted(table.control_names) != sorted(names):
        given = ", ".join(f"u:{n}" for n in table.control_names) or "none"
        raise WarpPhysError(f"{table.path} has control columns {given}; {whose} reads the "
                            f"controls {names or 'none'}: give one u:<name> column per control")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- reading and checking a file ---------------------------------------------------------


_TABLES: dict[tuple, _Table] = {}


def _read(path: Path, splits: bool = True) -> _Table:
    """The file's trajectories; `splits=False` ignores its split column. A file is parsed
    once per process while it stays the same (size and modification time): a run reads
    its system and then its splits from it."""
    if not path.is_file():
        raise WarpPhysError(f"no file {path}: check the path")
    stat = path.stat()
    key = (path.resolve(), stat.st_mtime_ns, stat.st_size, splits)
    if key not in _TABLES:
        _TABLES[key] = _parse(path, splits)
    return _TABLES[key]


def _parse(path: Path, splits: bool) -> _Table:
    if path.suffix.lower() == ".npz":
        table = _read_npz(path)
    else:
        table = _read_long(path, _frame(path))
    if not splits:
        table.split = None
    elif table.split is not None:
        _check_splits(path, table.split)
    return table


def _frame(path: Path):
    import pandas as pd

    try:
        if path.suffix.lower() == ".csv":
            _check_header(path)
            # round_trip: the floats a writer printed are read back bit for bit (the
            # default parser of some pandas versions is off in the last digit).
            return pd.read_csv(path, dtype={"trajectory": str, "split": str},
                               skip_blank_lines=True, float_precision="round_trip")
        return pd.read_parquet(path)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        kind = "CSV" if path.suffix == ".csv" else "Parquet"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WarpPhysError(f"{path} is not a readable {kind} file ({first})") from None


def _check_header(path: Path) -> None:
    """Refuse the header mistakes pandas would read as states: an unnamed column (a
    DataFrame's index written with it) and a name given twice."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), [])
    for i, name in enumerate(header):
        if not name.strip():
            raise WarpPhysError(f"{path}: column {i + 1} of the header has no name (an index "
                                "written with the data? to_csv(index=False) leaves it out)")
        if header.index(name) != i:
            raise WarpPhysError(f"{path}: the header names {name!r} twice; give each column "
                                "its own name")


def _read_long(path: Path, frame) -> _Table:
    import pandas as pd

    frame = frame.reset_index(drop=True)  # row i is line i + 2 of a CSV
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    for needed in ("trajectory", "t"):
        if needed not in columns:
            raise WarpPhysError(f"{path} has no {needed!r} column (columns: "
                                f"{', '.join(columns)}); see docs/data.md for the format")
    for column in columns:
        refused = next((what for key, what in NOT_YET_COLUMNS.items()
                        if column == key or (key.endswith(":") and column.startswith(key))), None)
        if refused:
            raise WarpPhysError(f"{path}, column {column!r}: {refused} are not supported by "
                                "this version; drop the column to train without them")
    params = [c for c in columns if c.startswith("p:")]
    controls = [c for c in columns if c.startswith("u:")]
    states = [c for c in columns if c not in ("trajectory", "t", "split")
              and c not in params and c not in controls]
    if not states:
        raise WarpPhysError(f"{path} has no state column (every column besides trajectory, t, "
                            "split and p:<name> is a state variable)")
    if path.suffix.lower() == ".csv":
        line = lambda i: f"line {int(i) + 2}"  # noqa: E731  (the header is line 1)
    else:
        line = lambda i: f"row {int(i)}"  # noqa: E731
    reserved = next((c for c in states if c in RESERVED), None)
    if reserved:
        raise WarpPhysError(f"{path}: a state may not be named {reserved!r} ({', '.join(RESERVED)} "
                            "have other meanings); rename the column")
    if pd.api.types.is_datetime64_any_dtype(frame["t"]) or pd.api.types.is_timedelta64_dtype(frame["t"]):
        raise WarpPhysError(f"{path}, column 't' holds dates or durations; give times as numbers "
                            "(e.g. seconds from the start of each trajectory)")
    if frame["trajectory"].isna().any():
        i = np.flatnonzero(frame["trajectory"].isna())[0]
        raise WarpPhysError(f"{path}, {line(i)}: the trajectory cell is empty")
    numeric = {}
    for column in ["t", *states, *params, *controls]:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            i = np.flatnonzero(bad)[0]
            raise WarpPhysError(f"{path}, {line(i)}, column {column!r}: "
                                f"{frame[column][i]!r} is not a number")
        if values.isna().all():
            raise WarpPhysError(f"{path}, column {column!r} is empty in every row; fill it or "
                                "drop the column")
        if column == "t" and values.isna().any():
            i = np.flatnonzero(values.isna())[0]
            raise WarpPhysError(f"{path}, {line(i)}, column 't': the time is empty; "
                                "every observation needs its time")
        if np.isinf(values.to_numpy(float)).any():  # an empty cell (NaN) is a missing value
            i = np.flatnonzero(np.isinf(values.to_numpy(float)))[0]
            raise WarpPhysError(f"{path}, {line(i)}, column {column!r}: "
                                f"{values[i]} is not finite")
        numeric[column] = values.to_numpy(np.float64)
    groups = _groups(path, frame, numeric["t"], line)
    return _stack(path, frame, groups, numeric, (states, controls), params, line)


def _groups(path, frame, t, line) -> dict:
    """Row positions of each trajectory, in the order of first appearance; times must
    increase within each."""
    ids = frame["trajectory"].to_numpy()
    groups: dict = {}
    for position, key in enumerate(ids):
        groups.setdefault(key, []).append(position)
    for key, rows in groups.items():
        rows = np.asarray(rows)
        steps = np.diff(t[rows])
        if (steps <= 0).any():
            i = rows[1:][steps <= 0][0]
            raise WarpPhysError(f"{path}, {line(i)}: time {t[i]:g} of trajectory {key!r} "
                                "is not after the one on its row before; times must increase "
                                "within a trajectory")
        groups[key] = rows
    return groups


def _stack(path, frame, groups, numeric, columns, params, line) -> _Table:
    states, controls = columns
    ids = list(groups)
    times = {k: numeric["t"][groups[k]] for k in ids}
    t, steps = _grid(path, times)
    irregular = None
    if steps is None:  # on no common grid: each trajectory keeps its own times
        steps = {k: np.arange(len(v)) for k, v in times.items()}
        irregular = padded(list(times.values()), len(t))
    y, u = (_cells(path, ids, groups, steps, numeric, names, len(t), line, what)
            for names, what in ((states, "state"), (controls, "control")))
    p = np.full((len(ids), len(params)), np.nan)
    for j, column in enumerate(params):
        for i, key in enumerate(ids):
            values = numeric[column][groups[key]]
            values = values[~np.isnan(values)]
            if values.size and not (values == values[0]).all():
                raise WarpPhysError(f"{path}, column {column!r}: trajectory {key!r} has "
                                    "several values; a parameter is one number per trajectory")
            p[i, j] = values[0] if values.size else np.nan
    split = None
    if "split" in frame.columns:
        split = _file_splits(path, frame, groups, ids, line)
    return _Table(str(path), ids, t, y, p, split, tuple(states), tuple(c[2:] for c in params),
                  times=irregular, controls=held(u) if controls else None,
                  control_names=tuple(c[2:] for c in controls))


def _cells(path, ids, groups, steps, numeric, names, length, line, what) -> np.ndarray:
    """The columns `names` as (n, length, len(names)), NaN where a trajectory has no row;
    each trajectory's first sample must give every one of them."""
    out = np.full((len(ids), length, len(names)), np.nan)
    for i, key in enumerate(ids):
        rows = groups[key]
        if not names:
            continue
        out[i, steps[key]] = np.stack([numeric[c][rows] for c in names], axis=-1)
        first = np.flatnonzero(np.isnan(out[i, 0]))
        if first.size:
            raise WarpPhysError(
                f"{path}, {line(rows[0])}, column {names[first[0]]!r}: the first sample "
                f"of trajectory {key!r} is empty; a model starts from the first sample, so it "
                f"must give every {what}")
    return out


MAX_GRID = 10
"""A common grid may have at most this many points per observation of the longest
trajectory: more means the times lie on no common grid (irregular sampling)."""


def _grid(path, times: dict) -> tuple[np.ndarray, dict | None]:
    """The uniform grid every trajectory's times lie on, and each one's step indices.

    Every trajectory starts at the same time; the grid's step is the median of their
    smallest time steps. A grid point a trajectory does not sample is a missing value; one
    past its last sample, padding (variable lengths). A time between grid points is
    irregular sampling: then the indices are None and the grid a nominal one, as many
    points as the longest trajectory over the span of all their times."""
    firsts = {k: v[0] for k, v in times.items()}
    t0 = next(iter(firsts.values()))
    late = next((k for k, v in firsts.items() if not np.isclose(v, t0, rtol=0, atol=1e-9 * max(1, abs(t0)))), None)
    if late is not None:
        raise WarpPhysError(f"{path}: trajectory {late!r} starts at t={firsts[late]:g}, the first "
                            f"at t={t0:g}; give every trajectory's times from a common start (subtract each "
                            "one's first time)")
    diffs = [np.diff(v) for v in times.values() if len(v) > 1]
    if not diffs:
        raise WarpPhysError(f"{path}: every trajectory has a single sample; a forecast needs "
                            "at least two")
    dt = float(np.median([d.min() for d in diffs]))  # one odd trajectory does not set it
    steps = {k: (v - t0) / dt for k, v in times.items()}
    longest = max(len(v) for v in times.values())
    for key, k in steps.items():
        off = np.abs(k - np.round(k))  # in steps: a clock rounded to 1e-3 of a step is fine
        if (off > 1e-3).any() or k[-1] > MAX_GRID * longest:
            end = max(v[-1] for v in times.values())
            return np.linspace(t0, end, longest), None
        steps[key] = np.round(k).astype(int)
    n = max(k[-1] for k in steps.values()) + 1
    grid = t0 + dt * np.arange(n)
    for key, k in steps.items():  # the file's own times where it has them (bit for bit)
        grid[k] = times[key]
    return grid, steps


def _file_splits(path, frame, groups, ids, line) -> np.ndarray:
    column = frame["split"].to_numpy()
    split = np.empty(len(ids), dtype=object)
    for i, key in enumerate(ids):
        rows = groups[key]
        values = set(column[rows])
        bad = next((v for v in column[rows] if v not in FILE_SPLITS), None)
        if bad is not None:
            r = rows[[v not in FILE_SPLITS for v in column[rows]]][0]
            raise WarpPhysError(f"{path}, {line(r)}, column 'split': {bad!r} is not one "
                                f"of {', '.join(FILE_SPLITS)}")
        if len(values) > 1:
            raise WarpPhysError(f"{path}, column 'split': trajectory {key!r} is in several "
                                f"splits ({', '.join(sorted(values))}); give one per trajectory")
        split[i] = column[rows[0]]
    return split


def _check_splits(path, split) -> None:
    for needed in ("train", "val", "test-id"):
        if not (split == needed).any():
            raise WarpPhysError(f"{path}: split {needed!r} has no trajectories; every file "
                                "needs train, val and test-id (test-ood is optional)")


def _uniform(path, t) -> bool:
    """Whether the times `t` (T,) are evenly spaced (to 0.1% of their mean step)."""
    if len(t) < 2:
        raise WarpPhysError(f"{path}: trajectories need at least 2 time points, got {len(t)}")
    dt = np.diff(t)
    return bool(np.allclose(dt, dt.mean(), rtol=1e-3, atol=0))


def _own_times(path, t: np.ndarray) -> np.ndarray:
    """Per-trajectory times (n, T) of an irregularly sampled `.npz`: each row increases
    from the common start, and NaN only after its last sample (padding, extended by the
    row's last gap)."""
    rows = []
    for i, row in enumerate(t):
        finite = np.isfinite(row)
        length = int(finite.cumprod().sum())
        if length < row.size and finite[length:].any() or np.isinf(row).any():
            raise WarpPhysError(f"{path}: t of trajectory {i} is NaN or infinite before its last "
                                "sample; NaN marks only padding after it")
        if (np.diff(row[:length]) <= 0).any():
            k = int(np.argmax(np.diff(row[:length]) <= 0)) + 1
            raise WarpPhysError(f"{path}: t of trajectory {i} does not increase (at step {k})")
        if length == 0 or not np.isclose(row[0], t[0, 0], rtol=0, atol=1e-9 * max(1, abs(t[0, 0]))):
            raise WarpPhysError(f"{path}: trajectory {i} starts at t={row[0]:g}, the first at "
                                f"t={t[0, 0]:g}; give every trajectory's times from a common start")
        rows.append(row[:length])
    if max(len(r) for r in rows) < 2:
        raise WarpPhysError(f"{path}: every trajectory has a single sample; a forecast needs "
                            "at least two")
    return padded(rows, t.shape[1])


def _read_npz(path: Path) -> _Table:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise WarpPhysError(f"{path} is not a readable .npz file ({type(e).__name__}: {e})") from None
    for key in ("t", "y"):
        if key not in arrays:
            raise WarpPhysError(f"{path} has no array {key!r} (arrays: {', '.join(arrays)}); "
                                "see docs/data.md for the format")
    for key, what in NOT_YET_ARRAYS.items():
        if key in arrays:
            raise WarpPhysError(f"{path}, array {key!r}: {what} are not supported by this "
                                "version; save the file without it")
    y = np.asarray(arrays["y"], np.float64)
    if y.ndim != 3 or 0 in y.shape:
        raise WarpPhysError(f"{path}: y must have shape (n, T, d) with n, T, d >= 1, got {y.shape}")
    n, steps, d = y.shape
    t = np.asarray(arrays["t"], np.float64)
    times = None
    if t.ndim == 2 and t.shape == (n, steps) and not np.allclose(t, t[:1], rtol=1e-9,
                                                                  equal_nan=True):
        times = _own_times(path, t)
        t = np.linspace(times[0, 0], np.nanmax(t), steps)
    elif t.ndim == 2:
        if t.shape != (n, steps):
            raise WarpPhysError(f"{path}: t must be (T,) or (n, T) = ({n}, {steps}), got {t.shape}")
        t = t[0]
    if t.shape != (steps,):
        raise WarpPhysError(f"{path}: t has shape {t.shape}, y has {steps} steps")
    if "mask" in arrays:  # True where a value was observed
        mask = np.asarray(arrays["mask"])
        if mask.shape != y.shape or mask.dtype != bool:
            raise WarpPhysError(f"{path}: mask must be a boolean array shaped like y {y.shape}, "
                                f"got {mask.dtype} {mask.shape}")
        y = np.where(mask, y, np.nan)
    if np.isinf(y).any():
        raise WarpPhysError(f"{path}: y holds infinite values; mark a missing value NaN (or "
                            "False in mask)")
    incomplete = np.flatnonzero(np.isnan(y[:, 0]).any(axis=1))
    if incomplete.size:
        raise WarpPhysError(f"{path}: the first sample of trajectory {incomplete[0]} is missing a "
                            "state; a model starts from the first sample, so it must be complete")
    if times is not None:
        padding = np.isnan(np.asarray(arrays["t"], np.float64))
        if (~np.isnan(y) & padding[..., None]).any():
            i = int(np.flatnonzero((~np.isnan(y) & padding[..., None]).any(axis=(1, 2)))[0])
            raise WarpPhysError(f"{path}: trajectory {i} has a value at a step whose time is NaN; "
                                "a NaN time marks padding after the last sample")
    elif (np.diff(t) <= 0).any():
        raise WarpPhysError(f"{path}: t does not increase (at step {int(np.argmax(np.diff(t) <= 0)) + 1})")
    elif not _uniform(path, t):  # one set of times, but on no uniform grid: irregular
        times = _own_times(path, np.broadcast_to(t, (n, steps)))
        t = np.linspace(t[0], t[-1], steps)
    params = np.asarray(arrays.get("params", np.zeros((n, 0))), np.float64)
    params = params[:, None] if params.ndim == 1 and len(params) == n else params
    if params.ndim != 2 or len(params) != n:
        raise WarpPhysError(f"{path}: params must have shape (n, P) = ({n}, P), got {params.shape}")
    if np.isinf(params).any():
        raise WarpPhysError(f"{path}: params holds infinite values (NaN marks an unknown one)")
    names = [str(s) for s in arrays.get("state_names", [f"x{i}" for i in range(d)])]
    reserved = next((c for c in names if c in RESERVED), None)
    if reserved:
        raise WarpPhysError(f"{path}: a state may not be named {reserved!r}; rename it")
    pnames = [str(s) for s in arrays.get("param_names", [f"p{i}" for i in range(params.shape[1])])]
    if len(names) != d or len(pnames) != params.shape[1]:
        raise WarpPhysError(f"{path}: state_names/param_names do not match y and params")
    split = None
    if "split" in arrays:
        split = np.asarray([str(s) for s in arrays["split"]], dtype=object)
        bad = [s for s in split if s not in FILE_SPLITS]
        if len(split) != n or bad:
            raise WarpPhysError(f"{path}: split must hold one of {', '.join(FILE_SPLITS)} per "
                                f"trajectory (got {bad[0]!r})" if bad else f"{path}: split has "
                                f"{len(split)} entries for {n} trajectories")
    controls, cnames = _npz_controls(path, arrays, y.shape)
    return _Table(str(path), [str(i) for i in range(n)], t, y, params, split, tuple(names),
                  tuple(pnames), times=times, controls=controls, control_names=cnames)


def _npz_controls(path, arrays: dict, shape) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """The control inputs `u` (n, T, m) of a `.npz` (NaN: held from the sample before) and
    their names (`control_names`, default u0, u1, ...)."""
    if "u" not in arrays:
        return None, ()
    u = np.asarray(arrays["u"], np.float64)
    u = u[..., None] if u.ndim == 2 else u
    if u.ndim != 3 or u.shape[:2] != shape[:2]:
        raise WarpPhysError(f"{path}: u must have shape (n, T, m) with (n, T) = {shape[:2]} "
                            f"as y, got {u.shape}")
    if np.isinf(u).any() or np.isnan(u[:, 0]).any():
        raise WarpPhysError(f"{path}: u holds infinite values or misses a control at a first "
                            "sample; every control must be known from the first sample on")
    names = tuple(str(s) for s in arrays.get("control_names", [f"u{i}" for i in range(u.shape[2])]))
    if len(names) != u.shape[2]:
        raise WarpPhysError(f"{path}: control_names has {len(names)} names for {u.shape[2]} controls")
    return held(u), names
