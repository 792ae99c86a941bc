"""Measured trajectories from files: reading, checking, and training on them."""

import numpy as np
import pandas as pd
import pytest
import sympy as sp

import warp_phys as wp
from warp_phys._cli import main


SIZES = {"train": 24, "val": 8, "test-id": 8, "test-ood": 8}


def _frame(system="msd", sizes=SIZES, seed=0) -> pd.DataFrame:
    """A built-in system's own splits in the long format, with its parameters as p:."""
    declared = wp.load_system(system)
    frames = []
    for split, n in sizes.items():
        data = wp.generate(declared, split, n, seed=seed)
        for i in range(n):
            columns = {"trajectory": f"{split}-{i}", "t": data.t}
            columns |= {name: data.y[i, :, j] for j, name in enumerate(data.state_names)}
            columns |= {f"p:{name}": data.params[i, j] for j, name in enumerate(data.param_names)}
            frames.append(pd.DataFrame({**columns, "split": split}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def msd_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("measured") / "bench.csv"
    _frame().to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npz"])
def test_a_file_of_a_systems_splits_reads_back_bit_for_bit(tmp_path, suffix):
    frame, path = _frame(), tmp_path / f"runs{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        splits = [wp.generate(wp.load_system("msd"), s, n, seed=0) for s, n in SIZES.items()]
        np.savez(path, t=splits[0].t, y=np.concatenate([d.y for d in splits]),
                 params=np.concatenate([d.params for d in splits]),
                 split=np.repeat(list(SIZES), list(SIZES.values())),
                 state_names=np.array(["x", "v"]), param_names=np.array(["m", "k", "c"]))
    data = wp.read_trajectories(path)
    assert list(data) == list(SIZES)
    for split, n in SIZES.items():
        generated = wp.generate(wp.load_system("msd"), split, n, seed=0)
        np.testing.assert_array_equal(data[split].y, generated.y)
        np.testing.assert_array_equal(data[split].t, generated.t)
        np.testing.assert_array_equal(data[split].params, generated.params)
        assert data[split].param_names == ("m", "k", "c") and data[split].state_names == ("x", "v")
    system = wp.load_system(path)
    assert system.splits == tuple(SIZES) and system.steps == 256 and not system.has_law
    assert system.context == round(0.4 * 256) and system.measured.rule == "split column"


def test_without_a_split_column_trajectories_are_split_by_a_seeded_draw(tmp_path):
    path = tmp_path / "runs.csv"
    _frame(sizes={"train": 40}).drop(columns="split").to_csv(path, index=False)
    data = wp.read_trajectories(path)
    assert {k: len(v) for k, v in data.items()} == {"train": 28, "val": 6, "test-id": 6}
    ids = [set(d.meta["trajectories"]) for d in data.values()]
    assert set.union(*ids) == {f"train-{i}" for i in range(40)} and sum(map(len, ids)) == 40
    assert "seeded by trajectory (70/15/15% train/val/test-id, seed 0)" in data["val"].meta["method"]
    assert wp.read_trajectories(path)["val"].meta["trajectories"] == data["val"].meta["trajectories"]


def test_a_law_names_the_states_and_brings_its_physics(msd_csv):
    assert wp.read_trajectories(msd_csv, law="msd")["train"].param_names == ("m", "k", "c")
    with pytest.raises(wp.WarpPhysError, match="declares a classify task"):
        wp.load_system(msd_csv, law="spirals")
    assert wp.make_config(msd_csv).system == str(msd_csv)  # a Path, recorded as its file
    system = wp.load_system(msd_csv, law="msd")
    assert system.name == "bench"  # runs are named after the file, not the law
    assert system.has_law and system.context == 100 and system.measured is not None
    assert wp.compile_system(system).is_linear
    assert system.hash != wp.load_system("msd").hash != wp.load_system(msd_csv).hash
    with pytest.raises(wp.WarpPhysError, match="only measured .* declares no law"):
        wp.compile_system(wp.load_system(msd_csv))
    with pytest.raises(wp.WarpPhysError, match="is measured: its trajectories come from"):
        wp.generate(system, "train", 4)
    theta, v = sp.symbols("theta v")
    pendulum = wp.System(name="pendulum", state=[theta, v], equations=[v, -theta],
                         initial_state={theta: 1.0, v: 0.0}, t_span=(0, 1), steps=10, context=2)
    with pytest.raises(wp.WarpPhysError, match="has no column 'theta' of the law 'pendulum'"):
        wp.load_system(msd_csv, law=pendulum)


def test_fitting_a_file_of_a_systems_splits_gives_the_systems_metrics(msd_csv, tmp_path):
    options = dict(epochs=1, width=8, depth=1, batch_size=8)
    direct = wp.fit(wp.make_config("msd", "quick", n_train=24, n_val=8, n_test=8, **options),
                    runs_dir=tmp_path / "direct", progress=False)
    measured = wp.fit(wp.make_config(str(msd_csv), "quick", law="msd", **options),
                      runs_dir=tmp_path / "file", progress=False)
    for split in ("test-id", "test-ood"):
        assert measured.metrics["splits"][split] == direct.metrics["splits"][split]
    assert "test-paper" not in measured.metrics["splits"]
    # The run is reproducible from its directory alone, and reads the file again.
    again = wp.Run.open(measured.path).evaluate(splits=["test-id"])
    assert again["test-id"]["mse"] == measured.metrics["splits"]["test-id"]["mse"]
    # predict's forecasts are the ones the metrics were measured on.
    forecasts, parameters = wp.predict(measured, "test-id")
    window = forecasts[forecasts["part"] == "forecast"]
    mse = np.mean([(window[s] - window[f"true:{s}"]) ** 2 for s in ("x", "v")])
    assert mse == pytest.approx(measured.metrics["splits"]["test-id"]["mse"], rel=1e-6)
    assert parameters is None and len(forecasts) == 8 * 255
    # Past the end of the data the model feeds back its forecasts; the truth is NaN there.
    longer, _ = wp.predict(measured, msd_csv, horizon=200)
    assert longer["trajectory"].nunique() == sum(SIZES.values())
    assert longer.groupby("trajectory").size().eq(100 + 200 - 1).all()
    beyond = longer[longer["step"] >= 256]
    assert beyond["true:x"].isna().all() and np.isfinite(beyond["x"]).all()


def test_an_edited_file_makes_its_runs_stale(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    _frame(sizes={"train": 12, "val": 4, "test-id": 4}).to_csv(path, index=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(path), "--epochs", "1", "--width", "4", "--depth", "1", "--batch-size", "4",
              "--out", str(tmp_path / "runs")])
    assert exit_info.value.code in (0, None)
    run_dir = next((tmp_path / "runs").glob("runs/warp/*"))
    capsys.readouterr()
    frame = pd.read_csv(path)
    frame.loc[0, "x"] += 1.0
    frame.to_csv(path, index=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(run_dir)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and "hash" in err


def test_gaps_and_variable_lengths_are_missing_values_models_skip(tmp_path):
    frame = _frame(sizes={"train": 6, "val": 3, "test-id": 3})
    step = frame.groupby("trajectory").cumcount()
    frame.loc[(frame["trajectory"] == "train-0") & (step == 10), "v"] = np.nan  # an empty cell
    frame = frame[~((frame["trajectory"] == "train-1") & (step == 20))]  # a dropped sample
    frame = frame[~((frame["trajectory"] == "val-0") & (step[frame.index] >= 200))]  # shorter
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    data = wp.read_trajectories(tmp_path / "gaps.csv")
    train, val = data["train"], data["val"]
    assert train.y.shape == (6, 256, 2) and train.meta["missing"] == 1 + 2
    assert np.isnan(train.targets[0, 10, 1]) and np.isnan(train.targets[1, 20]).all()
    assert train.inputs[0, 10, 1] == train.inputs[0, 9, 1]  # a model reads the last value seen
    assert np.isnan(val.targets[0, 200:]).all() and not np.isnan(val.inputs).any()
    np.testing.assert_array_equal(val.inputs[0, 200:], np.broadcast_to(val.y[0, 199], (56, 2)))
    # Metrics skip what is missing: a forecast equal to the truth scores 0, not NaN.
    from warp_phys._tasks import regression_metrics

    truth = _frame(sizes={"val": 3})
    exact = wp.read_trajectories(_save(tmp_path, truth.assign(split="val")), context=100)
    perfect = np.concatenate([exact["val"].y[:, 1:], exact["val"].y[:, -1:]], axis=1)
    assert regression_metrics(perfect, val)["mse"] == 0.0
    # Training on it is finite: the loss skips the missing targets.
    run = wp.fit(wp.make_config(str(tmp_path / "gaps.csv"), "quick", epochs=1, width=4, depth=1,
                                batch_size=3), runs_dir=tmp_path / "runs", progress=False)
    assert np.isfinite(run.metrics["splits"]["test-id"]["mse"])
    # The masked loss counts the observed targets only, and is finite.
    task, mean = wp.Forecast(), np.zeros((1, 4, 1))
    targets = np.array([[[1.0], [2.0], [np.nan], [4.0]]])  # step k + 1 is forecast at k
    assert float(task.loss(mean, None, targets, None, masked=True)) == pytest.approx((4 + 16) / 2)


def _save(tmp_path, frame):
    frame = pd.concat([frame, frame.assign(split="train", trajectory=frame["trajectory"] + "t"),
                       frame.assign(split="test-id", trajectory=frame["trajectory"] + "i")])
    frame.to_csv(tmp_path / "exact.csv", index=False)
    return tmp_path / "exact.csv"


def _write(tmp_path, edit, name="bad.csv"):
    frame = _frame(sizes={"train": 6, "val": 3, "test-id": 3})
    frame = edit(frame)
    path = tmp_path / name
    frame.to_csv(path, index=False) if isinstance(frame, pd.DataFrame) else path.write_text(frame)
    return path


def _retime(frame, rows, values):
    frame = frame.copy()
    frame.loc[rows, "t"] = values
    return frame


MALFORMED = {
    "no t": (lambda f: f.drop(columns="t"), r"has no 't' column"),
    "no trajectory": (lambda f: f.drop(columns="trajectory"), r"has no 'trajectory' column"),
    "times go back": (lambda f: _retime(f, [5], [0.0]), r"line 7: time 0 of trajectory 'train-0' is not after"),
    "empty state": (lambda f: f.assign(x=np.nan), r"column 'x' is empty in every row"),
    "first cell empty": (lambda f: f.assign(v=f["v"].where(f.index != 0)),
                         r"line 2, column 'v': the first sample of trajectory 'train-0' is empty"),
    "late start": (lambda f: f[f.index != 256], r"trajectory 'train-1' starts at t=0.00392"),
    "unnamed column": (lambda f: f.to_csv(), r"column 1 of the header has no name"),
    "not a number": (lambda f: f.astype({"x": object}).assign(
        x=lambda g: g["x"].where(g.index != 3, "abc")), r"line 5, column 'x': 'abc' is not a number"),
    "no val": (lambda f: f[f["split"] != "val"], r"split 'val' has no trajectories"),
    "bad split": (lambda f: f.assign(split=f["split"].replace("test-id", "test")),
                  r"column 'split': 'test' is not one of train, val, test-id, test-ood"),
    "first control empty": (lambda f: f.assign(**{"u:force": np.where(f.index == 256, np.nan, 1.0)}),
                            r"line 258, column 'u:force': the first sample of trajectory 'train-1' "
                            "is empty; .* must give every control"),
    "twice": (lambda f: "trajectory,t,x,x\n", r"the header names 'x' twice"),
    "not csv": (lambda f: "trajectory,t,x\n\"a,1,2\n", r"not a readable CSV file"),
    "parameter varies": (lambda f: f.assign(**{"p:k": np.arange(len(f), dtype=float)}),
                         r"column 'p:k': trajectory 'train-0' has several values"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_each_malformed_file_is_one_line_naming_the_file(tmp_path, case):
    edit, match = MALFORMED[case]
    path = _write(tmp_path, edit)
    with pytest.raises(wp.WarpPhysError, match=match) as info:
        wp.read_trajectories(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_malformed_file_on_the_command_line_is_exit_2(tmp_path, capsys):
    path = _write(tmp_path, MALFORMED["times go back"][0])
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(path), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "line 7" in err and not (tmp_path / "runs").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(tmp_path / "absent.csv")])
    assert exit_info.value.code == 2 and "no file" in capsys.readouterr().err


def test_predict_on_the_command_line_writes_the_table(msd_csv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(msd_csv), "--law", "msd", "--model", "warp-phys", "--physics-form",
              "direct", "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "runs")])
    assert exit_info.value.code in (0, None)
    run_dir = next((tmp_path / "runs").glob("bench/warp-phys/*"))  # named after the file
    capsys.readouterr()
    out = tmp_path / "forecasts.parquet"
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(run_dir), "test-ood", "--horizon", "10", "--out", str(out)])
    text = capsys.readouterr().out
    assert exit_info.value.code in (0, None) and "8 trajectories, 10 forecast steps each" in text
    forecasts = pd.read_parquet(out)
    parameters = pd.read_parquet(tmp_path / "forecasts-parameters.parquet")
    assert len(forecasts) == 8 * (100 + 10 - 1) and list(parameters.columns) == [
        "trajectory", "inferred:m", "true:m", "inferred:k", "true:k", "inferred:c", "true:c"]
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(run_dir), "--split", "test-paper"])
    assert exit_info.value.code == 2 and "has no test-paper trajectories; its splits are train, val, " \
        "test-id, test-ood" in capsys.readouterr().err
    only_tests = pd.read_csv(msd_csv)
    only_tests = only_tests[only_tests["split"] == "test-id"]  # predict ignores splits
    only_tests.to_csv(tmp_path / "new.csv", index=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(run_dir), str(tmp_path / "new.csv")])
    assert exit_info.value.code in (0, None) and "8 trajectories, 156 forecast" in capsys.readouterr().out
    for argv, message in [(["test-paper"], "neither a split of bench"),
                          (["test-id", "--out", str(tmp_path / "f.txt")], "give a .csv or .parquet"),
                          (["test-id", "--horizon", "0"], "--horizon must be a positive")]:
        with pytest.raises(SystemExit) as exit_info:
            main(["predict", str(run_dir), *argv])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_uea_problems_shipped_with_aeon_read_as_labelled_splits():
    motions = wp.read_trajectories("uea:BasicMotions")
    assert {k: v.y.shape for k, v in motions.items()} == {
        "train": (34, 100, 6), "val": (6, 100, 6), "test-id": (40, 100, 6)}
    assert motions["train"].classes == ("badminton", "running", "standing", "walking")
    assert sorted(np.bincount(np.concatenate([d.labels for d in motions.values()]))) == [20] * 4
    vowels = wp.read_trajectories("uea:JapaneseVowels")  # 7 to 29 steps: padded at the end
    lengths = np.isfinite(vowels["test-id"].targets[..., 0]).sum(axis=1)
    assert (len(vowels["train"]) + len(vowels["val"]), len(vowels["test-id"])) == (270, 370)
    assert lengths.min() < lengths.max() == 29 and not np.isnan(vowels["test-id"].inputs).any()
    system = wp.load_system("uea:JapaneseVowels")
    assert isinstance(system.task, wp.Classify) and len(system.classes) == 9
    with pytest.raises(wp.WarpPhysError, match="aeon ships no classification problem 'Nope'.*BasicMotions"):
        wp.load_system("uea:Nope")


def test_a_classifier_reads_each_sequence_at_its_last_sample(tmp_path):
    task = wp.Classify()
    mean = np.zeros((2, 4, 3))
    mean[0, 1] = [9.0, 0.0, 0.0]  # sequence 0 ends at step 1: class 0 there, class 2 at the end
    mean[0, 3] = [0.0, 0.0, 9.0]
    mean[1, 3] = [0.0, 9.0, 0.0]
    targets = np.ones((2, 4, 1))
    targets[0, 2:] = np.nan
    labels = np.array([0, 1])
    short = float(task.loss(mean, None, targets, labels, masked=True))
    assert short < 1e-3 < float(task.loss(mean, None, targets, labels))
    run = wp.fit(wp.make_config("uea:BasicMotions", "quick", epochs=1, width=8, depth=1,
                                batch_size=17), runs_dir=tmp_path, progress=False)
    assert 0.0 <= run.metrics["splits"]["test-id"]["accuracy"] <= 1.0
    assert run.path.parent.parent.name == "BasicMotions" and run.system.classes[0] == "badminton"
