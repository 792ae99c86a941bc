import json

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import warp_phys as wp
from warp_phys._cli import main


def tiny_config(system="sine", **overrides):
    sizes = (dict(width=8, depth=1) if overrides.get("model", "warp") in ("warp", "warp-phys")
             else dict(hidden=8))
    values = dict(epochs=3, batch_size=16, n_train=32, n_val=16, n_test=16, lr=3e-3,
                  checkpoint_every=1, **sizes)
    values.update(overrides)
    return wp.make_config(system, "quick", **values)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # The train step asserts it is traced once: 3 epochs x 2 steps would fail on a retrace.
    return wp.fit(tiny_config(), runs_dir=tmp_path_factory.mktemp("runs"), progress=False)


def test_run_directory_contents(run):
    names = {p.name for p in run.path.iterdir()}
    assert names >= {"config.json", "env.json", "metrics.jsonl", "metrics.json", "model.eqx",
                     "checkpoint.eqx", "plots"}
    assert run.path.parts[-3:-1] == ("sine", "warp")
    assert {p.name for p in (run.path / "plots").iterdir()} == {"losses.png", "forecasts.png"}
    history = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    env = json.loads((run.path / "env.json").read_text())
    assert env["seed"] == 0 and env["packages"]["jax"]
    splits = run.metrics["splits"]
    assert set(splits) == {"test-id", "test-paper"}
    assert splits["test-id"]["mse"] < splits["test-id"]["naive_mse"]


def test_evaluate_reproduces_saved_metrics(run, capsys):
    again = wp.Run.open(run.path).evaluate()
    for split, m in run.metrics["splits"].items():
        assert again[split]["mse"] == pytest.approx(m["mse"], rel=1e-6)
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(run.path)])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert f"MSE {run.metrics['splits']['test-id']['mse']:.4g}" in out


def _losses(run):
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    return [(r["epoch"], r["train_loss"]) for r in map(json.loads, lines)]


def test_resume_continues_exactly_from_the_checkpoint(tmp_path):
    straight = wp.fit(tiny_config(epochs=4), runs_dir=tmp_path / "a", progress=False)
    first = wp.fit(tiny_config(epochs=2), runs_dir=tmp_path / "b", progress=False)
    # Pretend the run was killed after epoch 2 of 4: resume it with 4 epochs.
    resumed = wp.fit(None, resume=first.path, changes={"epochs": 4}, progress=False)
    assert [e for e, _ in _losses(resumed)] == [1, 2, 3, 4]
    assert [loss for _, loss in _losses(resumed)] == pytest.approx(
        [loss for _, loss in _losses(straight)], rel=1e-6)


def test_classification_trains(tmp_path):
    run = wp.fit(tiny_config("spirals", epochs=4, n_train=64, batch_size=32, lr=1e-2),
                 runs_dir=tmp_path, progress=False)
    accuracy = run.metrics["splits"]["test-id"]["accuracy"]
    assert 0.0 <= accuracy <= 1.0
    history = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_non_finite_loss_stops_with_a_message(tmp_path):
    # sine's quick preset feeds back unclipped forecasts, so the fix names the clip too
    with pytest.raises(wp.WarpPhysError, match=r"became (nan|inf);.*lower the learning rate \(now "
                                               r"lr=1e\+06\) or bound fed-back forecasts with "
                                               "final='clip'"):
        wp.fit(tiny_config(lr=1e6, grad_clip="none", optimiser="sgd"), runs_dir=tmp_path,
               progress=False)


@pytest.mark.parametrize("argv,message", [
    (["fit", "sine", "--epochs", "-1"], "--epochs must be a positive integer"),
    (["fit", "sine", "--model", "transformer"], "Invalid value for '--model': 'transformer'"),
    (["fit", "sine", "--optimiser", "magic"], "Invalid value for '--optimiser': 'magic'"),
    (["fit", "sine", "--forcing", "1.5"], "--forcing must be a probability in [0, 1], got 1.5"),
    (["fit", "msd", "--model", "gru", "--uncertainty"],
     "--uncertainty does not apply to model 'gru' (it is an option of WARPConfig)"),
    (["fit", "lotka-volterra-copy", "--forcing", "0.5"], "feed back its own forecasts; set --forcing 1"),
    (["fit", "sine", "--model", "warp-phys", "--root-previous"], "--no-root-previous"),
    (["fit", "sine", "--final", "dynamic-tanh", "--model", "gru"], "--final must be one of none, clip"),
    (["fit", "sine", "--preset", "huge"], "unknown preset 'huge'"),
    (["fit", "msd", "--model", "ncde", "--clip-bound", "-1"], "--clip-bound must be positive"),
    (["fit", "nope"], "unknown system 'nope'"),
    (["evaluate", "/nonexistent/run"], "is not a run directory"),
])
def test_fit_bad_options_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_learning_rate_scale_touches_only_A():
    model = wp.make_warp(2, 2, 8, width=4, depth=1, key=jr.PRNGKey(0))
    params = eqx.filter(model, eqx.is_inexact_array)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    deltas = {}
    for scale in (1.0, 1e-3):
        optimiser = tiny_config(optimiser="sgd", lr=0.1, grad_clip="none",
                                a_lr_scale=scale).optimiser.make()
        updates, _ = optimiser.update(grads, optimiser.init(params), params, value=jnp.zeros(()))
        deltas[scale] = (float(jnp.abs(updates.A).max()), float(jnp.abs(updates.B).max()))
    assert deltas[1.0] == pytest.approx((0.1, 0.1))
    assert deltas[1e-3] == pytest.approx((1e-4, 0.1))



def test_two_devices_train_like_one(tmp_path):
    # conftest gives this process two CPU devices. The batch is split across them, the
    # model replicated: the losses match one device's to float32 rounding.
    one = wp.fit(tiny_config(epochs=2), runs_dir=tmp_path / "one", progress=False)
    two = wp.fit(tiny_config(epochs=2, devices=2), runs_dir=tmp_path / "two", progress=False)
    assert [loss for _, loss in _losses(two)] == pytest.approx([loss for _, loss in _losses(one)],
                                                               rel=1e-6)
    assert two.metrics["splits"]["test-id"]["mse"] == pytest.approx(
        one.metrics["splits"]["test-id"]["mse"], rel=1e-5)
    assert two.load_config(two.path).training.devices == 2


@pytest.mark.parametrize("overrides,message", [
    (dict(devices=64), "devices=64: only 2 cpu device"),
    (dict(devices=2, batch_size=15), "does not split evenly over devices=2"),
    (dict(mode="convolutional", forcing=0.25), "mode='convolutional' needs every input"),
])
def test_devices_and_mode_refuse_what_cannot_work(overrides, message, tmp_path):
    with pytest.raises(wp.WarpPhysError, match=message):
        wp.fit(tiny_config(**overrides), runs_dir=tmp_path, progress=False)


def test_a_model_the_options_cannot_build_fails_before_data_is_generated(tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("data generated before the model was checked")

    monkeypatch.setattr("warp_phys._train.load_splits", no_data)
    config = tiny_config("sine", model="warp-phys", root_previous=True)
    with pytest.raises(wp.WarpPhysError, match="closed form.*set root_previous=False"):
        wp.fit(config, runs_dir=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())  # no run directory either


def test_convolutional_mode_trains_like_the_recurrent_mode(tmp_path):
    # Classification reads every input, so the two modes must train identically.
    runs = {mode: wp.fit(tiny_config("spirals", epochs=2, n_train=64, batch_size=32, mode=mode),
                         runs_dir=tmp_path / mode, progress=False)
            for mode in ("recurrent", "convolutional")}
    assert [loss for _, loss in _losses(runs["convolutional"])] == pytest.approx(
        [loss for _, loss in _losses(runs["recurrent"])], rel=1e-4)
    env = json.loads((runs["convolutional"].path / "env.json").read_text())
    assert env["path"].startswith("convolutional, per-sequence theta_0")


@pytest.mark.parametrize("transition", ["diagonal-low-rank", "block-diagonal"])
def test_structured_transitions_train_and_reload(transition, tmp_path):
    run = wp.fit(tiny_config(epochs=3, transition=transition, rank=2), runs_dir=tmp_path,
                 progress=False)
    losses = [loss for _, loss in _losses(run)]
    assert losses[-1] < losses[0]
    model = run.load_model()  # the saved structure round-trips
    assert type(model.A).__name__ == {"diagonal-low-rank": "DiagonalLowRank",
                                      "block-diagonal": "BlockDiagonal"}[transition]
    assert run.evaluate()["test-id"]["mse"] == pytest.approx(run.metrics["splits"]["test-id"]["mse"],
                                                             rel=1e-6)


@pytest.mark.parametrize("model", ["warp", "node"])
def test_an_ensemble_trains_each_seed_as_fit_would(model, tmp_path):
    # One vmapped step over two seeds: each member has its own data, batches and keys, so
    # it follows the run fit() makes for its seed (to float rounding), in its own folder.
    # WARP goes through its custom VJP; the Neural ODE holds functions (its activations)
    # among its leaves; the study test trains a GRU ensemble.
    small = {} if model == "warp" else dict(epochs=2, hidden=8, code=4)
    configs = [tiny_config(model=model, seed=s, **small) for s in (0, 1)]
    together = wp.fit_ensemble(configs, runs_dir=tmp_path / "together", progress=False)
    assert [member.config for member in together] == configs
    assert all(json.loads((m.path / "env.json").read_text())["ensemble"] == 2 for m in together)
    # The second member against its own fit: the member axis is neither dropped nor mixed.
    alone = wp.fit(configs[1], runs_dir=tmp_path / "alone", progress=False)
    assert [loss for _, loss in _losses(together[1])] == pytest.approx(
        [loss for _, loss in _losses(alone)], rel=1e-5)
    assert together[1].metrics["splits"]["test-id"]["mse"] == pytest.approx(
        alone.metrics["splits"]["test-id"]["mse"], rel=1e-4)
    assert _losses(together[0]) != _losses(together[1])
    if model != "warp":
        return
    # A member resumes on its own, from its own checkpoint.
    resumed = wp.fit(None, resume=together[1].path, changes={"epochs": 4}, progress=False)
    assert [e for e, _ in _losses(resumed)] == [1, 2, 3, 4]


def test_an_ensemble_of_grey_box_seeds_trains_them_one_by_one(tmp_path, monkeypatch):
    # Each msd seed has its own normaliser inside its grey-box root, so the seeds do not
    # stack: they train one after another, each on the data prepared once, as fit would.
    import warp_phys._train as train

    loads = []
    load_splits = train.load_splits
    monkeypatch.setattr(train, "load_splits",
                        lambda *args, **kwargs: loads.append(1) or load_splits(*args, **kwargs))
    configs = [tiny_config("msd", model="warp-phys", physics_form="direct", seed=s, epochs=2,
                           n_train=16, n_test=8)
               for s in (0, 1)]
    together = wp.fit_ensemble(configs, runs_dir=tmp_path / "together", progress=False)
    assert len(loads) == 2
    assert [member.config for member in together] == configs
    assert all("ensemble" not in json.loads((m.path / "env.json").read_text()) for m in together)
    alone = wp.fit(configs[1], runs_dir=tmp_path / "alone", progress=False)
    assert [loss for _, loss in _losses(together[1])] == pytest.approx(
        [loss for _, loss in _losses(alone)], rel=1e-6)


def test_an_ensemble_refuses_configurations_that_differ_beyond_the_seed(tmp_path):
    with pytest.raises(wp.WarpPhysError, match="differ in more than their seed"):
        wp.fit_ensemble([tiny_config(seed=0), tiny_config(seed=1, lr=1e-2)], runs_dir=tmp_path)
    with pytest.raises(wp.WarpPhysError, match="distinct seeds"):
        wp.fit_ensemble([tiny_config(seed=0), tiny_config(seed=0)], runs_dir=tmp_path)
