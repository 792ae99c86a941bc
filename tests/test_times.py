"""Irregular sampling: sample times of their own per trajectory, read by every model."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
import pytest

import warp_phys as wp
from warp_phys._cli import main
from warp_phys._greybox import encode
from warp_phys._known import channels

from .helpers import solve_dop853


JITTER = wp.Sampling(jitter=0.6)


@pytest.fixture(scope="module")
def jittered():
    system = wp.load_system("msd").replace(name="msd-jitter", sampling=JITTER)
    return system, wp.generate(system, "train", 16, seed=3, cache=False)


def test_jittered_samples_are_the_solution_at_their_own_times(jittered):
    system, data = jittered
    grid = np.linspace(*system.t_span, system.steps)
    times = data.extras["times"]
    assert system.timed and not wp.load_system("msd").timed
    assert times.shape == (16, 256) and (times[:, 0] == 0).all()
    assert (times[:, 1:] <= grid[1:]).all() and (times[:, 1:] >= grid[1:] - 0.6 * grid[1]).all()
    assert np.ptp(times[:, 5]) > 0.2 * grid[1]  # each trajectory has times of its own
    for i in (0, 7):  # the states at those times, from an independent solver
        truth = solve_dop853(system, data.params[i], data.y0[i], times[i])
        np.testing.assert_allclose(data.y[i], truth, atol=1e-7)
    # The draws are those of the same system on the grid (jitter has a stream of its own),
    # and the models read tau_k and tau_{k+1} after the states.
    on_grid = wp.generate(wp.load_system("msd"), "train", 16, seed=3, cache=False)
    np.testing.assert_array_equal(data.params, on_grid.params)
    np.testing.assert_array_equal(data.inputs[..., 2:], channels(times, system.t_span))
    np.testing.assert_array_equal(data.inputs[:, 1:, 2], data.inputs[:, :-1, 3])
    assert system.hash != system.replace(sampling=wp.Sampling()).hash
    with pytest.raises(wp.WarpPhysError, match=r"jitter must be a share of the grid step"):
        wp.Sampling(jitter=1.0)


def _uniform_inputs(key, n=3, steps=12, d=2):
    x = jr.normal(key, (n, steps, d), jnp.float32)
    tau = np.broadcast_to(np.arange(steps) / (steps - 1), (n, steps))
    return x, jnp.asarray(np.concatenate([x, channels(tau, (0.0, 1.0))], axis=-1), jnp.float32)


def _timed_twins(kind, key, steps=12, d=2):
    """A model of `kind` for uniform data and its twin for timed inputs, whose weights on
    the extra time input are zero and all others equal: on a uniform grid both must forecast
    the same if the timed one reads each step's time from its channels."""
    if kind == "warp":
        plain = wp.make_warp(d, d, steps, width=8, depth=1, init="learned", key=key)
        timed = wp.make_warp(d, d, steps, width=8, depth=1, init="learned", timed=True, key=key)
        B = jr.normal(jr.fold_in(key, 1), plain.B.shape, jnp.float32) * 0.1
        A = plain.A + 0.05 * jr.normal(jr.fold_in(key, 2), plain.A.shape, jnp.float32) / plain.size**0.5
        plain = eqx.tree_at(lambda m: (m.A, m.B), plain, (A, B))
        timed = eqx.tree_at(lambda m: (m.A, m.B), timed, (A, jnp.pad(B, ((0, 0), (0, 2)))))
        return plain, timed
    if kind in ("gru", "lstm"):
        make = wp.make_gru if kind == "gru" else wp.make_lstm
        plain = make(d, d, steps, hidden=8, key=key)
        timed = make(d, d, steps, hidden=8, timed=True, key=key)
        weight = jnp.pad(plain.cell.weight_ih, ((0, 0), (0, 1)))
        return plain, eqx.tree_at(lambda m: m.cell.weight_ih, timed, weight)
    dt = 1 / (steps - 1)
    if kind == "node":
        plain = wp.make_node(d, d, steps, dt=dt, hidden=8, depth=1, code=4, key=key)
        timed = wp.make_node(d, d, steps, dt=dt, hidden=8, depth=1, code=4, timed=True, key=key)
        weight = jnp.pad(plain.encoder.weight_ih, ((0, 0), (0, 2)))
        return plain, eqx.tree_at(lambda m: (m.encoder.weight_ih, m.field), timed,
                                  (weight, plain.field))
    plain = wp.make_ncde(d, d, steps, dt=dt, hidden=8, depth=1, key=key)
    timed = wp.make_ncde(d, d, steps, dt=dt, hidden=8, depth=1, timed=True, key=key)
    weight = jnp.pad(plain.readout.weight, ((0, 0), (0, 1)))
    return plain, eqx.tree_at(lambda m: (m.readout.weight, m.readout.bias), timed,
                              (weight, plain.readout.bias))


@pytest.mark.parametrize("kind", ["warp", "gru", "lstm", "node", "ncde"])
def test_every_model_reads_the_times_of_its_samples(kind):
    key = jr.PRNGKey(0)
    plain, timed = _timed_twins(kind, key)
    x, timed_x = _uniform_inputs(jr.fold_in(key, 7))
    mask = jnp.asarray(wp.Forecast().inference_mask(3, 12, 5))  # feeds back after step 5
    expected = plain.unroll(x, mask)[0]
    got = timed.unroll(timed_x, mask)[0]
    assert got.shape == expected.shape == (3, 12, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    if kind == "warp":
        np.testing.assert_allclose(timed.convolve(timed_x)[0], timed.unroll(timed_x, jnp.ones((3, 12)))[0],
                                   rtol=1e-4, atol=1e-5)
    # Other times (the same samples, taken at tau^1.3) change the forecasts.
    tau = np.broadcast_to(np.arange(12) / 11, (3, 12)) ** 1.3
    moved = timed_x.at[..., 2:].set(jnp.asarray(channels(tau, (0.0, 1.0)), jnp.float32))
    assert float(jnp.abs(timed.unroll(moved, mask)[0][:, 6:] - got[:, 6:]).max()) > 1e-4


@pytest.mark.parametrize("previous", [True, False])
def test_the_physics_runs_over_the_real_gaps(jittered, previous):
    system, data = jittered
    root, _ = wp.physics_root(system, form="direct", previous=previous, timed=True, key=jr.PRNGKey(0))
    x = jnp.asarray(data.inputs, jnp.float32)
    for i in (0, 9):
        u = encode(root, jnp.asarray(data.params[i], jnp.float32))
        forecast = [root(u, x[i, k, 3], x[i, k], x[i, 0]) for k in range(0, 255, 17)]
        np.testing.assert_allclose(np.stack(forecast), data.y[i, 1::17][:15], rtol=2e-4, atol=2e-4)
    # The grid's interval in place of the real gap misses by far more.
    uniform, _ = wp.physics_root(system, form="direct", previous=True, timed=False, key=jr.PRNGKey(0))
    u = encode(uniform, jnp.asarray(data.params[0], jnp.float32))
    off = [uniform(u, x[0, k, 3], x[0, k, :2], x[0, 0, :2]) for k in range(0, 255, 17)]
    assert np.abs(np.stack(off) - data.y[0, 1::17][:15]).max() > 1e-2


def _irregular_csv(path, n=(12, 4, 4, 4)):
    """Jittered msd trajectories of different lengths in the long format, with gaps."""
    system = wp.load_system("msd").replace(name="msd-jitter", sampling=JITTER)
    rows = []
    for split, count in zip(("train", "val", "test-id", "test-ood"), n):
        data = wp.generate(system, split, count, seed=0, cache=False)
        for i in range(count):
            length = 256 - 20 * (i % 3)
            frame = pd.DataFrame({"trajectory": f"{split}-{i}", "t": data.extras["times"][i, :length],
                                  "x": data.y[i, :length, 0], "v": data.y[i, :length, 1],
                                  "split": split, "p:m": data.params[i, 0],
                                  "p:k": data.params[i, 1], "p:c": data.params[i, 2]})
            frame.loc[frame.index % 9 == 4, "v"] = np.nan
            rows.append(frame)
    pd.concat(rows, ignore_index=True).to_csv(path, index=False)
    return path


def test_an_irregular_file_keeps_each_trajectorys_times(tmp_path, capsys):
    path = _irregular_csv(tmp_path / "irregular.csv")
    system = wp.load_system(path)
    data = wp.read_trajectories(path)
    frame = pd.read_csv(path, float_precision="round_trip")
    assert system.timed and system.steps == 256 and system.measured.irregular
    own = frame[frame["trajectory"] == "train-1"]["t"].to_numpy()  # 236 samples
    times = data["train"].extras["times"][1]
    np.testing.assert_array_equal(times[:236], own)
    np.testing.assert_allclose(np.diff(times[235:]), own[-1] - own[-2])  # padding goes on
    assert np.isnan(data["train"].y[1, 236:]).all()
    np.testing.assert_allclose(data["train"].inputs[1, :, 2], times / system.t_span[1])
    # Fit on the command line, then forecast past the data: the times go on by the last gap.
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(path), "--model", "warp-phys", "--law", "msd", "--epochs", "1",
              "--width", "4", "--batch-size", "4", "--out", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert exit_info.value.code in (0, None) and "test-ood  MSE" in out and "naive MSE" in out
    run = next((tmp_path / "runs").glob("*/*/*"))
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(run), str(path), "--horizon", "200", "--out", str(tmp_path / "f.csv")])
    assert exit_info.value.code in (0, None)
    forecast = pd.read_csv(tmp_path / "f.csv")
    one = forecast[forecast["trajectory"] == "test-id-2"]  # 216 samples, then 84 more steps
    np.testing.assert_allclose(one["t"].to_numpy()[:215], data["test-id"].extras["times"][2, 1:216])
    np.testing.assert_allclose(np.diff(one["t"].to_numpy()[214:]), np.diff(one["t"])[214])
    assert np.isfinite(one[["x", "v"]].to_numpy()).all() and one["true:x"].iloc[-1:].isna().all()
    # A model trained on one grid reads no sample times: it refuses such a file.
    from warp_phys._measured import read_like

    with pytest.raises(wp.WarpPhysError, match=r"is sampled irregularly; the run was trained on one"):
        read_like(path, wp.load_system("msd"))


def test_an_irregular_npz_and_its_mistakes(tmp_path):
    system = wp.load_system("msd").replace(sampling=JITTER)
    data = wp.generate(system, "train", 9, seed=0, cache=False)
    t, y = data.extras["times"].copy(), data.y.copy()
    t[0, 200:], y[0, 200:] = np.nan, np.nan  # a shorter trajectory: NaN times are padding
    np.savez(tmp_path / "ok.npz", t=t, y=y)
    assert wp.load_system(tmp_path / "ok.npz").timed
    split = next(d for d in wp.read_trajectories(tmp_path / "ok.npz").values()
                 if "0" in d.meta["trajectories"])
    index = split.meta["trajectories"].index("0")
    assert np.isnan(split.y[index, 200:]).all()
    np.testing.assert_array_equal(split.extras["times"][index, :200], t[0, :200])
    np.testing.assert_allclose(np.diff(split.extras["times"][index, 199:]), t[0, 199] - t[0, 198])
    # One set of times for every run, but on no uniform grid: irregular too.
    np.savez(tmp_path / "shared.npz", t=data.extras["times"][0], y=data.y)
    assert wp.load_system(tmp_path / "shared.npz").timed
    bad = {"value at a NaN time": (lambda t, y: (t, np.where(np.isnan(t)[..., None], 1.0, y)),
                                   r"trajectory 0 has a value at a step whose time is NaN"),
           "times go back": (lambda t, y: (np.where(np.arange(256) == 50, 0.5, t), y),
                             r"t of trajectory \d does not increase \(at step 5[01]\)"),
           "hole in the times": (lambda t, y: (np.where(np.arange(256) == 30, np.nan, t), y),
                                 r"t of trajectory \d is NaN or infinite before its last sample")}
    for name, (edit, match) in bad.items():
        tt, yy = edit(t, y)
        np.savez(tmp_path / "bad.npz", t=tt, y=yy)
        with pytest.raises(wp.WarpPhysError, match=match):
            wp.read_trajectories(tmp_path / "bad.npz")
