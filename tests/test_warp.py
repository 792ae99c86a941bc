import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import warp_phys as wp
from warp_phys._root import FlatRoot


def tiny(init="hypernetwork", **kwargs):
    model = wp.make_warp(2, 2, 12, width=5, depth=2, init=init, dtype=jnp.float64,
                         key=jr.PRNGKey(0), **kwargs)
    # Move A and B away from their initial I and 0 so every path is exercised.
    keys = jr.split(jr.PRNGKey(1), 2)
    return eqx.tree_at(lambda m: (m.A, m.B), model,
                       (model.A + 0.02 * jr.normal(keys[0], model.A.shape),
                        0.3 * jr.normal(keys[1], model.B.shape)))


def data(batch=3, steps=12, seed=2):
    x = jr.normal(jr.PRNGKey(seed), (batch, steps, 2))
    forced = (jr.uniform(jr.PRNGKey(seed + 1), (batch, steps)) < 0.5).astype(jnp.float64)
    return x, forced.at[:, 0].set(1.0)


def test_paper_sizes():
    model = wp.make_warp(2, 2, 256, width=48, depth=3, key=jr.PRNGKey(0))
    assert model.size == 4898 and model.A.shape == (4898, 4898) and model.B.shape == (4898, 2)
    widths = [layer.out_features for layer in model.init.layers]
    assert widths == [1633, 3265, 4898]
    assert wp.make_warp(1, 1, 16, width=48, depth=3, key=jr.PRNGKey(0)).size == 4849
    np.testing.assert_array_equal(model.A, np.eye(4898))
    assert not np.any(model.B)


def test_flatten_unflatten_is_identity():
    network = eqx.nn.MLP(1, 2, 5, 2, key=jr.PRNGKey(0))
    root, theta = FlatRoot.split(network)
    rebuilt = root.network(theta)
    for a, b in zip(jax.tree_util.tree_leaves(network), jax.tree_util.tree_leaves(rebuilt)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ravel_pytree(eqx.filter(rebuilt, eqx.is_array))[0], theta)
    # Tree order, row-major: theta starts with W0 (5 x 1) then b0 (5).
    np.testing.assert_array_equal(theta[:5], network.layers[0].weight[:, 0])
    np.testing.assert_array_equal(theta[5:10], network.layers[0].bias)


def test_state_never_moves_with_identity_A_and_zero_B():
    model = wp.make_warp(2, 2, 12, width=5, depth=2, dtype=jnp.float64, key=jr.PRNGKey(0))
    x, forced = data()
    states = model.states(x, forced)
    theta0 = jax.vmap(model.init)(x[:, 0])
    np.testing.assert_array_equal(states, jnp.broadcast_to(theta0, states.shape))


@pytest.mark.parametrize("init", ["hypernetwork", "learned"])
def test_recurrence_equals_a_python_loop(init):
    model = tiny(init, final="dynamic-tanh", root_previous=True, fourier=2)
    x, forced = data()
    mean, _ = model.unroll(x, forced)
    for b in range(x.shape[0]):
        theta = model.init(x[b, 0])
        prev = x[b, 0]
        outputs = [model.final(model.root(theta, jnp.asarray(1 / 11), prev, prev))]
        for k in range(1, 12):
            x_in = x[b, k] if forced[b, k] else outputs[-1]
            theta = model.A @ theta + model.B @ (x_in - prev)
            prev = x_in
            tau = jnp.asarray((k + 1) / 11)
            outputs.append(model.final(model.root.network(theta)(model.root.features(tau, x_in))))
        np.testing.assert_allclose(mean[b], jnp.stack(outputs), rtol=1e-12, atol=1e-12)


def _loss(model, x, forced, fast):
    mean, _ = model.unroll(x, forced, fast_vjp=fast)
    return jnp.mean((mean[:, :-1] - x[:, 1:]) ** 2)


def test_fast_vjp_matches_autodiff():
    model = tiny(theta_clip=0.8)
    x, forced = data(batch=4)
    fast = eqx.filter_grad(_loss)(model, x, forced, True)
    plain = eqx.filter_grad(_loss)(model, x, forced, False)
    for a, b in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(plain)):
        scale = jnp.max(jnp.abs(b))
        assert scale > 0
        assert jnp.max(jnp.abs(a - b)) <= 1e-6 * scale


def test_gradient_matches_finite_differences():
    model = tiny()
    x, forced = data(batch=2)
    grads = eqx.filter_grad(_loss)(model, x, forced, True)
    rng = np.random.default_rng(0)
    for get in (lambda m: m.A, lambda m: m.B, lambda m: m.init.layers[0].weight):
        leaf, g = get(model), get(grads)
        for _ in range(3):
            index = tuple(rng.integers(0, n) for n in leaf.shape)
            h = 1e-6
            plus = eqx.tree_at(get, model, leaf.at[index].add(h))
            minus = eqx.tree_at(get, model, leaf.at[index].add(-h))
            numeric = (_loss(plus, x, forced, True) - _loss(minus, x, forced, True)) / (2 * h)
            np.testing.assert_allclose(g[index], numeric, rtol=1e-5, atol=1e-9)
