"""Studies: several models, several seeds, one protocol, one table.

`study(system, models, seeds)` trains every (model, seed) pair that has no finished run
with the same configuration yet (finished runs are reused), then writes to
`<runs>/<system>/study-<preset>/`:

    study.csv       one row per model: mean and std over seeds of every test metric,
                    trainable parameters, seconds per epoch
    study.md        the same as a Markdown table, with the command that made it
    distance.png    forecast MSE of each test trajectory against its distance from the
                    training box (seed 0 of each model)
"""

import csv
import io
from pathlib import Path

import numpy as np

from ._baselines import param_count
from ._config import FitConfig, known_options
from ._presets import make_config
from ._models import model_class
from ._options import ConfigError
from ._optimiser import optimiser_class
from ._errors import WarpPhysError
from ._evaluate import trajectory_errors
from ._io import write_text
from ._options import flag
from ._run import Run
from ._system import System
from ._tasks import Forecast
from ._train import fit, fit_ensemble


def find_run(runs_dir: Path, config: FitConfig) -> Run | None:
    """The latest finished run in `runs_dir` trained with exactly `config`, if any."""
    system = config.load_system()
    folder = Path(runs_dir) / system.name / config.model.name
    wanted = config.to_json()
    for path in sorted(folder.glob("*/"), reverse=True):
        try:  # through FitConfig, so options added since the run was made take their defaults
            run = Run.open(path)
        except (OSError, ValueError, TypeError, WarpPhysError):
            continue
        # Only a run of this very declaration (an edited system file makes its runs stale).
        if (run.config.to_json() == wanted and run.hashes.get("system") == system.hash
                and run.state()["state"] == "finished" and _readable_metrics(run)):
            return run
    return None


def _readable_metrics(run: Run) -> bool:
    """Whether the run's metrics.json is there and parses (a damaged one: train again)."""
    try:
        return bool(run.metrics)
    except (OSError, WarpPhysError):
        return False


def box_distance(system: System, params: np.ndarray) -> np.ndarray:
    """How far each parameter vector (n, P) lies outside the training box: the Euclidean
    norm of each parameter's distance beyond its training range, in units of that range's
    width (0 inside the box)."""
    out = np.zeros(len(params))
    for i, s in enumerate(system.free_parameters):
        low, high = system.parameters[s].bounds("train")
        beyond = np.maximum(0.0, np.maximum(low - params[:, i], params[:, i] - high))
        out += (beyond / max(high - low, 1e-12)) ** 2
    return np.sqrt(out)


def study(system: str, models: list[str], seeds: int, preset: str = "quick", *,
          runs_dir: str | Path = "runs", ensemble: bool = False, progress: bool = True,
          **overrides) -> Path:
    """Train (or reuse) every model for seeds 0..`seeds`-1 and write the study files.

    **Arguments:**

    - `system`: a system name or path.
    - `models`: model names (see `warp_phys.MODELS`).
    - `seeds`: how many seeds per model.
    - `preset`: the preset every run starts from.
    - `runs_dir`: where the runs and the study folder go.
    - `ensemble`: train a model's missing seeds together (`warp_phys.fit_ensemble`).
    - `overrides`: options by flat name applied to every run (e.g. `epochs=5`), as in
      `warp_phys.make_config`; each must apply to every model studied.

    **Returns:** the study folder.
    """
    if seeds < 1:
        raise WarpPhysError(f"seeds must be a positive integer, got {seeds}")
    runs_dir = Path(runs_dir)
    applying = _applying({k: v for k, v in overrides.items() if v is not None}, models)
    configs = {m: [make_config(system, preset, model=m, seed=s, **applying[m])
                   for s in range(seeds)]
               for m in models}  # every configuration is checked before anything trains
    loaded = configs[models[0]][0].load_system()
    runs: dict[str, list[Run]] = {}
    for model, model_configs in configs.items():
        found = {c.seed: find_run(runs_dir, c) for c in model_configs}
        missing = [c for c in model_configs if found[c.seed] is None]
        if ensemble and len(missing) > 1:
            trained = fit_ensemble(missing, runs_dir=runs_dir, progress=progress)
        else:
            trained = [fit(c, runs_dir=runs_dir, progress=progress) for c in missing]
        found.update({c.seed: run for c, run in zip(missing, trained)})
        runs[model] = [found[c.seed] for c in model_configs]

    rows = [_row(model, model_runs) for model, model_runs in runs.items()]
    folder = runs_dir / loaded.name / f"study-{preset}"
    folder.mkdir(parents=True, exist_ok=True)
    command = (f"warp-phys study {system} --models {','.join(models)} --seeds {seeds} "
               f"--preset {preset}" + "".join(_words(k, v) for k, v in overrides.items())
               + (" --ensemble" if ensemble else "")
               + ("" if runs_dir == Path("runs") else f" --out {runs_dir}"))
    write_text(folder / "study.csv", _csv(rows))
    write_text(folder / "study.md", _markdown(rows, loaded, seeds, command, runs))
    if isinstance(loaded.task, Forecast) and "test-paper" in loaded.splits:
        _plot_distance(runs, loaded, folder / "distance.png")
    return folder


def _applying(overrides: dict, models: list[str]) -> dict[str, dict]:
    """For each model, the overrides that apply to it (a study's `width` is WARP's, its
    `hidden` the baselines'); one that applies to none of the models is an error."""
    optimiser = optimiser_class(overrides.get("optimiser") or "adabelief")
    known = {m: known_options(model_class(m), optimiser) for m in models}
    for name in overrides:
        if not any(name in k for k in known.values()):
            raise ConfigError("study", name, f"applies to none of the models {', '.join(models)}")
    return {m: {k: v for k, v in overrides.items() if k in known[m]} for m in models}


def _words(name: str, value) -> str:
    """An option as command-line words (nothing for None: the preset's value)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return f" {flag(name) if value else '--no-' + flag(name)[2:]}"
    return f" {flag(name)} {value}"


def _row(model: str, runs: list[Run]) -> dict:
    row = {"model": model, "seeds": len(runs),
           "parameters": param_count(runs[0].load_model()),
           "seconds_per_epoch": float(np.mean([r.metrics["seconds_per_epoch"] for r in runs]))}
    for split in runs[0].metrics["splits"]:
        for name in ("mse", "mae", "accuracy"):
            values = [r.metrics["splits"][split].get(name) for r in runs]
            if values[0] is None:
                continue
            row[f"{split}_{name}_mean"] = float(np.mean(values))
            row[f"{split}_{name}_std"] = float(np.std(values))
        diverged = sum(r.metrics["splits"][split].get("diverged", 0) for r in runs)
        if diverged:
            row[f"{split}_diverged"] = diverged
    return row


def _csv(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _markdown(rows, system, seeds, command, runs) -> str:
    splits = [s for s in system.splits if s.startswith("test")]
    metrics = ["accuracy"] if system.task.metric == "accuracy" else ["mse", "mae"]
    header = ["model", "params", "s/epoch"] + [f"{s} {m.upper() if m != 'accuracy' else m}"
                                               for s in splits for m in metrics]
    lines = [f"# Study: {system.name}", "",
             f"Mean +- std over {seeds} seed(s); forecast-window metrics in the data's units, "
             "fully autoregressive after the context.", "", f"Made with: `{command}`", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["model"], f"{row['parameters']:,}", f"{row['seconds_per_epoch']:.3g}"]
        for s in splits:
            for m in metrics:
                mean, std = row.get(f"{s}_{m}_mean"), row.get(f"{s}_{m}_std")
                cell = "n/a" if mean is None else f"{mean:.4g} +- {std:.2g}"
                if row.get(f"{s}_diverged"):
                    cell += f" ({row[f'{s}_diverged']} diverged)"
                cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Runs:", ""] + [f"- {model}: " + ", ".join(f"`{r.path}`" for r in model_runs)
                                  for model, model_runs in runs.items()]
    return "\n".join(lines) + "\n"


def _plot_distance(runs: dict[str, list[Run]], system: System, path: Path) -> Path:
    from ._plots import plot_distance

    split = "test-paper"
    data = runs[next(iter(runs))][0].data([split])[split]
    distance = box_distance(system, data.params)
    errors = {}
    for model, model_runs in runs.items():
        run = model_runs[0]
        errors[model] = trajectory_errors(run.forecaster(), data, run.normaliser, system.task)
    return plot_distance(distance, errors, path, title=f"{system.name}: {split}")

