"""Figures of a run: loss curves, and forecasts against the truth with the context shaded."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ._evaluate import Normaliser, inference_mask, predict  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    """Save `fig` to `path` (through a temporary file) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_losses(history: list[dict], path: Path) -> Path:
    """Training loss and validation error per epoch (log scale)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    val = [(h["epoch"], h.get("val_mse", 1 - h.get("val_accuracy", np.nan))) for h in history
           if "val_mse" in h or "val_accuracy" in h]
    if val:
        ax.plot(*zip(*val), label="val forecast MSE" if "val_mse" in history[-1] else "val error rate")
    ax.set(xlabel="epoch", yscale="log", title="training")
    ax.legend()
    return save_figure(fig, path)


def plot_forecasts(model, data: dict, normaliser: Normaliser, path: Path, *, count: int = 3,
                   label: str = "model") -> Path:
    """Forecasts against truth for the first `count` trajectories of `test-id` and of the
    out-of-distribution split (`test-ood`, else `test-paper`), context shaded."""
    ood = "test-ood" if "test-ood" in data else "test-paper"
    splits = ["test-id", ood]
    d = data["test-id"].y.shape[-1]
    fig, axes = plt.subplots(len(splits) * d, count, figsize=(3.6 * count, 2.2 * len(splits) * d),
                             squeeze=False, sharex=True)
    for s, split in enumerate(splits):
        dataset = data[split]
        x = normaliser(dataset.inputs[:count]).astype(np.float32)
        n, steps, _ = x.shape
        mean = normaliser.inverse(predict(model, x, inference_mask("forecast", n, steps, dataset.context)))
        t, c = dataset.t, dataset.context
        for j in range(n):
            for i in range(d):
                ax = axes[s * d + i, j]
                ax.axvspan(t[0], t[c - 1], color="grey", alpha=0.2)
                ax.plot(t, dataset.targets[j, :, i], "k", lw=1.2, label="truth")
                ax.plot(t[1:], mean[j, :-1, i], "C1--", lw=1.2, label=label)
                params = ", ".join(f"{k}={v:.3g}" for k, v in zip(dataset.param_names, dataset.params[j]))
                ax.set_title(f"{split}: {params}", fontsize=7)
                ax.set_ylabel(dataset.state_names[i])
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_parameters(report: dict, path: Path) -> Path:
    """Inferred against true physical parameters, one panel per inferred parameter, one
    colour per test split (`report` as from `warp_phys.parameter_report`)."""
    names = report["names"]
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.2), squeeze=False)
    for i, name in enumerate(names):
        ax = axes[0, i]
        for c, (split, (true, inferred)) in enumerate(report["values"].items()):
            ax.scatter(true[:, i], inferred[:, i], s=6, alpha=0.6, color=f"C{c}", label=split)
        low = min(v[:, i].min() for pair in report["values"].values() for v in pair)
        high = max(v[:, i].max() for pair in report["values"].values() for v in pair)
        ax.plot([low, high], [low, high], "k", lw=0.8)
        ax.set(xlabel=f"true {name}", ylabel=f"inferred {name}")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_distance(distance: np.ndarray, errors: dict[str, np.ndarray], path: Path, *,
                  title: str = "") -> Path:
    """Each test trajectory's forecast MSE against its distance from the training box, one
    colour per model, with each model's median in distance bins."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    edges = np.unique(np.quantile(distance, np.linspace(0, 1, 9)))
    for c, (model, err) in enumerate(errors.items()):
        shown = np.where(np.isfinite(err), err, np.nan)
        ax.scatter(distance, shown, s=4, alpha=0.25, color=f"C{c}")
        centres, medians = [], []
        for low, high in zip(edges[:-1], edges[1:]):
            inside = (distance >= low) & (distance <= high)
            if inside.any():
                centres.append((low + high) / 2)
                medians.append(np.nanmedian(shown[inside]))
        ax.plot(centres, medians, "-o", ms=3, color=f"C{c}", label=model)
    ax.set(xlabel="distance from the training box (in training-range widths)",
           ylabel="forecast MSE per trajectory", yscale="log", title=title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------ weight space
# These take the arrays of `warp_phys.analysis` and return figures; nothing is saved.


def pca_figure(pca, trajectories: dict, *, count: int = 64):
    """Weight trajectories on the first two principal axes (PC1 against tau when there is
    one axis): one row per split, coloured by time and then by each true parameter, on
    colour scales shared by the rows so out-of-distribution values stand out."""
    splits = list(trajectories)
    first = trajectories[splits[0]]
    names = ["tau"] + list(first.param_names)
    fig, axes = plt.subplots(len(splits), len(names), figsize=(3.3 * len(names), 2.9 * len(splits)),
                             squeeze=False, sharex=True, sharey=True, layout="constrained")
    scores = {s: pca.transform(t.theta[:count]) for s, t in trajectories.items()}
    two = scores[splits[0]].shape[-1] >= 2
    ranges = [(np.min([t.params[:count, i].min() for t in trajectories.values()]),
               np.max([t.params[:count, i].max() for t in trajectories.values()]))
              for i in range(len(names) - 1)]
    for r, split in enumerate(splits):
        traj, z = trajectories[split], scores[split]
        xs = z[..., 0]
        ys = z[..., 1] if two else np.broadcast_to(traj.tau, xs.shape)
        for c, name in enumerate(names):
            ax = axes[r, c]
            ax.plot(xs.T, ys.T, color="0.8", lw=0.4, zorder=0)
            if c == 0:
                colour = np.broadcast_to(traj.tau, xs.shape)
                image = ax.scatter(xs, ys, c=colour, s=2, cmap="plasma", vmin=0, vmax=traj.tau.max())
            else:
                colour = np.broadcast_to(traj.params[:count, c - 1, None], xs.shape)
                low, high = ranges[c - 1]
                image = ax.scatter(xs, ys, c=colour, s=2, cmap="viridis", vmin=low, vmax=high)
            ax.scatter(xs[:, 0], ys[:, 0], marker="x", s=12, c="k", lw=0.6, zorder=3)
            if r == 0:
                fig.colorbar(image, ax=axes[:, c], shrink=0.8, label=name)
            ax.set_title(f"{split} by {name}", fontsize=8)
            if r == len(splits) - 1:
                ax.set_xlabel(f"PC1 ({pca.explained_variance_ratio[0]:.0%})")
            if c == 0:
                ax.set_ylabel(f"PC2 ({pca.explained_variance_ratio[1]:.0%})" if two else "tau")
    return fig


def probe_figure(result: dict):
    """R^2 of the linear probe (`warp_phys.analysis.probe`) against the number of principal
    components it reads, one panel per split, one line per parameter."""
    splits = list(result["r2"])
    fig, axes = plt.subplots(1, len(splits), figsize=(3.8 * len(splits), 3.2), squeeze=False,
                             sharey=True)
    for ax, split in zip(axes[0], splits):
        r2 = result["r2"][split]
        for i, name in enumerate(result["names"]):
            ax.plot(result["components"], r2[:, i], "-o", ms=3, label=name)
        ax.axhline(0, color="k", lw=0.6)
        ax.set(xlabel="principal components read", title=f"{split}, step {result['step']}",
               ylim=(max(-1.0, np.nanmin([r.min() for r in result["r2"].values()]) - 0.05), 1.02))
        ax.set_xscale("log")
    axes[0, 0].set_ylabel("R^2 of the true parameter")
    axes[0, 0].legend(fontsize=7)
    return fig


def weights_figure(trajectories, correlation: np.ndarray, *, count: int = 6, sequences: int = 3):
    """Left: the `count` weights that vary most, against tau, for the first `sequences`
    sequences (one colour per weight, one line style per sequence), the context shaded.
    Right: the correlation of every weight with tau (the paper's readout figure)."""
    fig, (ax, ax_corr) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    theta = trajectories.theta
    top = np.argsort(theta.var(axis=(0, 1)))[::-1][:count]
    context_tau = trajectories.tau[np.searchsorted(trajectories.steps, trajectories.context - 1)]
    ax.axvspan(trajectories.tau[0], context_tau, color="grey", alpha=0.2)
    for s, style in zip(range(min(sequences, len(theta))), ["-", "--", ":"]):
        for c, j in enumerate(top):
            ax.plot(trajectories.tau, theta[s, :, j], style, color=f"C{c}", lw=1,
                    label=f"theta[{j}]" if s == 0 else None)
    ax.set(xlabel="tau", ylabel="weight", title=f"{trajectories.split}: the {count} weights that "
           "vary most (line style: sequence)")
    ax.legend(fontsize=6, ncol=2)
    ax_corr.hist(correlation, bins=np.linspace(-1, 1, 41), color="C0")
    ax_corr.set(xlabel="correlation of theta[j] with tau", ylabel="weights",
                title=f"{np.mean(np.abs(correlation) > 0.9):.0%} of weights have |r| > 0.9")
    fig.tight_layout()
    return fig


def matrices_figure(matrices: dict):
    """A - I and B (what training changed; A starts at the identity, B at zero) and the
    eigenvalues of A against the unit circle."""
    A, B, eig = matrices["A"], matrices["B"], matrices["eigenvalues"]
    fig, (ax_a, ax_b, ax_e) = plt.subplots(1, 3, figsize=(13, 4),
                                           gridspec_kw={"width_ratios": [4, 1.3, 3]})
    delta = A - np.eye(len(A))
    bound = np.abs(delta).max() or 1.0
    image = ax_a.imshow(delta, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
    fig.colorbar(image, ax=ax_a, shrink=0.8)
    ax_a.set_title(f"A - I  ({len(A)} x {len(A)})")
    bound = np.abs(B).max() or 1.0
    image = ax_b.imshow(B, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto",
                        interpolation="nearest")
    fig.colorbar(image, ax=ax_b, shrink=0.8)
    ax_b.set_title(f"B  ({B.shape[0]} x {B.shape[1]})")
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 200))
    ax_e.plot(circle.real, circle.imag, "k", lw=0.6)
    ax_e.scatter(eig.real, eig.imag, s=5, alpha=0.6)
    ax_e.set(aspect="equal", xlabel="Re", ylabel="Im",
             title=f"eigenvalues of A (largest |lambda| = {np.abs(eig).max():.4f})")
    fig.tight_layout()
    return fig
