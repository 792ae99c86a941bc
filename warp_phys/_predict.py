"""Forecasts out: a trained run's forecasts of any split or file, as a table to write.

`predict(run, data, horizon=)` reads each trajectory's context from the data, forecasts
`horizon` steps after it (fully autoregressive, as the test metrics are measured; past
the end of the data the model keeps feeding back its own forecasts), and returns a long
table: one row per trajectory and step, the forecast of every state beside the truth
where the data has it. A WARP-Phys run also gives the parameters it inferred from each
context.
"""

from pathlib import Path

import numpy as np

from ._dataset import Dataset
from ._errors import WarpPhysError
from ._evaluate import predict as predict_outputs
from ._io import atomic_write
from ._tasks import Forecast
from ._known import padded, with_channels


def predict(run, data: "str | Path | Dataset", *, horizon: int | None = None):
    """Forecasts of `run` on `data` (a split name of the run's system, a file of measured
    trajectories in the format of `warp_phys.read_trajectories`, or a `Dataset`; for a run
    on irregular or controlled data the file brings its own times and `u:` columns).

    **Arguments:**

    - `run`: a `warp_phys.Run` of a forecasting task.
    - `data`: what to forecast; a file must hold the run's state columns, sampled at the
      run's time step.
    - `horizon`: steps forecast after the context (default: to the end of the data).

    **Returns:** `(forecasts, parameters)`: pandas DataFrames; `forecasts` has columns
    `trajectory`, `step`, `t`, `part` (`context` for the one-step predictions inside the
    context, `forecast` after it), each state's forecast and `true:<state>` (NaN past the
    data); `parameters` (None unless the run is grey-box) has `trajectory`,
    `inferred:<name>` and `true:<name>` where the data gives it.
    """
    import pandas as pd

    system = run.system
    if not isinstance(system.task, Forecast):
        raise WarpPhysError(f"{run.path} was trained for {system.task.name}; predict "
                            "forecasts, so it needs a forecasting run")
    dataset = _dataset(run, data)
    steps, context = dataset.y.shape[1], dataset.context
    horizon = steps - context if horizon is None else horizon
    if not isinstance(horizon, int) or horizon < 1:
        raise WarpPhysError(f"--horizon must be a positive number of steps, got {horizon!r}")
    total = context + horizon
    if system.controls and "controls" not in dataset.extras:
        raise WarpPhysError(f"{run.path} was trained with the control inputs "
                            f"{[u.name for u in system.controls]}; the data gives none: read it "
                            "with its u: columns (a file, or a split of the run's system)")
    if system.controls and total > steps:
        raise WarpPhysError(f"--horizon {horizon} runs {total - steps} steps past the data, where "
                            "the control inputs are unknown; give at most "
                            f"{steps - context}, or data whose u: columns reach further")
    d = dataset.y.shape[2]
    times = _sample_times(dataset, total)
    x = dataset.inputs[:, :total, :d]
    if total > steps:  # past the data: the model reads its own forecasts there
        x = np.concatenate([x, np.zeros((len(x), total - steps, d))], 1)
    controls = dataset.extras.get("controls")
    x = with_channels(x, times if system.timed else None, system.t_span,
                      None if controls is None else controls[:, :total])
    x = run.normaliser(x).astype(np.float32)
    mask = Forecast().inference_mask(len(x), total, context)
    mean = run.normaliser.inverse(predict_outputs(run.forecaster(), x, mask).astype(np.float64))
    ids = _ids(dataset)
    k = np.arange(1, total)  # output k - 1 forecasts step k
    frame = {"trajectory": np.repeat(ids, len(k)), "step": np.tile(k, len(ids)),
             "t": times[:, k].reshape(-1),
             "part": np.tile(np.where(k < context, "context", "forecast"), len(ids))}
    truth = np.full((len(ids), total, dataset.y.shape[2]), np.nan)
    truth[:, :min(steps, total)] = dataset.targets[:, :total]
    for j, name in enumerate(dataset.state_names):
        frame[name] = mean[:, :-1, j].reshape(-1)
        frame[f"true:{name}"] = truth[:, 1:, j].reshape(-1)
    parameters = None
    if run.config.model.grey_box:
        parameters = _parameters(run, dataset, x[:, :steps], ids)
    return pd.DataFrame(frame), parameters


def _dataset(run, data) -> Dataset:
    if isinstance(data, Dataset):
        return data
    from ._measured import is_measured, read_like

    if is_measured(data):
        return read_like(Path(data), run.system)
    name = str(data)
    if name not in run.system.splits:
        raise WarpPhysError(f"{name!r} is neither a split of {run.system.name} "
                            f"({', '.join(run.system.splits)}) nor a .csv, .parquet or .npz file")
    return run.data([name])[name]


def _sample_times(dataset: Dataset, total: int) -> np.ndarray:
    """Each trajectory's sample times (n, total): its own (irregular sampling) or the grid,
    then steps of its last gap past the end of the data."""
    rows = dataset.extras.get("times", np.broadcast_to(dataset.t, dataset.y.shape[:2]))
    return padded(list(rows), max(total, rows.shape[1]))[:, :total]


def _ids(dataset: Dataset) -> np.ndarray:
    ids = dataset.meta.get("trajectories")
    return np.asarray(ids if ids else [str(i) for i in range(len(dataset))], dtype=object)


def _parameters(run, dataset, x, ids):
    import pandas as pd

    from ._greybox import inferred_parameters

    model = run.forecaster()
    inferred = inferred_parameters(model, x, dataset.context)
    names = [s.name for s in run.system.free_parameters]
    table = {"trajectory": ids}
    for j, name in enumerate(names):
        table[f"inferred:{name}"] = inferred[:, j]
        if name in dataset.param_names:
            table[f"true:{name}"] = dataset.params[:, dataset.param_names.index(name)]
    return pd.DataFrame(table)


def write_table(frame, path: Path) -> Path:
    """Write a DataFrame as `.csv` or `.parquet` (by `path`'s suffix), atomically."""
    import io

    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise WarpPhysError(f"--out {path}: give a .csv or .parquet file name")
    buffer = io.BytesIO()
    if path.suffix == ".csv":
        buffer.write(frame.to_csv(index=False).encode())
    else:
        frame.to_parquet(buffer, index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path
