import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import warp_phys as wp

from .helpers import numpy_field


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
