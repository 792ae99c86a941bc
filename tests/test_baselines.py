import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import warp_phys as wp
from warp_phys import _baselines
from warp_phys._baselines import (CDE_SUBSTEPS, make_gru, make_lstm, make_ncde, make_node,
                                  param_count)


BATCH, STEPS, DT = 3, 10, 0.1
MODELS = ("gru", "lstm", "node", "ncde")


def build(name, out_size=2, *, key=jr.PRNGKey(0), **kwargs):
    """A tiny float64 model; every test of one kind shares its shapes, so the jitted
    functions below compile once per model."""
    if name == "gru":
        return make_gru(2, out_size, STEPS, hidden=8, dtype=jnp.float64, key=key)
    if name == "lstm":
        return make_lstm(2, out_size, STEPS, hidden=8, dtype=jnp.float64, key=key)
    if name == "node":
        return make_node(2, out_size, STEPS, dt=DT, hidden=8, depth=1, code=4,
                         dtype=jnp.float64, key=key, **kwargs)
    return make_ncde(2, out_size, STEPS, dt=DT, hidden=8, depth=1, dtype=jnp.float64, key=key)


@eqx.filter_jit
def unroll(model, x, forced):
    mean, sigma = model.unroll(x, forced)
    assert sigma is None
    return mean


def loss_fn(model, x, targets, labels, forced, *, task):
    return task.loss(*model.unroll(x, forced), targets, labels)


value_and_grad = eqx.filter_jit(eqx.filter_value_and_grad(loss_fn))


def normal(seed, shape):
    # Test data come from NumPy: a JAX random draw of each new shape would compile first.
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


def sines(seed, batch=BATCH, steps=STEPS):
    """(cos, sin) of s w t + phi: rotations at w in [1, 2], direction s = +-1 (the label)."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(1.0, 2.0, (batch, 1))
    phi = rng.uniform(0.0, 2 * np.pi, (batch, 1))
    labels = np.arange(batch) % 2
    angle = (2 * labels[:, None] - 1) * w * DT * np.arange(steps) + phi
    return jnp.asarray(np.stack([np.cos(angle), np.sin(angle)], axis=-1)), jnp.asarray(labels)


# ------------------------------------------------------------------------------ interface


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("out_size", [2, 3])
def test_shapes(name, out_size):
    kwargs = {"classify": True} if name == "node" and out_size != 2 else {}
    model = build(name, out_size, **kwargs)
    hidden = 4 if name == "node" else 8
    x, forced = jnp.zeros((BATCH, STEPS, 2)), jnp.ones((BATCH, STEPS))
    # Compiled here for the forecasters, whose later tests reuse it; only traced otherwise.
    if out_size == 2:
        mean = unroll(model, x, forced)
        states = eqx.filter_eval_shape(model.states, x, forced)
        assert states.shape == (STEPS, BATCH, hidden)
    else:
        mean = eqx.filter_eval_shape(unroll, model, x, forced)
    assert mean.shape == (BATCH, STEPS, out_size)
    assert model.size == param_count(model) == sum(
        leaf.size for leaf in jax.tree_util.tree_leaves(model) if eqx.is_inexact_array(leaf))


def test_param_count_by_hand():
    # Gates of (input + hidden + bias) x hidden with input = d + tau (Equinox's GRU has one
    # more bias for its candidate state), then the readout.
    assert build("gru").size == 3 * 8 * (3 + 8 + 1) + 8 + 8 * 2 + 2
    assert build("lstm").size == 4 * 8 * (3 + 8 + 1) + 8 * 2 + 2
    # Neural CDE: z_0 from (t, x), f_phi: 8 -> 8 -> 8 x 3, readout.
    assert build("ncde").size == 3 * 8 + 8 + (8 * 8 + 8) + (8 * 24 + 24) + 8 * 2 + 2


def test_node_argument_checks():
    kwargs = dict(dt=DT, hidden=8, depth=1, code=4, dtype=jnp.float64, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="out_size must equal data_size"):
        make_node(2, 3, STEPS, **kwargs)
    with pytest.raises(ValueError, match="given together"):
        make_node(2, 2, STEPS, p0=[1.0], **kwargs)
    with pytest.raises(ValueError, match="shift must be"):
        make_node(2, 2, STEPS, shift=[0.0, 0.0, 0.0], **kwargs)
    with pytest.raises(ValueError, match="steps must be at least 2"):
        make_gru(2, 2, 1, hidden=8, dtype=jnp.float64, key=jr.PRNGKey(0))


# ------------------------------------------------------------------------------ causality


@pytest.mark.parametrize("name", MODELS)
def test_forecasts_are_causal(name):
    model = build(name)
    x = normal(1, (BATCH, STEPS, 2))
    forced = jnp.ones((BATCH, STEPS))
    mean = unroll(model, x, forced)
    for j in (1, 4, STEPS - 1):
        changed = x.at[:, j:].set(normal(j, (BATCH, STEPS - j, 2)))
        other = unroll(model, changed, forced)
        np.testing.assert_array_equal(other[:, :j], mean[:, :j])
        assert np.all(np.abs(other[:, j] - mean[:, j]) > 0)  # x_j does reach mean_j


@pytest.mark.parametrize("name", MODELS)
def test_autoregressive_run_feeds_its_own_forecasts(name):
    model = build(name)
    x = normal(2, (BATCH, STEPS, 2))
    free = unroll(model, x, jnp.zeros((BATCH, STEPS)).at[:, 0].set(1.0))
    fed = jnp.concatenate([x[:, :1], free[:, :-1]], axis=1)
    np.testing.assert_allclose(unroll(model, fed, jnp.ones((BATCH, STEPS))), free,
                               rtol=1e-12, atol=1e-12)
    # and it differs from the teacher-forced run, so the test saw the feedback path
    assert not np.allclose(unroll(model, x, jnp.ones((BATCH, STEPS))), free)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_rnn_equals_a_python_loop(name):
    model = build(name, key=jr.PRNGKey(3))
    x = normal(4, (BATCH, STEPS, 2))
    forced = jnp.asarray(np.random.default_rng(5).uniform(size=(BATCH, STEPS)) < 0.5, jnp.float64)
    mean = unroll(model, x, forced)
    for b in range(BATCH):
        h = jnp.zeros(8)
        state = (h, h) if name == "lstm" else h
        outputs = []
        for k in range(STEPS):
            x_in = x[b, k] if k == 0 or forced[b, k] else outputs[-1]
            state = model.cell(jnp.concatenate([x_in, jnp.array([k / (STEPS - 1)])]), state)
            outputs.append(model.readout(state[0] if name == "lstm" else state))
        np.testing.assert_allclose(mean[b], jnp.stack(outputs), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ physics


MSD_TRUE = jnp.array([0.03, 10.0, 0.1])  # m, k, c
MSD_DT = 1 / 255  # the msd grid: 256 steps on [0, 1]


@pytest.fixture(scope="module")
def msd():
    """The compiled msd system and exact trajectories (batch, T + 1, d) at MSD_TRUE."""
    compiled = wp.compile_system(wp.load_system("msd"))
    assert compiled.param_names == ("m", "k", "c")
    y0 = jnp.asarray(np.random.default_rng(6).uniform(-1.0, 1.0, (BATCH, 2)))
    ts = MSD_DT * jnp.arange(STEPS + 1)
    flow = jax.vmap(jax.vmap(compiled.linear_flow, (0, None, None)), (None, 0, None))
    return compiled, jax.jit(flow)(ts, y0, MSD_TRUE)


# The gradient and training tests run in normalised units, y_phys = y * SCALE + SHIFT.
SHIFT, SCALE = (0.3, -1.0), (0.5, 4.0)


def physics_node(compiled, p0, shift=SHIFT, scale=SCALE):
    return make_node(2, 2, STEPS, dt=MSD_DT, hidden=8, depth=1, code=4,
                     vector_field=compiled.vector_field, p0=p0, shift=shift, scale=scale,
                     dtype=jnp.float64, key=jr.PRNGKey(7))


def normalised(exact):
    return (exact - jnp.asarray(SHIFT)) / jnp.asarray(SCALE)


def test_node_with_physics_starts_as_the_exact_flow(msd):
    compiled, exact = msd
    model = physics_node(compiled, MSD_TRUE, shift=0.0, scale=1.0)
    assert model.positive
    np.testing.assert_allclose(model.parameters, MSD_TRUE, rtol=1e-14)
    # the network is there (only its zero last layer keeps it silent)
    assert jnp.max(jnp.abs(model.field.layers[0].weight)) > 0
    mean = unroll(model, exact[:, :-1], jnp.ones((BATCH, STEPS)))
    size = jnp.max(jnp.abs(exact[:, 1:]))
    assert jnp.max(jnp.abs(mean - exact[:, 1:])) <= 1e-6 * size


def forecast_loss(model, x):
    return value_and_grad(model, x, x, jnp.zeros(BATCH, jnp.int32), jnp.ones((BATCH, STEPS)),
                          task=wp.Forecast())


def test_node_with_physics_works_in_normalised_units(msd):
    compiled, exact = msd
    x = normalised(exact[:, :-1])
    loss, _ = forecast_loss(physics_node(compiled, MSD_TRUE), x)
    # the largest one-step error is at most sqrt(n * mean square), n = BATCH (STEPS - 1) 2
    assert jnp.sqrt(loss * x[:, 1:].size) <= 1e-6 * jnp.max(jnp.abs(x))


def test_node_gradient_reaches_physics_parameters(msd):
    compiled, exact = msd
    x = normalised(exact[:, :-1])
    model = physics_node(compiled, MSD_TRUE * jnp.array([1.0, 1.3, 2.0]))
    _, grads = forecast_loss(model, x)
    assert np.all(np.isfinite(grads.physics)) and np.all(grads.physics[1:] != 0)
    h = 1e-6
    for i in range(3):
        plus = eqx.tree_at(lambda m: m.physics, model, model.physics.at[i].add(h))
        minus = eqx.tree_at(lambda m: m.physics, model, model.physics.at[i].add(-h))
        numeric = (forecast_loss(plus, x)[0] - forecast_loss(minus, x)[0]) / (2 * h)
        np.testing.assert_allclose(grads.physics[i], numeric, rtol=1e-5, atol=1e-10)


# ------------------------------------------------------------------------------ NCDE path


def test_ncde_segments_are_backward_hermite_pieces():
    model = build("ncde")
    n = 6
    xs, ts = normal(8, (n, 2)), DT * jnp.arange(n)
    data = jnp.concatenate([ts[:, None], xs], axis=1)
    secants = (xs[1:] - xs[:-1]) / DT
    # Segment k (on [t_{k-1}, t_k]) starts with the slope segment k - 1 ended with; the
    # first segment is a straight line.
    left = jnp.concatenate([secants[:1], secants[:-1]])

    @jax.jit
    def probe(xs, left):
        paths = jax.vmap(model.control)(ts[:-1], xs[:-1], xs[1:], left)
        # each segment runs on its local time s = t - t_{k-1} in [0, dt]
        at = jnp.array([0.0, 0.5 * DT, DT])
        values = jax.vmap(lambda path: jax.vmap(path.evaluate)(at))(paths)
        slopes = jax.vmap(lambda path: jax.vmap(lambda s: path.derivative(s, left=True))(at))
        return values, slopes(paths)

    values, slopes = probe(xs, left)
    ones = jnp.ones((n - 1, 1))
    np.testing.assert_allclose(values[:, 0], data[:-1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(values[:, -1], data[1:], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(slopes[:, 0], jnp.concatenate([ones, left], 1), rtol=1e-10)
    np.testing.assert_allclose(slopes[:, -1], jnp.concatenate([ones, secants], 1), rtol=1e-10)
    # the time channel runs at unit speed; after the first segment, a cubic, not the chord
    np.testing.assert_allclose(values[:, 1, 0], ts[:-1] + 0.5 * DT, rtol=1e-12)
    np.testing.assert_allclose(slopes[:, 1, 0], 1.0, rtol=1e-12)
    chord = (xs[1:-1] + xs[2:]) / 2
    assert np.all(np.abs(values[1:, 1, 1:] - chord) > 1e-6)


def test_ncde_solves_the_cde_on_the_whole_path():
    # Oracle: one diffeqsolve over Diffrax's own backward-difference Hermite spline through
    # the whole sequence, on the same grid of steps; the model builds that path segment by
    # segment.
    model = build("ncde")
    x = normal(9, (BATCH, STEPS, 2))
    ts = DT * jnp.arange(STEPS)
    data = jnp.concatenate([ts[:, None], x[0]], axis=1)

    @jax.jit
    def oracle(data):
        path = diffrax.CubicInterpolation(ts, diffrax.backward_hermite_coefficients(ts, data))
        term = diffrax.ControlTerm(model.vector_field, path).to_ode()
        zs = diffrax.diffeqsolve(
            term, diffrax.Tsit5(), ts[0], ts[-1], DT / CDE_SUBSTEPS, model.initial(data[0]),
            stepsize_controller=diffrax.ConstantStepSize(), saveat=diffrax.SaveAt(ts=ts),
            max_steps=CDE_SUBSTEPS * STEPS,
        ).ys
        return jax.vmap(model.readout)(zs)

    mean = unroll(model, x, jnp.ones((BATCH, STEPS)))
    np.testing.assert_allclose(mean[0], oracle(data), rtol=1e-9, atol=1e-12)


def test_ncde_one_step_per_interval_is_accurate(monkeypatch):
    # The model's discretisation against eight Tsit5 steps per interval, on a noisy
    # oscillation sampled like msd (dt = 1/255).
    model = make_ncde(2, 2, 64, dt=1 / 255, hidden=16, depth=2, dtype=jnp.float64,
                      key=jr.PRNGKey(4))
    t = np.arange(64) / 255
    x = np.stack([np.cos(20 * t), -np.sin(20 * t)], axis=-1)[None]
    x = jnp.asarray(x + 0.1 * np.random.default_rng(0).standard_normal(x.shape))
    forced = jnp.ones((1, 64))

    def run(substeps):  # a fresh jit per setting: the step count is read while tracing
        monkeypatch.setattr(_baselines, "CDE_SUBSTEPS", substeps)
        return np.asarray(eqx.filter_jit(lambda m: m.unroll(x, forced)[0])(model))

    coarse, fine = run(CDE_SUBSTEPS), run(8)
    scale = np.max(np.abs(fine))
    np.testing.assert_allclose(coarse, fine, atol=1e-4 * scale)
    assert np.max(np.abs(coarse - fine)) > 1e-12 * scale  # the setting did take effect


@pytest.mark.parametrize("name", MODELS)
def test_bound_clips_forecasts_before_they_are_fed_back(name):
    x = normal(12, (BATCH, STEPS, 2))
    free_forced = jnp.zeros((BATCH, STEPS)).at[:, 0].set(1.0)
    kwargs = dict(hidden=8, dtype=jnp.float64, key=jr.PRNGKey(5))
    make = {"gru": make_gru, "lstm": make_lstm,
            "node": lambda *a, **k: make_node(*a, dt=DT, depth=1, code=4, **k),
            "ncde": lambda *a, **k: make_ncde(*a, dt=DT, depth=1, **k)}[name]
    plain, bounded = make(2, 2, STEPS, **kwargs), make(2, 2, STEPS, bound=0.05, **kwargs)
    free = unroll(bounded, x, free_forced)
    assert np.max(np.abs(free)) <= 0.05
    assert np.sum(np.abs(free) == 0.05) > 0  # the bound acted
    # each clipped forecast is what the next step read: the unbounded model, fed the
    # bounded run's forecasts as truth, gives them back once clipped
    fed = jnp.concatenate([x[:, :1], free[:, :-1]], axis=1)
    again = jnp.clip(unroll(plain, fed, jnp.ones((BATCH, STEPS))), -0.05, 0.05)
    np.testing.assert_allclose(again, free, rtol=1e-12, atol=1e-12)


def test_final_clip_bounds_every_baseline():
    msd = wp.load_system("msd")
    for model in MODELS:
        clipped = wp.make_config("msd", "quick", model=model, final="clip", clip_bound=3.0)
        assert clipped.model.build(msd, key=jr.PRNGKey(0)).bound == 3.0
        plain = wp.make_config("msd", "quick", model=model, final="none")
        assert plain.model.build(msd, key=jr.PRNGKey(0)).bound is None


# ------------------------------------------------------------------------------ training


@eqx.filter_jit
def adam_step(model, grads, opt_state):
    params = eqx.filter(model, eqx.is_inexact_array)
    updates, opt_state = optax.adam(1e-2).update(grads, opt_state, params)
    return eqx.apply_updates(model, updates), opt_state


def train(model, x, labels, task):
    forced = jnp.ones(x.shape[:2])
    opt_state = optax.adam(1e-2).init(eqx.filter(model, eqx.is_inexact_array))
    losses = []
    for _ in range(21):
        value, grads = value_and_grad(model, x, x, labels, forced, task=task)
        losses.append(float(value))
        model, opt_state = adam_step(model, grads, opt_state)
    return model, losses


@pytest.mark.parametrize("name", ["gru", "lstm", "ncde"])
def test_forecaster_trains(name):
    x, labels = sines(9)
    _, losses = train(build(name), x, labels, wp.Forecast())
    assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]


def test_node_with_physics_trains(msd):
    # The Neural ODE's training test is the grey-box one: it shares its compiled gradient
    # with the gradient test above, and checks that the physics moves towards the truth.
    compiled, exact = msd
    x, labels = normalised(exact[:, :-1]), jnp.zeros(BATCH, jnp.int32)
    start = MSD_TRUE * jnp.array([1.0, 1.3, 2.0])
    model, losses = train(physics_node(compiled, start), x, labels, wp.Forecast())
    assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]

    def error(p):  # data pin the squared frequency k / m; m and k alone trade off
        return abs(p[1] / p[0] - MSD_TRUE[1] / MSD_TRUE[0])

    assert error(model.parameters) < 0.5 * error(start)


def test_classifier_trains():
    x, labels = sines(10)
    _, losses = train(build("gru", 3), x, labels, wp.Classify())
    assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]
