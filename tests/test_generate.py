import warnings

import numpy as np
import pytest
import sympy as sp

import warp_phys as wp

from .helpers import oracle_initial_state, solve_dop853


BUILTINS = ["msd", "msd-zero", "lotka-volterra", "lotka-volterra-copy", "sine", "spirals"]
CASES = [(name, split) for name in BUILTINS for split in wp.load_system(name).splits]


@pytest.mark.parametrize("name,split", CASES)
def test_builtin_matches_dop853(name, split):
    system = wp.load_system(name)
    data = wp.generate(system, split, 4, seed=3, cache=False)
    assert data.y.shape == (4, system.steps, len(system.state))
    assert np.all(np.isfinite(data.y))
    np.testing.assert_array_equal(data.t, np.linspace(*system.t_span, system.steps))
    for i in range(len(data)):
        y0 = oracle_initial_state(system, data.params[i], data.y0[i])
        np.testing.assert_allclose(data.y0[i], y0, rtol=0, atol=1e-12)
        reference = solve_dop853(system, data.params[i], y0, data.t)
        assert np.max(np.abs(data.y[i] - reference)) <= 1e-6


def test_builtin_defaults_follow_the_paper():
    msd = wp.load_system("msd")
    assert (msd.steps, msd.context, msd.t_span) == (256, 100, (0.0, 1.0))
    assert msd.sizes == {"train": 20480, "val": 2048, "test": 4096}
    assert dict(msd.draws)["k"] == wp.Uniform(train=(4.0, 16.0), ood=(2.0, 18.0))
    lv = wp.load_system("lotka-volterra")
    assert lv.sizes["train"] == 15000 and dict(lv.draws)["b"].ood == (70.0, 130.0)
    sine = wp.load_system("sine")
    assert (sine.steps, sine.context) == (16, 1) and sine.splits == (
        "train", "val", "test-id", "test-paper")
    assert wp.load_system("spirals").steps == 64


def test_exact_flows_are_taken_and_named_in_the_metadata():
    assert wp.compile_system(wp.load_system("msd")).is_linear
    assert wp.compile_system(wp.load_system("spirals")).is_linear
    assert not wp.compile_system(wp.load_system("lotka-volterra")).is_linear
    assert wp.compile_system(wp.load_system("sine")).has_solution
    # meta["method"] is the flow's description; these strings are stored in datasets.
    assert wp.generate(wp.load_system("msd"), "val", 2, cache=False).meta["method"] == "expm (linear)"
    assert wp.generate(wp.load_system("sine"), "val", 2, cache=False).meta["method"] == "closed form"
    assert (wp.compile_system(wp.load_system("lotka-volterra")).flow.description
            == "diffrax Dopri8 (adaptive)")


def test_same_seed_same_bits_and_splits_differ():
    system = wp.load_system("lotka-volterra")
    a = wp.generate(system, "train", 16, seed=7, cache=False)
    b = wp.generate(system, "train", 16, seed=7, cache=False)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.params, b.params)
    c = wp.generate(system, "train", 16, seed=8, cache=False)
    d = wp.generate(system, "test-id", 16, seed=7, cache=False)
    e = wp.generate(system, "val", 16, seed=7, cache=False)
    for other in (c, d, e):
        assert not np.any(np.isin(a.params[:, 0], other.params[:, 0]))


def test_save_load_round_trip_and_cache(tmp_path):
    system = wp.load_system("lotka-volterra-copy")
    data = wp.generate(system, "test-ood", 8, seed=1, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["test-ood-n8-seed1-tol1e-09-1e-09.json", "test-ood-n8-seed1-tol1e-09-1e-09.npz"]
    again = wp.generate(system, "test-ood", 8, seed=1, cache_dir=tmp_path)  # from the cache
    stem = next(tmp_path.rglob("*.npz"))
    loaded = wp.Dataset.load(stem)
    for x in (again, loaded):
        for field in ("t", "y", "inputs", "targets", "params", "y0", "labels"):
            np.testing.assert_array_equal(getattr(x, field), getattr(data, field))
        np.testing.assert_array_equal(x.extras["segment_length"], data.extras["segment_length"])
        assert x.meta == data.meta
        assert x.hash == system.hash and x.split == "test-ood" and x.param_names == ("a", "b", "c", "d")
    # The cache is keyed by the declaration: a changed declaration does not hit it.
    changed = system.replace(steps=128)
    assert wp.generate(changed, "test-ood", 8, seed=1, cache_dir=tmp_path).y.shape[1] == 128


def test_cache_survives_no_partial_files(tmp_path):
    data = wp.generate(wp.load_system("sine"), "train", 5, cache=False)
    data.save(tmp_path / "sine")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sine.json", "sine.npz"]
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(wp.WarpPhysError, match="no dataset file"):
        wp.Dataset.load(tmp_path / "broken")


def test_repeat_copy_targets():
    data = wp.generate(wp.load_system("lotka-volterra-copy"), "train", 6, seed=0, cache=False)
    for i, length in enumerate(data.extras["segment_length"]):
        assert 32 <= length <= 63
        np.testing.assert_array_equal(data.inputs[i, :length], data.y[i, :length])
        assert np.all(data.inputs[i, length:] == 0)
        period = length + 50
        for start in range(0, data.y.shape[1], period):
            end = min(start + length, data.y.shape[1])
            np.testing.assert_array_equal(data.targets[i, start:end], data.y[i, : end - start])
            assert np.all(data.targets[i, end : start + period] == 0)


def test_spirals_labels_are_the_rotation_direction():
    data = wp.generate(wp.load_system("spirals"), "train", 64, seed=0, cache=False)
    assert data.classes == ("1", "-1")
    direction = data.params[:, data.param_names.index("direction")]
    np.testing.assert_array_equal(data.labels, np.where(direction == 1.0, 0, 1))
    assert 0 < data.labels.sum() < 64
    # Clockwise (direction +1) means the angle of (x, y) decreases at first.
    angle = np.unwrap(np.arctan2(data.y[:, :3, 1], data.y[:, :3, 0]), axis=1)
    np.testing.assert_array_equal(np.diff(angle, axis=1)[:, 0] < 0, direction == 1.0)
    np.testing.assert_allclose(np.linalg.norm(data.y0, axis=1), 1.0)


def _blow_up(high):
    y, a = sp.symbols("y a")
    return wp.System(name="blowup", state=[y], equations=[a * y**2],
                     parameters={a: wp.Uniform(train=(0.2, high))}, initial_state={y: 1.0},
                     t_span=(0.0, 1.0), steps=20, context=5)


def test_failed_draws_are_replaced_and_reported():
    # y' = a y^2, y(0) = 1 blows up at t = 1/a: every draw with a > 1 must fail.
    with pytest.warns(wp.GenerationWarning, match="failed to solve"):
        data = wp.generate(_blow_up(1.2), "train", 40, seed=0, cache=False)
    assert len(data) == 40 and np.all(np.isfinite(data.y))
    assert np.all(data.params[:, 0] <= 1.0)
    failed = np.array(data.meta["failed"]["draws"])
    assert data.meta["failed"]["count"] == len(failed) > 0
    assert np.all(failed[:, 0] > 0.99)


def test_mostly_failing_system_is_an_error():
    with warnings.catch_warnings(), pytest.raises(wp.WarpPhysError, match="narrow the parameter"):
        wp.generate(_blow_up(4.0), "train", 40, seed=0, cache=False)


@pytest.mark.parametrize("kwargs,match", [
    (dict(split="test"), "unknown split 'test'"),
    (dict(split="train", n=0), "n must be a positive integer"),
    (dict(split="train", seed=-1), "seed must be"),
    (dict(split="train", rtol=0.0), "rtol and atol"),
])
def test_generate_rejects_bad_arguments(kwargs, match):
    with pytest.raises(wp.WarpPhysError, match=match):
        wp.generate(wp.load_system("sine"), cache=False, **kwargs)


def test_sine_has_no_ood_split():
    with pytest.raises(wp.WarpPhysError, match="no test-ood split"):
        wp.generate(wp.load_system("sine"), "test-ood", 4, cache=False)


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from warp_phys._io import write_text

    write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~mask


def _robertson(**changes):
    a, b, c = sp.symbols("a b c")
    k1 = sp.Symbol("k1", positive=True)
    return wp.System(
        name="robertson-test", state=[a, b, c],
        equations=[-k1 * a + 1e4 * b * c, k1 * a - 1e4 * b * c - 3e7 * b**2, 3e7 * b**2],
        parameters={k1: wp.Uniform(train=(0.03, 0.05))},
        initial_state={a: 1.0, b: 0.0, c: 0.0}, t_span=(0.0, 40.0), steps=12, context=4,
        **changes)


def test_a_stiff_system_hands_over_to_an_implicit_solver(monkeypatch):
    # Dopri8 grinds through Robertson's kinetics over [0, 40] in about 32,000 steps
    # (before the hand-over it did so silently, every time).
    from warp_phys import _generate

    monkeypatch.setattr(_generate, "_SETTLED", {})  # probe afresh, whatever ran before
    with pytest.warns(wp.StiffnessWarning, match=r"Dopri8 took [\d,]+ steps for a batch that "
                      r"Kvaerno5 solved in [\d,]+.*Declare solver=diffrax.Kvaerno5\(\)"):
        data = wp.generate(_robertson(), "train", 8, seed=0, cache=False)
    assert data.meta["method"] == "diffrax Kvaerno5 (adaptive)"
    assert data.meta["failed"]["count"] == 0 and np.all(np.isfinite(data.y))
    np.testing.assert_allclose(data.y.sum(axis=2), 1.0, atol=1e-6)  # mass is conserved


def test_a_declared_solver_is_used_without_a_probe():
    import diffrax

    system = _robertson(solver=diffrax.Kvaerno5())
    assert system.hash != _robertson().hash
    assert _robertson().to_json().keys() == wp.load_system("msd").to_json().keys()
    data = wp.generate(system, "train", 8, seed=0, cache=False)  # no warning (errors here)
    assert data.meta["method"] == "diffrax Kvaerno5 (adaptive)"
    np.testing.assert_allclose(data.y.sum(axis=2), 1.0, atol=1e-6)
    from warp_phys._greybox import _root_flow

    options = dict(rtol=1e-6, atol=1e-6, max_steps=1000)
    assert type(_root_flow(wp.compile_system(system).flow, **options).solver).__name__ == "Kvaerno5"
    lv = wp.compile_system(wp.load_system("lotka-volterra")).flow
    assert type(_root_flow(lv, **options).solver).__name__ == "Tsit5"
    with pytest.raises(wp.WarpPhysError, match="solver must be a Diffrax solver"):
        _robertson(solver="kvaerno5")


def test_a_batch_that_blows_up_is_not_taken_for_stiffness():
    flow = wp.compile_system(_blow_up(1.2)).flow
    ts = np.linspace(0.0, 1.0, 20)
    params = np.array([[0.5], [1.2]])
    settled, ys, ok = flow.settle(ts, params, np.ones((2, 1)))
    assert settled is flow and ok.tolist() == [True, False]


def test_observation_noise_has_its_own_stream_and_keeps_the_truth(tmp_path):
    msd = wp.load_system("msd")
    x, v = msd.state
    noisy = msd.replace(noise={x: wp.Gaussian(std=0.05), v: wp.Gaussian(relative=0.1)})
    assert noisy.hash != msd.hash and msd.to_json().keys() == _robertson().to_json().keys()
    clean = wp.generate(msd, "train", 64, seed=1, cache=False)
    data = wp.generate(noisy, "train", 64, seed=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(data.extras["clean"], clean.y)  # same draws, same solve
    np.testing.assert_array_equal(data.params, clean.params)
    residual = data.y - clean.y
    assert abs(residual[..., 0].std() - 0.05) < 0.005
    relative = residual[..., 1].std(axis=1) / clean.y[..., 1].std(axis=1)
    assert abs(np.median(relative) - 0.1) < 0.02
    assert data.inputs is data.y and data.targets is data.y
    again = wp.Dataset.load(next(tmp_path.rglob("train-*.npz")))  # the truth is stored too
    np.testing.assert_array_equal(again.extras["clean"], clean.y)
    # Metrics against the truth: a "model" that outputs the truth scores 0 there.
    from warp_phys._tasks import regression_metrics

    truth_as_forecast = np.concatenate([clean.y[:, 1:], clean.y[:, -1:]], axis=1)
    m = regression_metrics(truth_as_forecast, data)
    assert m["mse_clean"] == 0.0 and m["mse"] == pytest.approx(np.mean(residual[:, 100:] ** 2))
    with pytest.raises(wp.WarpPhysError, match="give std= .* or relative="):
        wp.Gaussian()
    with pytest.raises(wp.WarpPhysError, match="noise names"):
        msd.replace(noise={sp.Symbol("z"): wp.Gaussian(std=1.0)})


def test_declared_sampling_drops_samples_and_cuts_lengths(tmp_path):
    msd = wp.load_system("msd")
    gappy = msd.replace(sampling=wp.Sampling(drop=0.25, steps=(150, 200)))
    full = wp.generate(msd, "train", 32, seed=2, cache=False)
    data = wp.generate(gappy, "train", 32, seed=2, cache=False)
    np.testing.assert_array_equal(data.params, full.params)  # a stream of its own
    seen = ~np.isnan(data.y)
    assert seen[:, 0].all() and (seen == seen[..., :1]).all()  # whole samples are dropped
    lengths = seen[..., 0].cumsum(axis=1).argmax(axis=1) + 1
    assert lengths.min() >= 100 and np.all(~seen[:, 200:])
    share = 1 - seen[:, 1:150, 0].mean()
    assert 0.2 < share < 0.3
    np.testing.assert_array_equal(data.y[seen], full.y[seen])
    assert not np.isnan(data.inputs).any() and data.targets is data.y
    with pytest.raises(wp.WarpPhysError, match=r"sampling steps \(50, 80\) must lie above the context"):
        msd.replace(sampling=wp.Sampling(steps=(50, 80)))
    with pytest.raises(wp.WarpPhysError, match="drop must be a share"):
        wp.Sampling(drop=1.0)
