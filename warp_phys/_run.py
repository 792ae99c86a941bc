"""Run directories: `runs/<system>/<model>/<timestamp>/`.

    config.json     everything needed to re-run (the FitConfig and the data normaliser)
    env.json        package versions, devices, precision, seed
    metrics.jsonl   one line per epoch: train loss, learning rate, validation metrics
    metrics.json    final test metrics per split, from the best checkpoint
    model.eqx       the best model (on val): a JSON header line, then Equinox leaves
    checkpoint.eqx  the latest model and optimiser state, for --resume
    plots/          loss curves, forecasts against truth

Every file is written to a temporary file and renamed, so a crash never leaves a
half-written file behind.
"""

import datetime
import json
from pathlib import Path

import equinox as eqx
import jax.random as jr
import numpy as np

from ._config import FitConfig
from ._errors import WarpPhysError
from ._io import atomic_write, write_json, write_text
from ._evaluate import Normaliser, build_model, load_splits, metrics, task_kind
from ._greybox import learned_law, parameter_report
from ._plots import plot_forecasts, plot_losses, plot_parameters
from ._registry import load_system


MODEL_FORMAT = 1


def new_run_dir(root: Path, system: str, model: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / system / model / stamp
    suffix = 1
    while path.exists():
        path = root / system / model / f"{stamp}-{suffix}"
        suffix += 1
    path.mkdir(parents=True)
    return path


def _save(path: Path, header: dict, tree) -> None:
    def write(f):
        f.write((json.dumps({"format": MODEL_FORMAT, **header}) + "\n").encode())
        eqx.tree_serialise_leaves(f, tree)

    atomic_write(path, write)


def _load(path: Path, like):
    if not path.is_file():
        raise WarpPhysError(f"no file {path}; is this a finished or checkpointed run?")
    with open(path, "rb") as f:
        header = json.loads(f.readline())
        if header.get("format") != MODEL_FORMAT:
            raise WarpPhysError(f"{path} has an unknown format")
        return eqx.tree_deserialise_leaves(f, like), header


def save_model(path: Path, model, header: dict) -> None:
    _save(path, header, model)


def save_checkpoint(path: Path, model, opt_state, header: dict) -> None:
    _save(path, header, (model, opt_state))


def load_checkpoint(path: Path, model, opt_state):
    (model, opt_state), header = _load(path, (model, opt_state))
    return model, opt_state, header


class Run:
    """A run directory, its configuration, best model and metrics."""

    def __init__(self, path: Path, config: FitConfig, normaliser):
        self.path, self.config, self.normaliser = path, config, normaliser

    @staticmethod
    def load_config(path: Path) -> FitConfig:
        file = Path(path) / "config.json"
        if not file.is_file():
            raise WarpPhysError(f"{path} is not a run directory (no config.json)")
        data = json.loads(file.read_text())
        data.pop("normaliser", None)
        return FitConfig(**data)

    @classmethod
    def open(cls, path) -> "Run":
        path = Path(path)
        config = cls.load_config(path)
        normaliser = Normaliser.from_json(json.loads((path / "config.json").read_text())["normaliser"])
        return cls(path, config, normaliser)

    @property
    def system(self):
        return load_system(self.config.system)

    def load_model(self):
        """The best model (on the validation split)."""
        skeleton = build_model(self.config, self.system, self.normaliser, key=jr.PRNGKey(0))
        return _load(self.path / "model.eqx", skeleton)[0]

    @property
    def metrics(self) -> dict:
        return json.loads((self.path / "metrics.json").read_text())

    def evaluate(self, data=None, *, splits=None, model=None) -> dict:
        """Recompute test metrics of the best model on `splits` (default: every test split);
        only those splits are loaded."""
        system = self.system
        names = splits or [s for s in system.splits if s.startswith("test")]
        data = data if data is not None else load_splits(system, self.config, names)
        model = model if model is not None else self.load_model()
        kind = task_kind(system)
        return {s: metrics(model, data[s], self.normaliser, kind) for s in names}

    def evaluate_and_save(self, data, *, history, note=None) -> dict:
        model = self.load_model()
        results = self.evaluate(data, model=model)
        with open(self.path / "model.eqx", "rb") as f:
            header = json.loads(f.readline())
        summary = {"best_epoch": header["epoch"], "epochs_run": len(history),
                   "seconds_per_epoch": float(np.median([h["seconds"] for h in history]))
                   if history else None, "note": note, "splits": results}
        plot_losses(history, self.path / "plots" / "losses.png")
        if task_kind(self.system) == "forecast":
            plot_forecasts(model, data, self.normaliser, self.path / "plots" / "forecasts.png",
                           label=self.config.model)
            if self.config.model == "warp-phys":
                summary["parameters"] = self.export_parameters(model, data)
        write_json(self.path / "metrics.json", summary)
        return summary

    def export_parameters(self, model, data) -> dict:
        """What a WARP-Phys model inferred for each test trajectory, against the truth:
        `parameters-<split>.csv`, `parameters.md` (MAE, median relative error, R^2),
        `plots/parameters.png` and `law.md` (the learned law as SymPy expressions)."""
        system = self.system
        report = parameter_report(model, system, data, self.normaliser)
        names = report["names"]
        for split, (true, inferred) in report["values"].items():
            header = ",".join([f"true_{n}" for n in names] + [f"inferred_{n}" for n in names])
            rows = [",".join(f"{v:.8g}" for v in row) for row in np.concatenate([true, inferred], 1)]
            write_text(self.path / f"parameters-{split}.csv", "\n".join([header, *rows]) + "\n")
        lines = ["| split | parameter | MAE | median relative error | R^2 |", "|---|---|---|---|---|"]
        for split, per in report["summary"].items():
            for name, m in per.items():
                r2 = "n/a" if m["r2"] is None else f"{m['r2']:.4f}"
                lines.append(f"| {split} | {name} | {m['mae']:.4g} | {m['median_relative_error']:.3%} | {r2} |")
        law = ["# Learned law", "",
               "The declared law with the parameters the model inferred from each sequence's "
               "context (first three `test-id` sequences), beside the true parameters.", ""]
        for i, p in enumerate(report["parameters"]["test-id"][:3]):
            law.append(f"## test-id sequence {i}")
            law.append("true: " + ", ".join(f"{s.name} = {v:.4g}" for s, v in
                                             zip(system.free_parameters, data["test-id"].params[i])))
            law += ["", "```"] + [str(eq) for eq in learned_law(system, p)] + ["```", ""]
        write_text(self.path / "parameters.md", "\n".join(lines) + "\n")
        write_text(self.path / "law.md", "\n".join(law))
        plot_parameters(report, self.path / "plots" / "parameters.png")
        return report["summary"]


def format_table(metrics: dict) -> str:
    """The test metrics as an aligned text table."""
    rows = []
    for split, m in metrics.items():
        if "accuracy" in m:
            rows.append(f"{split:>10}  accuracy {m['accuracy']:.4f}  cross-entropy {m['cross_entropy']:.4g}  (n={m['n']})")
        else:
            diverged = (f"; {m['diverged']} rollouts DIVERGED and are excluded"
                        if m["diverged"] else "")
            rows.append(f"{split:>10}  MSE {m['mse']:.4g}  MAE {m['mae']:.4g}  "
                        f"naive MSE {m['naive_mse']:.4g}  whole-sequence MSE {m['mse_whole']:.4g}  "
                        f"(n={m['n']}{diverged})")
    return "\n".join(rows)
