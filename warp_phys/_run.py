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

import csv
import datetime
import io
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
from ._plots import (
    matrices_figure, pca_figure, plot_forecasts, plot_losses, plot_parameters, probe_figure,
    save_figure, weights_figure,
)
from ._registry import load_system


MODEL_FORMAT = 1
FIGURES = ("forecasts", "pca", "weights", "matrices")


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
            text = io.StringIO()  # names such as M[1,0] hold commas: let csv quote them
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow([f"true_{n}" for n in names] + [f"inferred_{n}" for n in names])
            writer.writerows([[f"{v:.8g}" for v in row] for row in np.concatenate([true, inferred], 1)])
            write_text(self.path / f"parameters-{split}.csv", text.getvalue())
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


    def figures(self) -> tuple[str, ...]:
        """The figures `plot` can draw for this run: forecasts for forecasting tasks, the
        weight-space figures for WARP models."""
        kinds = ["forecasts"] if task_kind(self.system) == "forecast" else []
        if self.config.model in ("warp", "warp-phys"):
            kinds += ["pca", "weights", "matrices"]
        return tuple(kinds)

    def plot(self, what=FIGURES, *, count: int = 256, max_steps: int = 128) -> list[Path]:
        """Draw `what` (any of `FIGURES`) into `plots/` from the best model and return the
        files written. The weight-space figures (see `warp_phys.analysis`) fit the PCA on
        the first `count` training sequences and show the test splits, keeping at most
        `max_steps` steps per sequence; their numbers go to `analysis.json`."""
        from . import analysis

        unknown = [w for w in what if w not in FIGURES]
        if unknown:
            raise WarpPhysError(f"unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)} or all")
        missing = [w for w in what if w not in self.figures()]
        if missing:
            why = ("forecasts are drawn for forecasting tasks only" if missing[0] == "forecasts"
                   else f"weight-space figures need a WARP model; this run trained {self.config.model}")
            raise WarpPhysError(f"cannot draw {missing[0]} for {self.path}: {why}")
        system, model, folder = self.system, self.load_model(), self.path / "plots"
        ood = "test-ood" if "test-ood" in system.splits else "test-paper"
        names = (["train"] if set(what) - {"forecasts", "matrices"} else []) + ["test-id", ood]
        data = load_splits(system, self.config, names)
        written = []
        if "forecasts" in what:
            written.append(plot_forecasts(model, data, self.normaliser, folder / "forecasts.png",
                                          label=self.config.model))
        if "matrices" in what:
            matrices = analysis.transition_matrices(model)
            written.append(save_figure(matrices_figure(matrices), folder / "matrices.png"))
        if not set(what) & {"pca", "weights"}:
            return written
        stride = max(1, system.steps // max_steps)
        trajectories = {split: analysis.weight_trajectories(model, data[split], self.normaliser,
                                                            stride=stride, count=count)
                        for split in names}
        pca = analysis.PCA.fit(trajectories["train"].theta)
        tests = {s: t for s, t in trajectories.items() if s != "train"}
        probe = analysis.probe(pca, trajectories["train"], tests)
        correlation = analysis.tau_correlation(tests["test-id"])
        if "pca" in what:
            written.append(save_figure(pca_figure(pca, trajectories), folder / "pca.png"))
            written.append(save_figure(probe_figure(probe), folder / "probe.png"))
        if "weights" in what:
            written.append(save_figure(weights_figure(tests["test-id"], correlation),
                                       folder / "weights.png"))
        write_json(self.path / "analysis.json", {
            "pca_explained_variance_ratio": pca.explained_variance_ratio.tolist(),
            "probe": {"step": probe["step"], "components": probe["components"],
                      "r2": {split: dict(zip(probe["names"], r2.T.tolist()))
                             for split, r2 in probe["r2"].items()}},
            "tau_correlation": {"median_abs": float(np.median(np.abs(correlation))),
                                "fraction_abs_above_0.9": float(np.mean(np.abs(correlation) > 0.9))},
        })
        return written


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
