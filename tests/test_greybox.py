import dataclasses
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sympy as sp

import warp_phys as wp
from warp_phys._greybox import encode, inferred_parameters, learned_law, physics_root, unknowns

from .test_compile import PENDULUM


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    path = tmp_path_factory.mktemp("systems") / "pendulum.py"
    path.write_text(PENDULUM)
    return wp.load_system(path)


def rollout(root, theta, data, i):
    """The root's output at every tau_k, k >= 1, for sequence `i` (physical units when the
    root has no normaliser)."""
    steps = data.y.shape[1]
    x0 = jnp.asarray(data.inputs[i, 0])
    taus = jnp.arange(1, steps) / (steps - 1)
    return jax.vmap(lambda tau: root(theta, tau, x0, x0))(taus)


@pytest.mark.parametrize("name,flow", [("msd", wp.LinearFlow), ("msd-zero", wp.LinearFlow),
                                       ("sine", wp.ClosedFormFlow), ("lotka-volterra", wp.ODEFlow)])
def test_root_with_true_parameters_reproduces_the_data(name, flow):
    system = wp.load_system(name)
    data = wp.generate(system, "test-ood" if system.has_ood else "test-id", 3, seed=1, cache=False)
    root, _ = physics_root(system, form="direct", rtol=1e-9, atol=1e-9, dtype=jnp.float64,
                           key=jr.PRNGKey(0))
    # The root uses the flow compile_system chose; an exact flow is shared as it is.
    assert type(root.flow) is flow and type(root.compiled.flow) is flow
    assert flow is wp.ODEFlow or root.flow is root.compiled.flow
    assert jax.tree_util.tree_leaves(root) == []  # the flow adds no leaves to a model
    for i in range(3):
        theta = encode(root, jnp.asarray(data.params[i]))
        scale = np.abs(data.y[i]).max()
        np.testing.assert_allclose(rollout(root, theta, data, i), data.y[i, 1:],
                                   atol=1e-5 * scale, rtol=0)


@pytest.mark.parametrize("name", ["msd", "lotka-volterra"])
def test_one_interval_root_steps_the_true_state_forward(name):
    # previous=True: the physics runs from the step's input x_k over one interval, so with
    # the true parameters it maps x_k to x_{k+1} (and is refused for a closed form).
    system = wp.load_system(name)
    data = wp.generate(system, "test-ood", 2, seed=3, cache=False)
    root, _ = physics_root(system, form="direct", previous=True, rtol=1e-9, atol=1e-9,
                           dtype=jnp.float64, key=jr.PRNGKey(0))
    steps = data.y.shape[1]
    taus = jnp.arange(1, steps) / (steps - 1)
    for i in range(2):
        theta = encode(root, jnp.asarray(data.params[i]))
        x = jnp.asarray(data.inputs[i])
        out = jax.vmap(lambda tau, xk: root(theta, tau, xk, x[0]))(taus, x[:-1])
        np.testing.assert_allclose(out, data.y[i, 1:], atol=1e-6 * np.abs(data.y[i]).max())
        # It really reads x_k: a different input gives a different forecast.
        assert not np.allclose(root(theta, taus[5], x[3], x[0]), out[5])
    with pytest.raises(wp.WarpPhysError, match="closed form"):
        physics_root(wp.load_system("sine"), previous=True, key=jr.PRNGKey(0))


@pytest.mark.parametrize("previous", [False, True])
def test_warp_phys_with_the_true_parameters_forecasts_autoregressively(previous):
    # Through WARP's feedback loop: after the context the one-interval root starts from
    # the model's own forecasts, and still reproduces the trajectory.
    system = wp.load_system("msd")
    data = wp.generate(system, "test-ood", 1, seed=2, cache=False)
    root, _ = physics_root(system, form="direct", previous=previous, dtype=jnp.float64,
                           key=jr.PRNGKey(0))
    model = wp.make_warp(2, 2, system.steps, init="learned",
                         root=(root, encode(root, jnp.asarray(data.params[0]))),
                         dtype=jnp.float64, key=jr.PRNGKey(0))
    forced = wp.Forecast().inference_mask(1, system.steps, system.context)
    mean, _ = model.unroll(jnp.asarray(data.inputs), jnp.asarray(forced))
    np.testing.assert_allclose(mean[0, :-1], data.y[0, 1:], atol=1e-5 * np.abs(data.y).max())


def test_expm_flow_matches_diffrax():
    system = wp.load_system("msd")
    data = wp.generate(system, "test-paper", 2, seed=0, cache=False)
    root, _ = physics_root(system, form="direct", dtype=jnp.float64, key=jr.PRNGKey(0))
    ode = dataclasses.replace(
        root, flow=wp.ODEFlow(root.compiled.vector_field, rtol=1e-10, atol=1e-10))
    theta = encode(root, jnp.asarray(data.params[0]))
    np.testing.assert_allclose(rollout(root, theta, data, 0), rollout(ode, theta, data, 0),
                               atol=1e-7)


def test_user_system_root_uses_diffrax_and_respects_fixed_constants(pendulum):
    root, theta0 = physics_root(pendulum, form="direct", rtol=1e-9, atol=1e-9,
                                dtype=jnp.float64, key=jr.PRNGKey(0))
    assert isinstance(root.flow, wp.ODEFlow) and root.size == 2  # length, damping; g stays 9.81
    # The root's own solve: Tsit5 at the tolerances it was given, RMS norm, no step floor.
    assert isinstance(root.flow.solver, diffrax.Tsit5) and root.flow.dtmin is None
    assert (root.flow.rtol, root.flow.atol, root.flow.max_steps) == (1e-9, 1e-9, 4096)
    assert root.flow.vector_field is root.compiled.vector_field
    assert [s.name for s in unknowns(pendulum)] == ["length", "damping"]
    data = wp.generate(pendulum, "test-ood", 2, seed=0, cache=False)
    theta = encode(root, jnp.asarray(data.params[1]))
    np.testing.assert_allclose(rollout(root, theta, data, 1), data.y[1, 1:], atol=1e-5)
    # theta = 0 is the centre of the training ranges: geometric for the positive length.
    np.testing.assert_allclose(root.parameters(theta0, 0.5), [np.sqrt(0.5 * 1.5), 0.15])


def test_parameters_stay_within_reach_of_the_range():
    system = wp.load_system("msd")
    root, _ = physics_root(system, form="direct", reach=2.0, key=jr.PRNGKey(0))
    p = root.parameters(jnp.full(3, 1e6), 0.0)
    # m's training range is (0.02, 0.04): 2 log-half-widths above the centre is 0.02 * 2^(3/2).
    np.testing.assert_allclose(p[0], 0.02 * 2 ** 1.5, rtol=1e-5)
    assert np.all(np.asarray(p) > 0)
    low = root.parameters(jnp.full(3, -1e6), 0.0)
    assert np.all(np.asarray(low) > 0)


@pytest.mark.parametrize("form", ["direct", "mlp"])
def test_gradients_reach_theta(form):
    system = wp.load_system("msd")
    root, theta0 = physics_root(system, form=form, shift=[0.1, 0.2], scale=[0.5, 3.0],
                                dtype=jnp.float64, key=jr.PRNGKey(0))
    x0 = jnp.array([1.0, 0.0])

    def loss(theta):
        taus = jnp.linspace(0.1, 1.0, 7)
        return jnp.sum(jax.vmap(lambda tau: root(theta, tau, x0, x0))(taus) ** 2)

    grad = jax.grad(loss)(theta0)
    assert np.all(np.isfinite(grad)) and np.linalg.norm(grad) > 0
    # Finite differences along a random direction agree with the gradient.
    v = jr.normal(jr.PRNGKey(1), theta0.shape, jnp.float64)
    eps = 1e-6
    fd = (loss(theta0 + eps * v) - loss(theta0 - eps * v)) / (2 * eps)
    np.testing.assert_allclose(fd, grad @ v, rtol=1e-5)


def test_normaliser_maps_units_both_ways():
    system = wp.load_system("msd")
    shift, scale = np.array([0.3, -1.0]), np.array([0.5, 10.0])
    plain, _ = physics_root(system, form="direct", dtype=jnp.float64, key=jr.PRNGKey(0))
    scaled, _ = physics_root(system, form="direct", shift=shift, scale=scale,
                             dtype=jnp.float64, key=jr.PRNGKey(0))
    theta = jnp.array([0.2, -0.4, 0.1])
    x0 = jnp.array([1.0, 0.0])
    expected = (plain(theta, 0.4, x0, x0) - shift) / scale
    x0n = (x0 - shift) / scale
    np.testing.assert_allclose(scaled(theta, 0.4, x0n, x0n), expected, rtol=1e-12)


def test_spirals_classify_by_the_inferred_direction():
    system = wp.load_system("spirals")
    root, _ = physics_root(system, form="direct", dtype=jnp.float64, key=jr.PRNGKey(0))
    assert [s.name for s in unknowns(system)] == ["direction"]  # the angle is in x0 only
    x0 = jnp.array([1.0, 0.0])
    for value, expected in ((1.0, 0), (-1.0, 1), (0.6, 0), (-0.2, 1)):
        theta = encode(root, jnp.array([value, 0.0]))
        assert int(jnp.argmax(root(theta, 1.0, x0, x0))) == expected


def test_copy_task_and_bad_form_are_refused():
    with pytest.raises(wp.WarpPhysError, match="different targets"):
        physics_root(wp.load_system("lotka-volterra-copy"), key=jr.PRNGKey(0))
    with pytest.raises(wp.WarpPhysError, match="physics_form"):
        physics_root(wp.load_system("msd"), form="linear", key=jr.PRNGKey(0))


def test_inferred_parameters_read_theta_at_the_end_of_the_context():
    system = wp.load_system("msd")
    root, _ = physics_root(system, form="direct", dtype=jnp.float64, key=jr.PRNGKey(0))
    p = jnp.array([0.025, 7.0, 0.05])
    model = wp.make_warp(2, 2, system.steps, init="learned", root=(root, encode(root, p)),
                         dtype=jnp.float64, key=jr.PRNGKey(0))
    data = wp.generate(system, "test-id", 3, seed=0, cache=False)
    # A = I and B = 0: theta never moves, so every sequence reads back p.
    np.testing.assert_allclose(inferred_parameters(model, data.inputs, system.context),
                               np.broadcast_to(p, (3, 3)), rtol=1e-10)
    # With B != 0 theta moves with the data: the end of the context is what is read.
    model = dataclasses.replace(model, B=jnp.full((3, 2), 0.01))
    states = model.states(jnp.asarray(data.inputs), jnp.ones((3, system.steps)))
    expected = jax.vmap(lambda th: root.parameters(th, 0.0))(states[system.context - 1])
    np.testing.assert_allclose(inferred_parameters(model, data.inputs, system.context),
                               expected, rtol=1e-10)


def test_learned_law_is_the_declared_law_with_numbers():
    system = wp.load_system("msd")
    law = learned_law(system, [0.03, 10.0, 0.1])
    t = system.time
    x, v = (sp.Function(n)(t) for n in ("x", "v"))
    assert law[0] == sp.Eq(sp.Derivative(x, t), v)
    rhs = law[1].rhs.subs({x: 0.5, v: 2.0})
    assert float(rhs) == pytest.approx(-(10.0 * 0.5 + 0.1 * 2.0) / 0.03, rel=1e-3)
    sine = learned_law(wp.load_system("sine"), [0.25])
    assert float(sine[0].rhs.subs(t, 0.0)) == pytest.approx(np.sin(0.25), rel=1e-3)


def test_parameter_report_adds_the_identifiable_matrix_entries():
    from warp_phys._normalise import Normaliser

    system = wp.load_system("msd")
    root, _ = physics_root(system, form="direct", key=jr.PRNGKey(0))  # float32, as fit trains
    p = np.array([0.025, 7.0, 0.05])
    model = wp.make_warp(2, 2, system.steps, init="learned", root=(root, encode(root, jnp.asarray(p, jnp.float32))),
                         key=jr.PRNGKey(0))
    data = {"test-id": wp.generate(system, "test-id", 4, seed=0, cache=False)}
    report = wp.parameter_report(model, system, data, Normaliser(np.zeros(2), np.ones(2)))
    # M = [[0, 1], [-k/m, -c/m]]: only the second row varies with the parameters.
    assert report["names"] == ["m", "k", "c", "M[1,0]", "M[1,1]"]
    true, inferred = report["values"]["test-id"]
    np.testing.assert_allclose(inferred[:, 3:], np.broadcast_to([-7.0 / 0.025, -0.05 / 0.025], (4, 2)),
                               rtol=1e-4)
    np.testing.assert_allclose(true[:, 3], -data["test-id"].params[:, 1] / data["test-id"].params[:, 0])
    summary = report["summary"]["test-id"]["M[1,0]"]
    assert summary["mae"] == pytest.approx(np.mean(np.abs(inferred[:, 3] - true[:, 3])))


def test_quick_preset_starts_the_physics_from_the_previous_step_where_it_can():
    assert wp.make_config("msd", "quick", model="warp-phys").model.root_previous
    assert wp.make_config("lotka-volterra", "quick", model="warp-phys").model.root_previous
    assert not wp.make_config("sine", "quick", model="warp-phys").model.root_previous  # closed form
    sine_file = str(Path(wp.__file__).parents[1] / "systems" / "sine.py")
    assert not wp.make_config(sine_file, "quick", model="warp-phys").model.root_previous
    assert not wp.make_config("msd", "quick", model="warp").model.root_previous
    assert not wp.make_config("msd", "paper", model="warp-phys").model.root_previous  # the paper's form
