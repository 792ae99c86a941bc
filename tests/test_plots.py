"""The figures of `warp_phys._plots`, built from small synthetic inputs shaped like the real
ones: every axis is labelled, the loss figure keeps its two units apart, the PCA figure
stays readable at 256 sequences, the probe figure says what R^2 <= 0 means."""

import dataclasses
import types

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from warp_phys import _plots, analysis  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def captured(monkeypatch):
    """The figures that the `plot_*` functions would save, kept open instead."""
    figures = []

    def keep(fig, path):
        figures.append(fig)
        return path

    monkeypatch.setattr(_plots, "save_figure", keep)
    return figures


def assert_labelled(fig):
    """Every Axes of `fig` has an x and a y label; a colour bar has its label."""
    assert fig.axes
    for ax in fig.axes:
        if hasattr(ax, "_colorbar"):
            assert ax.get_ylabel().strip() or ax.get_xlabel().strip(), "unlabelled colour bar"
            continue
        where = ax.get_title() or repr(ax)
        assert ax.get_xlabel().strip(), f"no x label on {where}"
        assert ax.get_ylabel().strip(), f"no y label on {where}"


def texts(fig) -> str:
    """All the text a figure shows: titles, labels, annotations, legends."""
    found = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    return "\n".join(found)


def history(epochs=40, *, classify=False, val_every=1):
    rng = np.random.default_rng(0)
    records = []
    for e in range(1, epochs + 1):
        record = {"epoch": e, "train_loss": float(2.0 * np.exp(-e / 6) + 1e-3), "lr": 1e-3,
                  "seconds": 0.1, "forcing": 1.0}
        if e % val_every == 0:
            if classify:
                record.update(val_accuracy=float(min(1.0, 0.5 + e / 60)), val_cross_entropy=0.3)
            else:
                record.update(val_mse=float(50 * np.exp(-e / 8) + 0.05 + 0.02 * rng.random()),
                              val_mae=0.1, val_mse_whole=0.1, val_naive_mse=3.0, val_naive_mae=1.0,
                              val_diverged=0)
        records.append(record)
    return records


# ------------------------------------------------------------------------------ losses


def test_loss_figure_keeps_training_loss_and_validation_mse_apart(captured, tmp_path):
    records = history(40)
    records[30]["val_mse"] = 0.01  # the best epoch, to be marked
    _plots.plot_losses(records, tmp_path / "losses.png")
    (fig,) = captured
    assert_labelled(fig)
    assert len(fig.axes) == 2
    ylabels = [ax.get_ylabel() for ax in fig.axes]
    assert ylabels[0] != ylabels[1]
    assert "normalised" in ylabels[0] and "training loss" in ylabels[0]
    assert "validation MSE" in ylabels[1] and "data units" in ylabels[1]
    # Both span decades here: log scales.
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "log"]
    assert "best epoch 31" in texts(fig)
    # The best epoch is marked on both panels.
    for ax in fig.axes:
        assert any(np.allclose(line.get_xdata(), 31) for line in ax.lines)


def test_loss_figure_of_a_classifier_shows_accuracy(captured, tmp_path):
    _plots.plot_losses(history(12, classify=True, val_every=3), tmp_path / "losses.png")
    (fig,) = captured
    assert_labelled(fig)
    loss, val = fig.axes
    assert "accuracy" in val.get_ylabel() and val.get_yscale() == "linear"
    assert "MSE" not in val.get_ylabel()
    assert "best epoch 12" in texts(fig)  # accuracy: the highest is best


def test_loss_figure_of_flat_or_empty_histories(captured, tmp_path):
    flat = [{"epoch": e, "train_loss": -1.0 + 0.01 * e, "val_mse": 0.5} for e in range(1, 6)]
    _plots.plot_losses(flat, tmp_path / "flat.png")  # an NLL loss can be negative: no log scale
    _plots.plot_losses([], tmp_path / "empty.png")
    for fig in captured:
        assert_labelled(fig)
        assert len(fig.axes) == 2
    assert captured[0].axes[0].get_yscale() == "linear"
    assert "best epoch 1" in texts(captured[0])  # the first of equal scores is kept


def test_loss_figure_is_written(tmp_path):
    path = _plots.plot_losses(history(5), tmp_path / "plots" / "losses.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------ run figures


class Identity:
    def __call__(self, x):
        return np.asarray(x)

    def inverse(self, x):
        return np.asarray(x)


def split(name, n=4, steps=50, context=20):
    t = np.linspace(0, 10, steps)
    params = np.linspace(0.5, 2.0, n)[:, None] * np.ones((1, 2))
    y = np.stack([np.sin(params[:, :1] * t), np.cos(params[:, :1] * t)], axis=-1)
    meta = {"context": context, "param_names": ["k", "c"], "state_names": ["x", "v"]}
    return types.SimpleNamespace(t=t, y=y, inputs=y, targets=y, params=params, context=context, extras={},
                                 split=name, meta=meta, param_names=("k", "c"),
                                 state_names=("x", "v"))


def test_forecast_figure_is_labelled(captured, monkeypatch, tmp_path):
    # A stand-in for the model call: forecast step k + 1 from step k, with an error.
    monkeypatch.setattr(_plots, "predict", lambda model, x, forced: np.roll(x, -1, axis=1) * 1.1)
    data = {"test-id": split("test-id"), "test-ood": split("test-ood")}
    _plots.plot_forecasts(None, data, Identity(), tmp_path / "forecasts.png", label="warp")
    (fig,) = captured
    assert len(fig.axes) == 2 * 2 * 3
    assert_labelled(fig)
    assert "context" in texts(fig)


def test_parameter_figure_is_labelled(captured, tmp_path):
    rng = np.random.default_rng(0)
    true = rng.uniform(0.5, 2, size=(30, 2))
    report = {"names": ["k", "c"],
              "values": {"test-id": (true, true + 0.05 * rng.normal(size=true.shape)),
                         "test-ood": (true * 2, true * 2.1)},
              "summary": {"test-id": {"k": {"r2": 0.98}, "c": {"r2": None}}}}
    _plots.plot_parameters(report, tmp_path / "parameters.png")
    (fig,) = captured
    assert len(fig.axes) == 2
    assert_labelled(fig)
    assert "R^2 = 0.980" in texts(fig)


def test_distance_figure_is_labelled(captured, tmp_path):
    rng = np.random.default_rng(0)
    distance = rng.uniform(0, 2, 100)
    errors = {"warp": np.exp(distance) * 1e-3, "gru": np.where(distance > 1.9, np.inf, distance)}
    _plots.plot_distance(distance, errors, tmp_path / "distance.png", title="msd: test-paper")
    (fig,) = captured
    assert_labelled(fig)
    assert "data units" in fig.axes[0].get_ylabel()


# ------------------------------------------------------------------------------ weight space


def trajectories(name, n=256, steps=120, size=24, seed=0, scale=1.0):
    """Spirals that decay at a rate set by the first parameter, spread over `size` weights."""
    rng = np.random.default_rng(seed)
    params = rng.uniform(0.5, 2.0, size=(n, 2)) * scale
    tau = np.linspace(0, 1, steps)
    angle = 12 * tau[None, :] * params[:, 1:2]
    radius = np.exp(-3 * tau[None, :] * params[:, :1])
    plane = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1)
    mixing = np.random.default_rng(99).normal(size=(2, size))  # one model: the same for every split
    theta = plane @ mixing + 0.02 * rng.normal(size=(n, steps, size))
    return analysis.WeightTrajectories(theta, np.arange(steps), tau, params, ("m", "k"), 40, name)


@pytest.fixture(scope="module")
def weight_space():
    traj = {"train": trajectories("train"), "test-id": trajectories("test-id", seed=1),
            "test-ood": trajectories("test-ood", seed=2, scale=1.5)}
    pca = analysis.PCA.fit(traj["train"].theta, components=10)
    return pca, traj


def drawn_sequences(ax, steps=120) -> float:
    """How many sequences a PCA panel draws as lines: its Line2D objects, plus the polylines
    of its line collections (one a sequence, or steps - 1 two-point segments a sequence when
    the colour changes along time)."""
    count = float(sum(len(line.get_xdata()) > 2 for line in ax.lines))
    for collection in ax.collections:
        if isinstance(collection, LineCollection):
            segments = collection.get_segments()
            pieces = all(len(segment) == 2 for segment in segments)
            count += len(segments) / (steps - 1) if pieces else len(segments)
    return count


def test_pca_figure_is_readable_at_256_sequences(weight_space):
    pca, traj = weight_space
    fig = analysis.pca_figure(pca, traj)
    assert_labelled(fig)
    panels = [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]
    assert len(panels) == 3 * 3  # three splits, by tau and by each of two parameters
    shown = fig.get_suptitle()
    assert "32 sequences per split" in shown and "256 train" in shown and "density" in shown
    for ax in panels:
        assert 0 < drawn_sequences(ax) <= 32, ax.get_title()
        assert "32 of 256" in ax.get_title()
    # The count is a parameter: fewer lines when asked for fewer.
    fig = analysis.pca_figure(pca, traj, count=8)
    for ax in fig.axes:
        if not hasattr(ax, "_colorbar"):
            assert 0 < drawn_sequences(ax) <= 8


def test_pca_figure_with_one_component(weight_space):
    _, traj = weight_space
    pca = analysis.PCA.fit(traj["train"].theta, components=1)
    small = {s: dataclasses.replace(t, theta=t.theta[:10]) for s, t in traj.items()}
    fig = analysis.pca_figure(pca, small)
    assert_labelled(fig)
    assert "tau" in fig.axes[0].get_ylabel()


def test_probe_figure_says_what_r2_below_zero_means(weight_space):
    pca, traj = weight_space
    tests = {s: traj[s] for s in ("test-id", "test-ood")}
    result = analysis.probe(pca, traj["train"], tests)
    result["r2"]["test-ood"][0, 0] = -7.0  # far below the axis: drawn at its edge
    fig = analysis.probe_figure(result)
    assert_labelled(fig)
    shown = texts(fig)
    assert "R^2 <= 0" in shown and "mean" in shown
    for ax in fig.axes:
        assert ax.get_ylim()[0] < 0  # the region is in view
        assert any(np.allclose(line.get_ydata(), 0) for line in ax.lines)  # the zero line


def test_weights_and_matrices_figures_are_labelled(weight_space):
    _, traj = weight_space
    correlation = analysis.tau_correlation(traj["test-id"])
    assert_labelled(analysis.weights_figure(traj["test-id"], correlation))
    rng = np.random.default_rng(0)
    A = np.eye(12) + 0.05 * rng.normal(size=(12, 12))
    matrices = {"A": A, "B": rng.normal(size=(12, 2)), "eigenvalues": np.linalg.eigvals(A)}
    fig = analysis.matrices_figure(matrices)
    assert_labelled(fig)
    assert sum(hasattr(ax, "_colorbar") for ax in fig.axes) == 2
