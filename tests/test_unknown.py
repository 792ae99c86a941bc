"""Unknown terms in a law: the hybrid root against a hand-written network, the symbolic
fit, the data of another declaration, and the errors a user meets."""

from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sympy as sp

import warp_phys as wp
from warp_phys._generate import load_splits
from warp_phys._greybox import HYBRID_SUBSTEPS, physics_root
from warp_phys._recover import library, stlsq

EXAMPLES = Path(__file__).parents[1] / "examples"
DATA, LAW = EXAMPLES / "friction_pendulum.py", EXAMPLES / "friction_unknown.py"


@pytest.fixture(scope="module")
def law():
    return wp.load_system(DATA, law=LAW)


def test_the_hybrid_root_is_the_law_with_a_network_in_place_of_the_term(law):
    shift, scale = np.array([0.1, -0.2]), np.array([0.8, 2.0])
    root, theta0 = physics_root(law, form="direct", previous=True, shift=shift, scale=scale,
                                terms=dict(width=8, depth=2, shared=False), dtype=jnp.float64,
                                key=jr.PRNGKey(0))
    weights = jr.normal(jr.PRNGKey(1), theta0[1:].shape, jnp.float64) * 0.3
    theta = jnp.concatenate([jnp.array([0.4]), weights])
    x = jnp.array([0.7, -0.5])  # model units: the step's input
    tau = jnp.asarray(0.5)

    def by_hand(theta):
        length = jnp.exp(root.centre[0] + root.half[0] * 3.0 * jnp.tanh(theta[0] / 3.0))
        mlp = eqx.nn.MLP(1, 1, 8, 2, activation=jax.nn.swish, dtype=jnp.float64,
                         key=jr.PRNGKey(0))
        network = root.terms.nets[0].network(theta[1:])
        assert jax.tree.structure(network) == jax.tree.structure(mlp)

        def field(t, y, _):
            friction = network(((y[1:] - shift[1]) / scale[1]))[0]
            return jnp.stack([y[1], -(9.81 / length) * jnp.sin(y[0]) - friction])

        dt = (law.t_span[1] - law.t_span[0]) / (law.steps - 1)
        t1 = law.t_span[0] + tau * (law.t_span[1] - law.t_span[0])
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(field), diffrax.Tsit5(), t1 - dt, t1, dt / HYBRID_SUBSTEPS,
            x * scale + shift, stepsize_controller=diffrax.ConstantStepSize())
        return (solution.ys[-1] - shift) / scale

    ours = lambda theta: root(theta, tau, x, x)  # noqa: E731
    np.testing.assert_allclose(ours(theta), by_hand(theta), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jax.jacrev(ours)(theta), jax.jacrev(by_hand)(theta),
                               rtol=1e-8, atol=1e-10)


def test_shared_term_weights_are_a_leaf_of_the_root_not_of_theta(law):
    root, theta0 = physics_root(law, form="direct", previous=True, key=jr.PRNGKey(0))
    assert theta0.shape == (1,) and root.shared.shape == (root.terms.size,)
    own, theta_own = physics_root(law, form="direct", previous=True,
                                  terms=dict(shared=False), key=jr.PRNGKey(0))
    assert theta_own.shape == (1 + own.terms.size,) and own.shared is None
    # The term starts at zero: the law without it.
    assert np.all(np.asarray(root.terms(0.0, jnp.ones(2), root.shared)) == 0)


def test_sparse_fit_finds_a_known_expression():
    w = sp.Symbol("omega")
    candidates = library((w,), [sp.sin], 3)
    values = np.linspace(-3, 3, 400)
    features = np.stack([np.broadcast_to(np.asarray(sp.lambdify(w, c)(values), float),
                                         values.shape) for c in candidates], 1)
    target = 0.3 * values + 0.1 * values**3
    coef = stlsq(features, target, threshold=0.02)
    expected = {w: 0.3, w**3: 0.1}
    for c, f in zip(coef, candidates):
        assert c == pytest.approx(expected.get(f, 0.0), abs=1e-9), f


def test_data_of_another_declaration_carry_the_laws_parameters(law):
    data = load_splits(law, {"test": 4}, 0, ["test-id"])["test-id"]
    source = load_splits(wp.load_system(DATA), {"test": 4}, 0, ["test-id"])["test-id"]
    np.testing.assert_array_equal(data.y, source.y)
    assert data.param_names == ("length",)
    np.testing.assert_array_equal(data.params[:, 0], source.params[:, 0])


def test_the_neural_ode_learns_the_term_inside_the_law(law):
    config = wp.NeuralODEConfig(node_physics=True, hidden=8, term_width=8)
    model = config.build(law, key=jr.PRNGKey(0))
    assert model.terms is not None and model.terms.shape == (16 + 72 + 9,)
    data = load_splits(law, {"test": 2}, 0, ["test-id"])["test-id"]
    x = jnp.asarray(data.inputs, jnp.float32)
    forced = jnp.ones(x.shape[:2])

    def loss(m):
        return jnp.mean((m.unroll(x, forced)[0][:, :-1] - x[:, 1:]) ** 2)

    grads = eqx.filter_grad(loss)(model)
    assert float(jnp.abs(grads.terms).max()) > 0


def test_errors_are_one_line(law, tmp_path):
    with pytest.raises(wp.WarpPhysError, match="cannot generate"):
        wp.generate(wp.load_system(LAW), "train", 2, cache=False)
    theta, omega = sp.symbols("theta omega")
    with pytest.raises(wp.WarpPhysError, match="not a symbol"):
        wp.Unknown("friction", 2 * omega)
    with pytest.raises(wp.WarpPhysError, match="not a state or the time"):
        wp.System(name="bad", state=[theta, omega],
                  equations=[omega, -wp.Unknown("friction", sp.Symbol("speed"))],
                  parameters={sp.Symbol("speed"): 1.0}, initial_state={theta: 1.0, omega: 0.0}, t_span=(0, 1), steps=10, context=4)
    with pytest.raises(wp.WarpPhysError, match="has states"):
        wp.load_system("msd", law=LAW)


def test_cli_refuses_a_law_with_unknown_terms_as_data(tmp_path, capsys):
    from warp_phys._cli import main

    with pytest.raises(SystemExit) as done:
        main(["fit", str(LAW), "--out", str(tmp_path)])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot generate" in err[0]
