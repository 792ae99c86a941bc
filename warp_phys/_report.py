"""What a run reports: its test metrics, its figures, and what a grey-box model inferred.

`finish` is the end of every training run: the best model's test metrics
(`metrics.json`), the loss and forecast figures, and for WARP-Phys the inferred parameters
(`parameters-*.csv`, `parameters.md`, `plots/parameters.png`, `law.md`). `plot` draws a
saved run's figures on demand (`warp-phys plot`). Each takes a `warp_phys.Run` (this
module sits below the run directories, which it does not import).
"""

import csv
import io
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import analysis
from ._errors import WarpPhysError
from ._evaluate import metrics, outputs
from ._greybox import learned_law, parameter_report
from ._recover import recover_term
from ._io import write_json, write_text
from ._plots import (
    matrices_figure, pca_figure, plot_forecasts, plot_losses, plot_parameters, plot_terms,
    probe_figure, save_figure, weights_figure,
)
from ._tasks import Forecast


FIGURES = ("forecasts", "pca", "weights", "matrices")


def finish(run, data: dict, *, history: list, note: str | None = None,
           progress: bool = False) -> dict:
    """Evaluate the run's best model on every test split (with a progress bar), draw its
    figures, export what a grey-box model inferred, and write `metrics.json`."""
    trained, task = run.load_model(), run.task
    model = run.config.model.inference(trained)
    tests = [s for s in run.system.splits if s.startswith("test")]
    results = {s: metrics(model, data[s], run.normaliser, task)
               for s in tqdm(tests, desc="test", unit="split", disable=not progress, leave=False)}
    summary = {"best_epoch": run.best_epoch(), "epochs_run": len(history),
               "seconds_per_epoch": float(np.median([h["seconds"] for h in history]))
               if history else None, "note": note, "splits": results}
    if model is not trained:  # what refinement on the context costs
        summary["refine"] = refine_cost(trained, model, data["test-id"], run.normaliser, task)
    plot_losses(history, run.path / "plots" / "losses.png")
    if isinstance(task, Forecast):
        plot_forecasts(model, data, run.normaliser, run.path / "plots" / "forecasts.png",
                       label=run.config.model.name)
        if run.config.model.grey_box:
            summary["parameters"] = export_parameters(run, model, data)
    run.save_metrics(summary)
    return summary


def refine_cost(trained, refined, dataset, normaliser, task) -> dict:
    """The seconds per trajectory that in-context refinement adds to a forecast of
    `dataset` (each model timed after a first call that compiles it)."""
    seconds = []
    for model in (trained, refined):
        outputs(model, dataset, normaliser, task)
        start = time.perf_counter()
        outputs(model, dataset, normaliser, task)
        seconds.append(time.perf_counter() - start)
    n = len(dataset)
    return {"steps": refined.steps, "seconds_per_trajectory": (seconds[1] - seconds[0]) / n,
            "forecast_seconds_per_trajectory": seconds[0] / n, "n": n}


def export_parameters(run, model, data) -> dict:
    """What a WARP-Phys model inferred for each test trajectory, against the truth:
    `parameters-<split>.csv`, `parameters.md` (MAE, median relative error, R^2),
    `plots/parameters.png` and `law.md` (the learned law as SymPy expressions)."""
    system = run.system
    report = parameter_report(model, system, data, run.normaliser)
    names = report["names"]
    for split, (true, inferred) in report["values"].items():
        text = io.StringIO()  # names such as M[1,0] hold commas: let csv quote them
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow([f"true_{n}" for n in names] + [f"inferred_{n}" for n in names])
        writer.writerows([[f"{v:.8g}" for v in row] for row in np.concatenate([true, inferred], 1)])
        write_text(run.path / f"parameters-{split}.csv", text.getvalue())
    lines = _accuracy_table(report)
    law = ["# Learned law", "",
           "The declared law with the parameters the model inferred from each sequence's "
           "context (first three `test-id` sequences), beside the true parameters.", ""]
    for i, p in enumerate(report["parameters"]["test-id"][:3]):
        law.append(f"## test-id sequence {i}")
        law.append("true: " + ", ".join(f"{s.name} = {v:.4g}" for s, v in
                                         zip(system.free_parameters, data["test-id"].params[i])))
        law += ["", "```"] + [str(eq) for eq in learned_law(system, p)] + ["```", ""]
    law += _recovered(run, model, data)
    write_text(run.path / "parameters.md", "\n".join(lines) + "\n")
    write_text(run.path / "law.md", "\n".join(law))
    plot_parameters(report, run.path / "plots" / "parameters.png")
    if "before" in report:
        return {**report["summary"], "before_refinement": report["before"]["summary"]}
    return report["summary"]


def _recovered(run, model, data) -> list[str]:
    """`law.md`'s section on the law's unknown terms: each learned network as a sparse
    expression (`warp_phys.recover_term`), with `plots/terms.png`."""
    root, system = model.root, run.system
    if root.terms is None:
        return []
    lines = ["## Unknown terms", ""]
    if root.shared is None:
        return lines + ["Each trajectory's theta carries its own weights of the terms "
                        "(term_shared false): train with term_shared true for one expression "
                        "to recover.", ""]
    train = data.get("train") or run.data(["train"])["train"]
    recovered = [recover_term(system, root.terms, root.shared, train, j)
                 for j in range(len(system.unknowns))]
    plot_terms(recovered, run.path / "plots" / "terms.png")
    for term in recovered:
        lines += ["```", term.markdown().split("\n\n")[0], "```", "",
                  term.markdown().split("\n\n")[1], ""]
    run_summary = {t.name: {"expression": str(t.expression), "relative_error": t.relative_error,
                            "ranges": t.ranges} for t in recovered}
    write_json(run.path / "terms.json", run_summary)
    return lines


def _accuracy_table(report: dict) -> list[str]:
    """`parameters.md`'s table: each inferred quantity's accuracy on each test split (and,
    with in-context refinement, before it)."""
    columns = [("MAE", "mae", "{:.4g}"), ("median relative error", "median_relative_error",
                                          "{:.3%}"), ("R^2", "r2", "{:.4f}")]
    parts = [("", report["summary"])]
    if "before" in report:
        parts.append((" before refinement", report["before"]["summary"]))
    head = [f"{title}{suffix}" for suffix, _ in parts for title, _, _ in columns]
    lines = ["| split | parameter | " + " | ".join(head) + " |",
             "|---|---|" + "---|" * len(head)]
    for split, per in report["summary"].items():
        for name in per:
            cells = [("n/a" if table[split][name][key] is None else form.format(
                table[split][name][key])) for _, table in parts for _, key, form in columns]
            lines.append(f"| {split} | {name} | " + " | ".join(cells) + " |")
    return lines


def figures(run) -> tuple[str, ...]:
    """The figures `plot` can draw for `run`: forecasts for forecasting tasks, the
    weight-space figures for WARP models."""
    kinds = ["forecasts"] if isinstance(run.task, Forecast) else []
    if run.config.model.weight_space:
        kinds += ["pca", "weights", "matrices"]
    return tuple(kinds)


def plot(run, what=FIGURES, *, count: int = 256, max_steps: int = 128) -> list[Path]:
    """Draw `what` (any of `FIGURES`) into `plots/` from the best model and return the
    files written. The weight-space figures (see `warp_phys.analysis`) fit the PCA on the
    first `count` training sequences and show the test splits, keeping at most
    `max_steps` steps per sequence; their numbers go to `analysis.json`."""
    unknown = [w for w in what if w not in FIGURES]
    if unknown:
        raise WarpPhysError(f"unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)} or all")
    missing = [w for w in what if w not in figures(run)]
    if missing:
        why = ("forecasts are drawn for forecasting tasks only" if missing[0] == "forecasts"
               else f"weight-space figures need a WARP model; this run trained "
                    f"{run.config.model.name}")
        raise WarpPhysError(f"cannot draw {missing[0]} for {run.path}: {why}")
    system, model, folder = run.system, run.load_model(), run.path / "plots"
    names = ((["train"] if set(what) - {"forecasts", "matrices"} else []) + ["test-id"]
             + [s for s in [system.ood_split] if s])
    data = run.data(names)
    written = []
    if "forecasts" in what:
        written.append(plot_forecasts(run.config.model.inference(model), data, run.normaliser,
                                      folder / "forecasts.png",
                                      label=run.config.model.name))
    if "matrices" in what:
        matrices = analysis.transition_matrices(model)
        written.append(save_figure(matrices_figure(matrices), folder / "matrices.png"))
    if set(what) & {"pca", "weights"}:
        written += _weight_space(run, model, data, names, what, count, max_steps)
    return written


def _weight_space(run, model, data, names, what, count: int, max_steps: int) -> list[Path]:
    folder, written = run.path / "plots", []
    stride = max(1, run.system.steps // max_steps)
    trajectories = {split: analysis.weight_trajectories(model, data[split], run.normaliser,
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
    write_json(run.path / "analysis.json", {
        "pca_explained_variance_ratio": pca.explained_variance_ratio.tolist(),
        "probe": {"step": probe["step"], "components": probe["components"],
                  "r2": {split: dict(zip(probe["names"], r2.T.tolist()))
                         for split, r2 in probe["r2"].items()}},
        "tau_correlation": {"median_abs": float(np.median(np.abs(correlation))),
                            "fraction_abs_above_0.9": float(np.mean(np.abs(correlation) > 0.9))},
    })
    return written
