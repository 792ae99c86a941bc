"""In-context identification: the refinement against SciPy's least squares, the forecasts it
makes, and what a run reports of it."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.optimize import least_squares

import warp_phys as wp
from warp_phys._greybox import identified, physics_root
from warp_phys._identify import InContext


@pytest.fixture(scope="module")
def msd_case():
    """A direct-form WARP-Phys on msd whose theta stays at the centre of the box (A = I,
    B = 0), and four test-ood sequences."""
    system = wp.load_system("msd")
    data = wp.generate(system, "test-ood", 4, seed=3, cache=False)
    root, theta0 = physics_root(system, form="direct", previous=True, dtype=jnp.float64,
                                key=jr.PRNGKey(0))
    model = wp.make_warp(2, 2, system.steps, init="learned", root=(root, theta0),
                         dtype=jnp.float64, key=jr.PRNGKey(0))
    forced = np.asarray(wp.Forecast().inference_mask(4, system.steps, system.context))
    return system, data, model, jnp.asarray(data.inputs), jnp.asarray(forced)


def scipy_refined(root, xs, context, u0, steps):
    """SciPy's Levenberg-Marquardt on the same residuals, from the same start."""
    taus = np.arange(1, len(xs)) / (len(xs) - 1)
    predict = jax.jit(jax.vmap(root.predict, in_axes=(None, 0, 0, None)))

    def residuals(u):
        p = root.transform(jnp.asarray(u))
        out = predict(p, jnp.asarray(taus[: context - 1]), xs[: context - 1], xs[0])
        return np.asarray(out - xs[1:context]).ravel()

    return least_squares(residuals, np.asarray(u0), method="lm", max_nfev=50 * steps,
                         xtol=1e-12, ftol=1e-12).x


def test_refinement_finds_what_scipy_least_squares_finds(msd_case):
    system, data, model, x, forced = msd_case
    refined = InContext(model, 40)
    before, after = eqx.filter_jit(refined.identify)(x, forced)
    root = model.root
    for i in range(len(data)):
        u = scipy_refined(root, x[i], system.context, model.init.theta0, 40)
        np.testing.assert_allclose(identified(root, after[i : i + 1]),
                                   identified(root, np.asarray(root.transform(u))[None]),
                                   rtol=1e-6)
    # Both recover what the data identify (k/m and c/m), from a start far off.
    truth, start = identified(root, data.params), identified(root, before)
    assert np.all(np.abs(start[:, 2:] / truth[:, 2:] - 1).max(1) > 0.05)
    np.testing.assert_allclose(identified(root, after)[:, 2:], truth[:, 2:], rtol=1e-6)


def test_refined_model_keeps_its_own_outputs_in_the_context_and_forecasts_by_the_physics(msd_case):
    system, data, model, x, forced = msd_case
    own, _ = model.unroll(x, forced)
    mean, _ = eqx.filter_jit(InContext(model, 40).unroll)(x, forced)
    c = system.context
    np.testing.assert_array_equal(mean[:, : c - 1], own[:, : c - 1])
    # From the centre of the box the model's own forecasts are far off; refined, the
    # physics runs on to the end of the sequence.
    assert np.abs(own[:, c - 1 : -1] - data.y[:, c:]).max() > 0.1
    np.testing.assert_allclose(mean[:, c - 1 : -1], data.y[:, c:], atol=1e-5)


def test_no_refinement_step_leaves_the_amortised_guess(msd_case):
    _, _, model, x, forced = msd_case
    before, after = InContext(model, 0).identify(x, forced)
    np.testing.assert_allclose(after, before, rtol=1e-12)


def test_fit_with_refine_reports_before_and_after(tmp_path):
    from warp_phys._cli import main

    with pytest.raises(SystemExit) as done:
        main(["fit", "msd", "--model", "warp-phys", "--preset", "quick", "--epochs", "1",
              "--refine", "10", "--n-train", "32", "--n-val", "16", "--n-test", "16",
              "--out", str(tmp_path)])
    assert done.value.code in (0, None)
    run = next(tmp_path.glob("msd/warp-phys/*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["refine"]["steps"] == 10 and metrics["refine"]["seconds_per_trajectory"] > 0
    after = metrics["parameters"]["test-id"]["M[1,0]"]["median_relative_error"]
    before = metrics["parameters"]["before_refinement"]["test-id"]["M[1,0]"]["median_relative_error"]
    assert after < before
    assert "before refinement" in (run / "parameters.md").read_text()
