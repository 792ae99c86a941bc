import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import warp_phys as wp
from warp_phys._recurrence import transition
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
    root, theta = FlatRoot.from_network(network)
    rebuilt = root.network(theta)
    for a, b in zip(jax.tree_util.tree_leaves(network), jax.tree_util.tree_leaves(rebuilt)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ravel_pytree(eqx.filter(rebuilt, eqx.is_array))[0], theta)
    # Tree order, row-major: theta starts with W0 (5 x 1) then b0 (5).
    np.testing.assert_array_equal(theta[:5], network.layers[0].weight[:, 0])
    np.testing.assert_array_equal(theta[5:10], network.layers[0].bias)


def test_roots_read_theta_whole_or_in_pieces():
    model = tiny()
    root, theta = model.root, jax.vmap(model.init)(data()[0][:, 0])[0]
    # The MLP root's pieces are its leaves: W0 (5 x 1), b0, W1 (5 x 5), b1, W2 (2 x 5), b2.
    assert root.pieces == (5, 5, 25, 5, 10, 2) and sum(root.pieces) == model.size
    pieces = root.split(theta)
    np.testing.assert_array_equal(pieces[2], theta[10:35])
    tau, x = jnp.asarray(0.3), jnp.asarray([0.2, -0.1])
    np.testing.assert_array_equal(root.evaluate(pieces, tau, x, x), root(theta, tau, x, x))
    # A root that reads theta whole (one piece) is evaluated through the default.
    physics, p_theta = wp.physics_root(wp.load_system("msd"), form="direct", dtype=jnp.float64,
                                       key=jr.PRNGKey(0))
    assert physics.pieces == (physics.size,)
    np.testing.assert_array_equal(physics.evaluate(physics.split(p_theta), tau, x, x),
                                  physics(p_theta, tau, x, x))


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


# ------------------------------------------------------------------------------ convolutional mode


@pytest.mark.parametrize("init,extras", [
    ("hypernetwork", {}),  # A^k theta_0 by the batched recurrence
    ("learned", dict(uncertainty=True, final="dynamic-tanh", root_previous=True)),  # one chain
])
def test_convolutional_mode_equals_the_recurrence(init, extras):
    model = tiny(init, **extras)
    x, _ = data(batch=4)
    ones = jnp.ones(x.shape[:2])
    (mean, sigma), (conv_mean, conv_sigma) = model.unroll(x, ones), model.convolve(x)
    scale = jnp.max(jnp.abs(mean))
    assert jnp.max(jnp.abs(conv_mean - mean)) <= 1e-6 * scale
    if sigma is not None:
        np.testing.assert_allclose(conv_sigma, sigma, rtol=1e-6)

    def loss(model, conv):
        out = model.convolve(x)[0] if conv else model.unroll(x, ones)[0]
        return jnp.mean((out[:, :-1] - x[:, 1:]) ** 2)

    recurrent, convolutional = (eqx.filter_grad(loss)(model, c) for c in (False, True))
    for a, b in zip(jax.tree_util.tree_leaves(convolutional), jax.tree_util.tree_leaves(recurrent)):
        assert jnp.max(jnp.abs(a - b)) <= 1e-6 * jnp.max(jnp.abs(b))


def test_convolutional_mode_is_causal():
    # Changing inputs from step 7 on leaves every output before step 7 untouched.
    model = tiny("learned")
    x, _ = data(batch=2)
    later = x.at[:, 7:].add(5.0)
    a, b = model.convolve(x)[0], model.convolve(later)[0]
    np.testing.assert_allclose(a[:, :7], b[:, :7], rtol=1e-12, atol=1e-12)
    assert not np.allclose(a[:, 7:], b[:, 7:])


@pytest.mark.parametrize("block", [1, 4, 9, 16])  # 4: the last block is shorter
def test_causal_convolution_against_a_loop(block):
    from warp_phys._recurrence import causal_convolution

    rng = np.random.default_rng(0)
    inputs, kernel = rng.normal(size=(2, 9, 3)), rng.normal(size=(9, 3, 4))
    expected = np.zeros((2, 9, 4))
    for k in range(9):
        for j in range(k + 1):
            expected[:, k] += inputs[:, j] @ kernel[k - j]
    out = causal_convolution(jnp.asarray(inputs), jnp.asarray(kernel), block=block)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    # The kernel's gradient: d sum(out * w) / d kernel[l] = sum_{k >= l} inputs[:, k - l]^T w[:, k].
    w = rng.normal(size=expected.shape)
    grad = jax.grad(lambda K: jnp.sum(causal_convolution(jnp.asarray(inputs), K, block=block) * w))
    expected_grad = np.zeros_like(kernel)
    for lag in range(9):
        for k in range(lag, 9):
            expected_grad[lag] += inputs[:, k - lag].T @ w[:, k]
    np.testing.assert_allclose(grad(jnp.asarray(kernel)), expected_grad, rtol=1e-12, atol=1e-12)


def test_convolution_blocks_with_pieces_and_a_shared_term():
    from warp_phys._recurrence import convolution_blocks

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(2, 9, 3))
    kernels = (rng.normal(size=(9, 3, 4)), rng.normal(size=(9, 3, 1)))
    shared = (rng.normal(size=(9, 4)), rng.normal(size=(9, 1)))
    w = tuple(rng.normal(size=(2, 9, k.shape[-1])) for k in kernels)

    def loss(kernels, shared):
        blocks = convolution_blocks(jnp.asarray(inputs), kernels, shared=shared, block=4)
        assert [(start, stop) for start, stop, _ in blocks] == [(0, 4), (4, 8), (8, 9)]
        return sum(jnp.sum(out * w[i][:, start:stop])
                   for start, stop, outs in blocks for i, out in enumerate(outs))

    def expected(kernels, shared):
        total = 0.0
        for i, (kernel, term) in enumerate(zip(kernels, shared)):
            for k in range(9):
                out = term[k] + sum(inputs[:, j] @ kernel[k - j] for j in range(k + 1))
                total += np.sum(out * w[i][:, k])
        return total

    def as_jnp(tree):
        return jax.tree.map(jnp.asarray, tree)

    np.testing.assert_allclose(loss(as_jnp(kernels), as_jnp(shared)), expected(kernels, shared),
                               rtol=1e-12)
    # The loss is linear in both, so its gradients are its values at unit vectors; the
    # shared term's gradient is the sum over the batch, sum_b w[i][b, k].
    grads = jax.grad(loss, argnums=(0, 1))(as_jnp(kernels), as_jnp(shared))
    for i in range(2):
        np.testing.assert_allclose(grads[1][i], w[i].sum(axis=0), rtol=1e-12, atol=1e-12)
        unit = np.zeros_like(kernels[i])
        unit[2, 1, 0] = 1.0
        probe = [np.zeros_like(k) for k in kernels]
        probe[i] = unit
        no_shared = [np.zeros_like(t) for t in shared]
        np.testing.assert_allclose(grads[0][i][2, 1, 0], expected(probe, no_shared), rtol=1e-12)


def test_convolutional_mode_refuses_a_clipped_theta():
    with pytest.raises(ValueError, match="linear recurrence"):
        tiny(theta_clip=0.5).convolve(data()[0])


# ------------------------------------------------------------------------------ precision


def test_precision_of_the_products_with_A():
    model32 = wp.make_warp(2, 2, 12, width=5, depth=2, init="learned", key=jr.PRNGKey(0))
    keys = jr.split(jr.PRNGKey(1), 2)
    model32 = eqx.tree_at(lambda m: (m.A, m.B), model32,
                          (model32.A + 0.02 * jr.normal(keys[0], model32.A.shape, jnp.float32),
                           0.3 * jr.normal(keys[1], model32.B.shape, jnp.float32)))
    x = jr.normal(jr.PRNGKey(2), (3, 12, 2), jnp.float32)
    ones = jnp.ones((3, 12), jnp.float32)
    states = {p: dataclasses.replace(model32, precision=p).states(x, ones)
              for p in ("float32", "tf32", "bf16")}
    assert all(s.dtype == jnp.float32 for s in states.values())  # the state stays float32
    model64 = jax.tree_util.tree_map(
        lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, model32)
    exact = model64.states(x.astype(jnp.float64), ones.astype(jnp.float64))
    error = {p: float(jnp.max(jnp.abs(s - exact)) / jnp.max(jnp.abs(exact))) for p, s in states.items()}
    assert error["float32"] < 1e-5  # tf32 equals float32 on a CPU
    assert 1e-4 < error["bf16"] < 5e-2  # bfloat16 keeps 8 bits of mantissa: visibly rounded
    # The convolutional mode's chain uses the same products: rounded, but not far off.
    exact_out = model64.convolve(x.astype(jnp.float64))[0]
    scale = float(jnp.max(jnp.abs(exact_out)))
    conv_error = {p: float(jnp.max(jnp.abs(dataclasses.replace(model32, precision=p).convolve(x)[0]
                                          - exact_out))) / scale for p in ("float32", "bf16")}
    assert conv_error["float32"] < 1e-5 < conv_error["bf16"] < 0.2
    with pytest.raises(ValueError, match="precision must be one of"):
        wp.make_warp(2, 2, 12, precision="fp8", key=jr.PRNGKey(0))


@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_the_product_with_A_has_the_pullback_of_theta_at_A_transposed(precision):
    # `transition` gives the pullback its own transposed copy of A (see _recurrence.py):
    # the values of both cotangents must be those of plain `theta @ A.T`, inside a scan
    # as in the recurrence, with A differentiated or not.
    A = jr.normal(jr.PRNGKey(0), (7, 7), jnp.float64) / 3
    theta = jr.normal(jr.PRNGKey(1), (3, 7), jnp.float64)
    weights = jr.normal(jr.PRNGKey(2), (4, 3, 7), jnp.float64)

    def loss(theta, A, product):
        def step(t, w):
            t = jnp.tanh(product(t, A))
            return t, jnp.sum(w * t)
        return jnp.sum(jax.lax.scan(step, theta, weights)[1])

    def plain(t, A):
        if precision == "bf16":
            rounded = A.astype(jnp.bfloat16).astype(jnp.float64)
            return t.astype(jnp.bfloat16).astype(jnp.float64) @ rounded.T
        return t @ A.T

    ours = jax.jit(jax.grad(lambda t, A: loss(t, A, lambda t, A: transition(A, precision)(t)),
                            argnums=(0, 1)))(theta, A)
    expected = jax.grad(lambda t, A: loss(t, A, plain), argnums=(0, 1))(theta, A)
    tolerance = 1e-12 if precision == "float32" else 2e-2
    for got, want in zip(ours, expected):
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)
    frozen = jax.grad(lambda t: loss(t, A, lambda t, A: transition(A, precision)(t)))(theta)
    np.testing.assert_allclose(frozen, expected[0], rtol=tolerance, atol=tolerance)


# ------------------------------------------------------------------------------ structured A


def test_block_sizes_follow_the_root_layers():
    model = wp.make_warp(2, 2, 256, width=48, depth=3, transition="block-diagonal",
                         key=jr.PRNGKey(0))
    assert model.root.blocks == (96, 2352, 2352, 98) and sum(model.root.blocks) == model.size
    assert [b.shape for b in model.A.blocks] == [(n, n) for n in model.root.blocks]


def structured(transition, init="hypernetwork"):
    model = wp.make_warp(2, 2, 12, width=5, depth=2, init=init, transition=transition, rank=3,
                         dtype=jnp.float64, key=jr.PRNGKey(0))
    np.testing.assert_allclose(model.transition_matrix(), np.eye(model.size))  # starts at I
    leaves, tree = jax.tree_util.tree_flatten(model.A)
    keys = jr.split(jr.PRNGKey(5), len(leaves) + 1)
    moved = [leaf + 0.05 * jr.normal(k, leaf.shape, leaf.dtype) for leaf, k in zip(leaves, keys)]
    return eqx.tree_at(lambda m: (m.A, m.B), model,
                       (jax.tree_util.tree_unflatten(tree, moved),
                        0.3 * jr.normal(keys[-1], model.B.shape, jnp.float64)))


@pytest.mark.parametrize("transition", ["diagonal-low-rank", "block-diagonal"])
def test_structured_A_equals_its_dense_matrix(transition):
    model = structured(transition)
    dense = eqx.tree_at(lambda m: m.A, model, model.transition_matrix())
    x, forced = data(batch=3)
    np.testing.assert_allclose(model.unroll(x, forced)[0], dense.unroll(x, forced)[0],
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.convolve(x)[0], dense.unroll(x, jnp.ones(x.shape[:2]))[0],
                               rtol=1e-9, atol=1e-9)
    # Gradients with respect to the structure's own parameters, against finite differences.
    grads = eqx.filter_grad(_loss)(model, x, forced, True)
    leaves, g_leaves = jax.tree_util.tree_leaves(model.A), jax.tree_util.tree_leaves(grads.A)
    rng = np.random.default_rng(0)
    for leaf_index in range(len(leaves)):
        get = lambda m, i=leaf_index: jax.tree_util.tree_leaves(m.A)[i]  # noqa: E731
        leaf = get(model)
        index = tuple(rng.integers(0, n) for n in leaf.shape)
        h = 1e-6
        plus = eqx.tree_at(get, model, leaf.at[index].add(h))
        minus = eqx.tree_at(get, model, leaf.at[index].add(-h))
        numeric = (_loss(plus, x, forced, True) - _loss(minus, x, forced, True)) / (2 * h)
        np.testing.assert_allclose(g_leaves[leaf_index][index], numeric, rtol=1e-5, atol=1e-9)


def test_structured_parameter_counts():
    sizes = {t: wp.make_warp(2, 2, 256, width=48, depth=3, transition=t, rank=8, key=jr.PRNGKey(0)).A
             for t in ("dense", "diagonal-low-rank", "block-diagonal")}
    count = {t: sum(a.size for a in jax.tree_util.tree_leaves(A)) for t, A in sizes.items()}
    assert count == {"dense": 4898**2, "diagonal-low-rank": 4898 * 17,
                     "block-diagonal": 96**2 + 2 * 2352**2 + 98**2}
