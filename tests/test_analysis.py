"""Weight-space analysis: trajectories, PCA, tau correlation, the linear probe, A and B,
and `warp-phys plot`."""

import dataclasses
import json

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import warp_phys as wp
from warp_phys import analysis

from .test_cli import run as cli
from .test_train import tiny_config


def trajectories(theta, params=None, context=3):
    n, steps, _ = theta.shape
    params = np.zeros((n, 1)) if params is None else params
    return analysis.WeightTrajectories(theta, np.arange(steps), np.linspace(0, 1, steps), params,
                                       tuple(f"p{i}" for i in range(params.shape[1])), context,
                                       "test")


@pytest.fixture(scope="module")
def msd_run(tmp_path_factory):
    config = tiny_config("msd", epochs=1, width=8, depth=1)
    return wp.fit(config, runs_dir=tmp_path_factory.mktemp("runs"), progress=False)


# ------------------------------------------------------------------------------ trajectories


def test_weight_trajectories_run_as_at_test_time(msd_run):
    model = msd_run.load_model()
    data = wp.generate(msd_run.system, "test-id", 16, seed=0)
    full = analysis.weight_trajectories(model, data, msd_run.normaliser)
    n, T, d = data.y.shape
    assert full.theta.shape == (n, T, model.size) and full.params.shape == (n, 3)
    np.testing.assert_array_equal(full.params, data.params)
    np.testing.assert_allclose(full.tau, np.arange(1, T + 1) / (T - 1))
    # After the context the model reads its own forecasts, never the truth: scrambling the
    # truth there changes nothing, scrambling it inside the context changes everything.
    c = data.context
    late = np.array(data.y)
    late[:, c:] = 1e3
    scrambled = dataclasses.replace(data, y=late, inputs=late, targets=late)
    np.testing.assert_allclose(
        analysis.weight_trajectories(model, scrambled, msd_run.normaliser).theta, full.theta,
        rtol=1e-6, atol=1e-7)
    early = np.array(data.y)
    early[:, 1:c] *= -1
    changed = dataclasses.replace(data, y=early, inputs=early, targets=early)
    assert not np.allclose(analysis.weight_trajectories(model, changed, msd_run.normaliser).theta[:, c],
                           full.theta[:, c])
    # The recurrence seen through `states` with the same inputs as inference.
    x = msd_run.normaliser(data.inputs).astype(np.float32)
    forced = np.broadcast_to(np.arange(T) < c, (n, T)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model.states(jnp.asarray(x), jnp.asarray(forced))).swapaxes(0, 1),
                               full.theta, rtol=1e-5, atol=1e-6)
    # A stride keeps every stride-th step, the last context step and the last step.
    strided = analysis.weight_trajectories(model, data, msd_run.normaliser, stride=50, count=5)
    assert strided.steps.tolist() == [0, 50, 99, 100, 150, 200, 250, 255]
    np.testing.assert_array_equal(strided.theta, full.theta[:5, strided.steps])
    np.testing.assert_array_equal(strided.at(c - 1), full.theta[:5, c - 1])
    with pytest.raises(wp.WarpPhysError, match="not kept"):
        strided.at(7)


def test_weight_trajectories_need_warp():
    gru = wp.make_gru(2, 2, 16, hidden=4, key=jr.PRNGKey(0))
    data = wp.generate(wp.load_system("msd"), "test-id", 2, seed=0)
    with pytest.raises(wp.WarpPhysError, match="need a WARP model"):
        analysis.weight_trajectories(gru, data, None)
    with pytest.raises(wp.WarpPhysError, match="WARP models"):
        analysis.transition_matrices(gru)


# ------------------------------------------------------------------------------ PCA


@pytest.mark.parametrize("points", [40, 4000])  # fewer and more points than dimensions
def test_pca_recovers_known_axes(points):
    rng = np.random.default_rng(0)
    D = 60
    axes, _ = np.linalg.qr(rng.normal(size=(D, D)))
    spread = np.array([5.0, 3.0, 2.0] + [0.01] * (D - 3))
    theta = (rng.normal(size=(points, D)) * spread) @ axes.T + 7.0
    pca = analysis.PCA.fit(theta.reshape(points // 4, 4, D), components=5)
    for i in range(3):  # the leading axes, up to sign
        assert abs(pca.components[i] @ axes[:, i]) > 0.99
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(5), atol=1e-10)
    assert np.all(np.diff(pca.explained_variance) <= 0)
    np.testing.assert_allclose(pca.explained_variance_ratio[:3].sum(), 1.0, atol=0.02)
    # All components reconstruct exactly; the leading three nearly so.
    full = analysis.PCA.fit(theta, components=D)
    np.testing.assert_allclose(full.inverse(full.transform(theta)), theta, atol=1e-9)
    assert np.abs(pca.inverse(pca.transform(theta)[:, :3]) - theta).max() < 0.1
    # Against a plain SVD of the centred points (with fewer points than dimensions the fit
    # goes through the Gram matrix, else through the covariance), up to sign.
    _, s, vt = np.linalg.svd(theta - theta.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(np.abs(pca.components @ vt[:5].T), np.eye(5), atol=1e-6)
    np.testing.assert_allclose(pca.explained_variance, s[:5] ** 2 / (points - 1), rtol=1e-9)


def test_tau_correlation():
    tau = np.linspace(0, 1, 20)
    rng = np.random.default_rng(1)
    theta = np.stack([np.broadcast_to(tau, (8, 20)),
                      np.broadcast_to(3 - 2 * tau, (8, 20)),
                      np.full((8, 20), 4.0),
                      rng.normal(size=(8, 20))], axis=-1)
    r = analysis.tau_correlation(trajectories(theta))
    np.testing.assert_allclose(r[:3], [1.0, -1.0, 0.0], atol=1e-12)
    assert abs(r[3]) < 0.2


def test_probe_reads_parameters_that_are_there():
    rng = np.random.default_rng(2)
    n, steps, D = 200, 4, 30
    params = rng.uniform(size=(n, 2))
    mixing = rng.normal(size=(2, D))
    signal = params @ mixing * 10 + rng.normal(size=(n, D)) * 0.01
    theta = np.repeat(signal[:, None], steps, axis=1)
    train, test = trajectories(theta[:150], params[:150]), trajectories(theta[150:], params[150:])
    pca = analysis.PCA.fit(train.theta, components=5)
    result = analysis.probe(pca, train, {"test": test}, components=(1, 2, 5))
    r2 = result["r2"]["test"]
    assert result["components"] == [1, 2, 5] and r2.shape == (3, 2)
    assert np.all(r2[1:] > 0.999)  # two components hold both parameters
    # Weights that carry no parameter predict nothing.
    noise = trajectories(rng.normal(size=(n, steps, D)), params)
    pca = analysis.PCA.fit(noise.theta[:150], components=5)
    blind = analysis.probe(pca, dataclasses.replace(noise, theta=noise.theta[:150], params=params[:150]),
                           {"test": dataclasses.replace(noise, theta=noise.theta[150:], params=params[150:])})
    assert np.all(blind["r2"]["test"] < 0.15)


def test_transition_matrices_of_a_fresh_model():
    model = wp.make_warp(2, 2, 16, width=4, depth=1, key=jr.PRNGKey(0))
    m = analysis.transition_matrices(model)
    np.testing.assert_array_equal(m["A"], np.eye(model.size))
    np.testing.assert_array_equal(m["B"], np.zeros((model.size, 2)))
    np.testing.assert_allclose(m["eigenvalues"], np.ones(model.size))


def test_figures_are_figures(msd_run):
    model = msd_run.load_model()
    data = {s: wp.generate(msd_run.system, s, 16, seed=0) for s in ("test-id", "test-ood")}
    traj = {s: analysis.weight_trajectories(model, d, msd_run.normaliser, stride=16)
            for s, d in data.items()}
    pca = analysis.PCA.fit(traj["test-id"].theta, components=4)
    probe = analysis.probe(pca, traj["test-id"], traj, components=(1, 4))
    figures = [analysis.pca_figure(pca, traj), analysis.probe_figure(probe),
               analysis.weights_figure(traj["test-id"], analysis.tau_correlation(traj["test-id"])),
               analysis.matrices_figure(analysis.transition_matrices(model))]
    import matplotlib.pyplot as plt

    for figure in figures:
        assert isinstance(figure, plt.Figure) and figure.axes
        plt.close(figure)


# ------------------------------------------------------------------------------ CLI


def test_plot_command_writes_figures_and_numbers(msd_run, capsys):
    code, out, err = cli(["plot", str(msd_run.path), "--what", "pca", "--what", "matrices"], capsys)
    assert code == 0, err
    printed = out.split()
    assert printed == [str(msd_run.path / "plots" / name) for name in
                       ("matrices.png", "pca.png", "probe.png")] + [
        "numbers:", str(msd_run.path / "analysis.json")]
    numbers = json.loads((msd_run.path / "analysis.json").read_text())
    ratio = numbers["pca_explained_variance_ratio"]
    assert ratio == sorted(ratio, reverse=True) and 0 < sum(ratio) <= 1 + 1e-9
    assert set(numbers["probe"]["r2"]) == {"test-id", "test-ood"}
    assert numbers["probe"]["step"] == msd_run.system.context - 1

    code, out, err = cli(["plot", str(msd_run.path), "--what", "shapes"], capsys)
    assert code == 2 and "unknown figure 'shapes'" in err and len(err.strip().splitlines()) == 1


def test_plot_all_on_a_baseline_skips_weight_figures(tmp_path, capsys):
    gru = wp.fit(tiny_config("msd", model="gru", epochs=1, hidden=4), runs_dir=tmp_path,
                 progress=False)
    code, out, err = cli(["plot", str(gru.path)], capsys)
    assert code == 0 and out.split() == [str(gru.path / "plots" / "forecasts.png")]
    assert "skipped pca" in err and "skipped matrices" in err
    code, out, err = cli(["plot", str(gru.path), "--what", "weights"], capsys)
    assert code == 2 and "need a WARP model; this run trained gru" in err
