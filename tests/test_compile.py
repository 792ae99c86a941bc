import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import sympy as sp
from scipy.integrate import solve_ivp

import warp_phys as wp

from .helpers import numpy_field, solve_dop853


PENDULUM = """
import sympy as sp
import warp_phys as wp

theta, omega = sp.symbols("theta omega")
g, length, damping = sp.symbols("g length damping", positive=True)

system = wp.System(
    name="pendulum",
    state=[theta, omega],
    equations=[omega, -(g / length) * sp.sin(theta) - damping * omega],
    parameters={
        g: 9.81,
        length: wp.Uniform(train=(0.5, 1.5), ood=(0.25, 2.0)),
        damping: wp.Uniform(train=(0.0, 0.3), ood=(0.0, 0.6)),
    },
    initial_state={theta: wp.Uniform(train=(-1.0, 1.0)), omega: 0.0},
    t_span=(0.0, 5.0), steps=200, context=50,
)
"""


@pytest.fixture
def pendulum(tmp_path):
    path = tmp_path / "pendulum.py"
    path.write_text(PENDULUM)
    return wp.load_system(path)


def test_vector_field_jits_vmaps_and_differentiates(pendulum):
    compiled = wp.compile_system(pendulum)
    assert not compiled.is_linear and compiled.param_names == ("length", "damping")
    f = numpy_field(pendulum)
    rng = np.random.default_rng(0)
    ys, ps = rng.normal(size=(5, 2)), rng.uniform(0.5, 1.5, size=(5, 2))
    batched = jax.jit(jax.vmap(compiled.vector_field, in_axes=(None, 0, 0)))(0.3, ys, ps)
    np.testing.assert_allclose(batched, [f(0.3, y, p) for y, p in zip(ys, ps)], rtol=1e-12)
    # d(omega')/d(length) = g sin(theta) / length^2, with g = 9.81 substituted.
    grad = jax.grad(lambda p: compiled.vector_field(0.0, jnp.array([0.5, 0.0]), p)[1])(
        jnp.array([0.8, 0.1]))
    np.testing.assert_allclose(grad, [9.81 * np.sin(0.5) / 0.8**2, 0.0], rtol=1e-12)


def test_linear_detection_and_matrix():
    msd = wp.load_system("msd")
    compiled = wp.compile_system(msd)
    m, k, c = 0.03, 10.0, 0.1
    np.testing.assert_allclose(compiled.matrix(jnp.array([m, k, c])),
                               [[0, 1], [-k / m, -c / m]], rtol=1e-14)
    x, y, a = sp.symbols("x y a")
    base = dict(state=[x, y], parameters={a: wp.Uniform(train=(1.0, 2.0))},
                initial_state={x: 1.0, y: 0.0}, t_span=(0.0, 1.0), steps=4, context=1)
    assert wp.compile_system(wp.System(name="l", equations=[a * y, -x], **base)).is_linear
    for nonlinear in ([a * y + 1, -x], [x * y, -x], [sp.Symbol("t") * y, -x], [sp.sin(x), y]):
        assert not wp.compile_system(wp.System(name="n", equations=nonlinear, **base)).is_linear


@pytest.mark.parametrize("name", ["msd", "msd-zero", "spirals"])
def test_linear_closed_form_matches_diffrax(name):
    system = wp.load_system(name)
    compiled = wp.compile_system(system)
    data = wp.generate(system, "test-paper", 3, seed=2, cache=False)
    @jax.jit
    @jax.vmap
    def reference(y0, p):
        sol = dfx.diffeqsolve(
            dfx.ODETerm(compiled.vector_field), dfx.Dopri8(), data.t[0], data.t[-1], None, y0, p,
            saveat=dfx.SaveAt(ts=jnp.asarray(data.t)),
            stepsize_controller=dfx.PIDController(rtol=1e-12, atol=1e-12), max_steps=100_000)
        return sol.ys

    np.testing.assert_allclose(data.y, reference(data.y0, data.params), rtol=0, atol=1e-8)
    # The generator's expm-power route against expm at each time directly.
    direct = jax.vmap(lambda y0, p: jax.vmap(lambda t: compiled.linear_flow(t, y0, p))(data.t))(
        data.y0, data.params)
    np.testing.assert_allclose(data.y, direct, rtol=0, atol=1e-9)


def test_declared_solution_used_as_is():
    system = wp.load_system("sine")
    compiled = wp.compile_system(system)
    data = wp.generate(system, "train", 5, seed=0, cache=False)
    expected = np.sin(2 * np.pi * data.t[None, :] + data.params)[..., None]
    np.testing.assert_allclose(data.y, expected, rtol=0, atol=1e-14)
    # Its vector field is the time derivative of the closed form.
    np.testing.assert_allclose(compiled.vector_field(0.25, jnp.zeros(1), jnp.array([0.1])),
                               [2 * np.pi * np.cos(np.pi / 2 + 0.1)], rtol=1e-12)


def test_pendulum_generates_every_split(pendulum):
    for split in pendulum.splits:
        data = wp.generate(pendulum, split, 3, seed=0, cache=False)
        assert data.y.shape == (3, 200, 2) and np.all(np.isfinite(data.y))
        assert data.param_names == ("length", "damping")


# --- Flows: chosen once by compile_system, each checked against an oracle. ---


@pytest.mark.parametrize("name,flow,description", [
    ("msd", wp.LinearFlow, "expm (linear)"),
    ("spirals", wp.LinearFlow, "expm (linear)"),
    ("lotka-volterra", wp.ODEFlow, "diffrax Dopri8 (adaptive)"),
    ("sine", wp.ClosedFormFlow, "closed form"),
])
def test_compile_picks_the_flow(name, flow, description):
    compiled = wp.compile_system(wp.load_system(name))
    assert type(compiled.flow) is flow and compiled.flow.description == description
    assert compiled.is_linear == (flow is wp.LinearFlow)
    assert compiled.has_solution == (flow is wp.ClosedFormFlow)
    assert compiled.flow.needs_state == (flow is not wp.ClosedFormFlow)
    assert compiled.flow.chunk_size(5000) == (1024 if flow is wp.ODEFlow else 5000)
    # A flow is settings and functions, never weights: it adds no leaves to a model.
    assert jax.tree_util.tree_leaves(compiled) == []


def test_user_system_gets_an_ode_flow_and_a_closed_form_wins(pendulum):
    flow = wp.compile_system(pendulum).flow
    assert isinstance(flow, wp.ODEFlow) and isinstance(flow.solver, dfx.Dopri8)
    assert (flow.rtol, flow.atol, flow.max_steps) == (1e-9, 1e-9, 100_000)
    t, a = sp.symbols("t a")
    x = sp.Symbol("x")
    both = wp.System(name="both", state=[x], equations=[0 * x], solution=[a * sp.cos(t)],
                     parameters={a: wp.Uniform(train=(1.0, 2.0))}, t_span=(0.0, 1.0),
                     steps=4, context=1)
    # As the simulator always did: a declared closed form is used as is.
    assert isinstance(wp.compile_system(both).flow, wp.ClosedFormFlow)


def test_linear_flow_matches_expm():
    compiled = wp.compile_system(wp.load_system("msd"))
    flow = compiled.flow
    ps = np.array([[0.03, 10.0, 0.1], [0.02, 4.0, 0.0], [0.04, 16.0, 0.2]])
    y0 = np.array([[1.0, 0.0], [0.5, -2.0], [-1.0, 3.0]])
    ts = np.linspace(0.0, 1.0, 64)
    ys, ok = flow.simulate(ts, ps, y0)
    assert ok.all() and ys.dtype == np.float64
    for p, y, out in zip(ps, y0, ys):
        m, k, c = p
        matrix = np.array([[0.0, 1.0], [-k / m, -c / m]])
        expected = np.stack([scipy.linalg.expm(t * matrix) @ y for t in ts])
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9 * np.abs(expected).max())
        # advance: from the state at 0.25 to 0.8, one exponential.
        start = scipy.linalg.expm(0.25 * matrix) @ y
        np.testing.assert_allclose(flow.advance(0.25, 0.8, jnp.asarray(start), jnp.asarray(p)),
                                   scipy.linalg.expm(0.8 * matrix) @ y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(flow.identified(jnp.asarray(ps[0])),
                               [0, 1, -10.0 / 0.03, -0.1 / 0.03], rtol=1e-14)
    assert flow.identified_names == ("M[0,0]", "M[0,1]", "M[1,0]", "M[1,1]")


@pytest.mark.parametrize("name", ["lotka-volterra", "pendulum"])
def test_ode_flow_matches_dop853(name, pendulum):
    system = pendulum if name == "pendulum" else wp.load_system(name)
    flow = wp.compile_system(system).flow
    data = wp.generate(system, "train", 3, seed=4, cache=False)
    ys, ok = flow.simulate(data.t, data.params, data.y0)
    assert ok.all()
    for p, y0, out in zip(data.params, data.y0, ys):
        np.testing.assert_allclose(out, solve_dop853(system, p, y0, data.t), rtol=0, atol=1e-6)
        # advance: one trajectory from its state at `start` to `t`.
        start, t = data.t[10], data.t[-5]
        f = numpy_field(system)
        reference = solve_ivp(lambda s, y: f(s, y, p), (start, t), out[10], method="DOP853",
                              rtol=1e-12, atol=1e-12).y[:, -1]
        got = jax.jit(flow.advance)(start, t, jnp.asarray(out[10]), jnp.asarray(p))
        np.testing.assert_allclose(got, reference, rtol=0, atol=1e-6)
    assert flow.identified(jnp.asarray(data.params[0])).shape == (0,)


def test_ode_flow_solves_one_by_one_when_the_batch_fails():
    # y' = a y^2, y(0) = 1 blows up at t = 1/a: the draw with a = 3 stalls the shared step,
    # and the batch is solved again trajectory by trajectory.
    y, a = sp.symbols("y a")
    system = wp.System(name="blowup", state=[y], equations=[a * y**2],
                       parameters={a: wp.Uniform(train=(0.2, 4.0))}, initial_state={y: 1.0},
                       t_span=(0.0, 1.0), steps=20, context=5)
    flow = wp.compile_system(system).flow
    ts = np.linspace(0.0, 1.0, 20)
    ys, ok = flow.simulate(ts, np.array([[0.5], [3.0], [0.8]]), np.ones((3, 1)))
    np.testing.assert_array_equal(ok, [True, False, True])
    for i, value in ((0, 0.5), (2, 0.8)):
        np.testing.assert_allclose(ys[i, :, 0], 1 / (1 - value * ts), rtol=1e-8)


def test_closed_form_flow_needs_no_state():
    flow = wp.compile_system(wp.load_system("sine")).flow
    ts, phases = np.linspace(0.0, 2.0, 16), np.array([[0.1], [-2.0]])
    ys, ok = flow.simulate(ts, phases, np.full((2, 1), np.nan))  # y0 is not read
    assert ok.all()
    np.testing.assert_allclose(ys, np.sin(2 * np.pi * ts[None, :] + phases)[..., None],
                               rtol=0, atol=1e-14)
    # start and y are ignored: the closed form is the state at t.
    np.testing.assert_allclose(flow.advance(0.7, 0.25, jnp.full(1, jnp.nan), jnp.array([0.1])),
                               [np.sin(np.pi / 2 + 0.1)], rtol=1e-14)


def test_flow_options():
    ode = wp.compile_system(wp.load_system("lotka-volterra")).flow
    stiff = ode.with_options(solver=dfx.Kvaerno5(), rtol=1e-6)
    assert isinstance(stiff.solver, dfx.Kvaerno5) and stiff.rtol == 1e-6
    assert stiff.atol == ode.atol and stiff.description == "diffrax Kvaerno5 (adaptive)"
    assert isinstance(ode.solver, dfx.Dopri8)  # the compiled flow is untouched
    exact = wp.compile_system(wp.load_system("msd")).flow
    assert exact.with_options(rtol=1e-3, solver=dfx.Tsit5()) is exact
    with pytest.raises(ValueError, match="with_options takes only"):
        exact.with_options(tolerance=1e-3)
    with pytest.raises(ValueError, match=r"ODEFlow\(rtol=...\) must be positive, got 0.0"):
        ode.with_options(rtol=0.0)
    with pytest.raises(ValueError, match="error estimate"):
        ode.with_options(solver=dfx.Euler())
    with pytest.raises(ValueError, match=r"ODEFlow\(max_steps=...\)"):
        ode.with_options(max_steps=0)
