"""Control inputs: signals that drive a system, declared for generation or read from files."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
import pytest
import sympy as sp
from scipy.integrate import solve_ivp

import warp_phys as wp
from warp_phys._cli import main
from warp_phys._greybox import encode
from warp_phys._known import with_channels


x, v, F, t = sp.symbols("x v F t")
m, k, c = sp.symbols("m k c", positive=True)
a, w, phi = sp.symbols("a w phi")
PARAMETERS = {m: wp.Uniform(train=(0.02, 0.04), ood=(0.01, 0.05)),
              k: wp.Uniform(train=(4.0, 16.0), ood=(2.0, 18.0)),
              c: wp.Uniform(train=(0.01, 0.2), ood=(0.01, 0.3))}


def forced(**changes) -> wp.System:
    """msd driven by a sine force of random amplitude, frequency and phase."""
    declared = dict(
        name="msd-forced", state=[x, v], equations=[v, (F - k * x - c * v) / m],
        parameters={**PARAMETERS, a: wp.Uniform(train=(0.0, 0.3), ood=(0.0, 0.5)),
                    w: wp.Uniform(train=(2.0, 20.0), ood=(1.0, 30.0)),
                    phi: wp.Uniform(train=(0.0, 6.28))},
        controls={F: a * sp.sin(w * t + phi)}, initial_state={x: 1.0, v: 0.0},
        t_span=(0.0, 1.0), steps=256, context=100)
    return wp.System(**{**declared, **changes})


@pytest.fixture(scope="module")
def data():
    system = forced(sampling=wp.Sampling(jitter=0.5))
    return system, wp.generate(system, "train", 12, seed=1, cache=False)


def test_a_declared_signal_drives_generation_and_is_recorded(data):
    system, dataset = data
    times, u = dataset.extras["times"], dataset.extras["controls"]
    assert system.known_channels == 4 and dataset.inputs.shape == (12, 256, 6)
    for i in (0, 5):
        m_, k_, c_, a_, w_, phi_ = dataset.params[i]
        np.testing.assert_allclose(u[i, :, 0], a_ * np.sin(w_ * times[i] + phi_), atol=1e-12)
        field = lambda s, y: [y[1], (a_ * np.sin(w_ * s + phi_) - k_ * y[0] - c_ * y[1]) / m_]  # noqa: E731
        truth = solve_ivp(field, (0.0, 1.0), [1.0, 0.0], method="DOP853", t_eval=times[i],
                          rtol=1e-12, atol=1e-12).y.T
        np.testing.assert_allclose(dataset.y[i], truth, atol=1e-6)
    # The models read each control now and at the next sample, then the sample times.
    np.testing.assert_array_equal(dataset.inputs[..., 2], u[..., 0])
    np.testing.assert_array_equal(dataset.inputs[:, :-1, 3], u[:, 1:, 0])
    assert system.hash != forced(controls={F: 2 * a * sp.sin(w * t + phi)}).hash
    # A step signal: a Piecewise of the time with random levels.
    step = forced(controls={F: sp.Piecewise((a, t < 0.5), (-a, True))}, steps=64, context=20)
    levels = wp.generate(step, "train", 4, cache=False)
    np.testing.assert_array_equal(levels.extras["controls"][:, [0, 31, 32, 63], 0],
                                  levels.params[:, [3, 3, 3, 3]] * [1, 1, -1, -1])
    # A control that multiplies a state is not a linear system: x' = -u x, u = 1 + sin t.
    u = sp.Symbol("u")
    decay = wp.System(name="decay", state=[x], equations=[-u * x], controls={u: 1 + sp.sin(t)},
                      initial_state={x: wp.Uniform(train=(0.5, 1.0))}, t_span=(0.0, 2.0),
                      steps=21, context=5)
    assert isinstance(wp.compile_system(decay).flow, wp.ODEFlow)
    solved = wp.generate(decay, "train", 3, cache=False)
    grid = np.linspace(0.0, 2.0, 21)
    np.testing.assert_allclose(solved.y[..., 0], solved.y0 * np.exp(-(grid + 1 - np.cos(grid))),
                               rtol=1e-6)
    with pytest.raises(wp.WarpPhysError, match=r"control 'F' has no signal to generate data"):
        wp.generate(forced(controls={F: None}), "train", 4, cache=False)
    with pytest.raises(wp.WarpPhysError, match=r"signal of control F uses 'q'"):
        forced(controls={F: sp.Symbol("q") * t})


def test_the_law_runs_on_the_measured_controls(data):
    system, dataset = data
    root, _ = wp.physics_root(system, form="direct", previous=True, timed=True,
                              controls=(0.0, 1.0), key=jr.PRNGKey(0))
    unforced, _ = wp.physics_root(system.replace(controls={F: None}), form="direct",
                                  previous=True, timed=True, controls=(0.0, 1.0), key=jr.PRNGKey(0))
    inputs = jnp.asarray(dataset.inputs, jnp.float32)
    still = inputs.at[..., 2:4].set(0.0)  # the same law without the force
    for i in (0, 7):
        u = encode(root, jnp.asarray(dataset.params[i], jnp.float32))
        got = _one_step(root, u, inputs[i])  # each sample forecast from the one before
        np.testing.assert_allclose(got, dataset.y[i, 1:], atol=2e-4)
        off = _one_step(unforced, u, still[i])
        assert np.abs(off - dataset.y[i, 1:]).max() > 1e-3
    with pytest.raises(wp.WarpPhysError, match=r"driven by control inputs.*--root-previous"):
        wp.physics_root(system, previous=False, controls=(0.0, 1.0), key=jr.PRNGKey(0))


@eqx.filter_jit
def _one_step(root, u, x):
    """The root's forecast of samples 1..T-1 of one trajectory's inputs `x` (T, c)."""
    return jax.vmap(root, in_axes=(None, 0, 0, None))(u, x[:-1, -1], x[:-1], x[0])


@pytest.mark.parametrize("model", ["warp", "warp-phys", "gru", "lstm", "node", "ncde"])
def test_every_model_reads_the_future_controls_and_stays_causal(data, model):
    system, dataset = data
    options = {"node_physics": True} if model == "node" else {}
    config = wp.make_config("msd", "quick", model=model, **options)
    net = config.model.build(system, key=jr.PRNGKey(0))
    if model == "warp":  # B starts at 0: give it weights, as training would
        net = eqx.tree_at(lambda n: n.B, net, 0.1 * jr.normal(jr.PRNGKey(1), net.B.shape, jnp.float32))
    controls = dataset.extras["controls"][:2].copy()
    x = with_channels(dataset.y[:2, :, :2], dataset.extras["times"][:2], system.t_span, controls)
    controls[:, 150:] += 0.5  # a push at sample 150, after the context
    pushed = with_channels(dataset.y[:2, :, :2], dataset.extras["times"][:2], system.t_span, controls)
    mask = jnp.asarray(wp.Forecast().inference_mask(2, 256, system.context))
    before = np.asarray(net.unroll(jnp.asarray(x, jnp.float32), mask)[0])
    after = np.asarray(net.unroll(jnp.asarray(pushed, jnp.float32), mask)[0])
    np.testing.assert_array_equal(after[:, :149], before[:, :149])  # nothing reads ahead
    assert np.abs(after[:, 149] - before[:, 149]).max() > 0  # forecasting 150 sees its push


def _file(path, system, n=(16, 4, 4, 4)):
    rows = []
    for split, count in zip(("train", "val", "test-id", "test-ood"), n):
        dataset = wp.generate(system, split, count, seed=0, cache=False)
        for i in range(count):
            rows.append(pd.DataFrame({
                "trajectory": f"{split}-{i}", "t": dataset.extras["times"][i], "x": dataset.y[i, :, 0],
                "v": dataset.y[i, :, 1], "u:F": dataset.extras["controls"][i, :, 0], "split": split,
                **{f"p:{s.name}": dataset.params[i, j] for j, s in enumerate(system.free_parameters)}}))
    pd.concat(rows, ignore_index=True).to_csv(path, index=False)
    return path


def test_a_file_brings_its_controls_to_every_command(tmp_path, capsys):
    system = forced(sampling=wp.Sampling(jitter=0.5), steps=64, context=20)
    path = _file(tmp_path / "forced.csv", system)
    read = wp.load_system(path)
    assert [u.name for u in read.controls] == ["F"] and read.controls[sp.Symbol("F")] is None
    data = wp.read_trajectories(path)
    np.testing.assert_array_equal(data["train"].inputs[..., 2], data["train"].extras["controls"][..., 0])
    law = tmp_path / "law.py"
    law.write_text(
        "import sympy as sp\nimport warp_phys as wp\n"
        "x, v, F = sp.symbols('x v F')\nm, k, c = sp.symbols('m k c', positive=True)\n"
        "system = wp.System(name='forced-law', state=[x, v], equations=[v, (F - k * x - c * v) / m],\n"
        "    parameters={m: wp.Uniform(train=(0.02, 0.04)), k: wp.Uniform(train=(4.0, 16.0)),\n"
        "                c: wp.Uniform(train=(0.01, 0.2))},\n"
        "    controls={F: None}, initial_state={x: 1.0, v: 0.0}, t_span=(0.0, 1.0), steps=64,\n"
        "    context=20)\n")
    for model in ("warp", "warp-phys"):
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", str(path), "--law", str(law), "--model", model, "--epochs", "1",
                  "--width", "4", "--batch-size", "8", "--out", str(tmp_path / "runs")])
        out = capsys.readouterr().out
        assert exit_info.value.code in (0, None) and "test-ood  MSE" in out
    run = next((tmp_path / "runs").glob("forced/warp-phys/*"))
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(run), str(path), "--horizon", "200"])
    assert exit_info.value.code == 2 and "past the data, where the control inputs are unknown" \
        in capsys.readouterr().err
    frame = pd.read_csv(path).drop(columns="u:F")
    frame.to_csv(tmp_path / "no-u.csv", index=False)
    with pytest.raises(wp.WarpPhysError, match=r"has control columns none; the law 'forced-law' "
                                                r"reads the controls \['F'\]"):
        wp.load_system(tmp_path / "no-u.csv", law=law)
