import csv
import json

import jax.random as jr
import numpy as np
import pytest

import warp_phys as wp
from warp_phys._cli import main
from warp_phys._baselines import param_count
from warp_phys._study import box_distance

from .test_compile import PENDULUM


TINY = ["--epochs", "2", "--n-train", "16", "--n-val", "8", "--n-test", "8",
        "--batch-size", "8"]


def test_fit_warp_phys_on_a_system_it_has_never_seen(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pendulum.py").write_text(PENDULUM.replace("steps=200, context=50", "steps=24, context=8"))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "pendulum.py", "--model", "warp-phys", "--width", "4", "--depth", "1",
              "--out", "runs", *TINY])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0, out
    run_dir = next((tmp_path / "runs" / "pendulum" / "warp-phys").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert np.isfinite(metrics["splits"]["test-ood"]["mse"])
    assert set(metrics["parameters"]["test-ood"]) == {"length", "damping"}
    rows = list(csv.DictReader((run_dir / "parameters-test-ood.csv").read_text().splitlines()))
    assert len(rows) == 8 and set(rows[0]) == {"true_length", "true_damping",
                                               "inferred_length", "inferred_damping"}
    # The inferred values are physical: lengths positive, as the transform guarantees.
    assert all(float(r["inferred_length"]) > 0 for r in rows)
    law = (run_dir / "law.md").read_text()
    # g = 9.81 stays fixed: it enters the learned law divided by the inferred length.
    assert "Eq(Derivative(omega(t), t), " in law and "*sin(theta(t))" in law
    assert (run_dir / "plots" / "parameters.png").stat().st_size > 0


@pytest.mark.parametrize("model", ["warp", "gru", "node"])
def test_budget_sizes_models_to_a_common_count(model):
    system = wp.load_system("msd")
    config = wp.make_config("msd", "quick", model=model, budget=5000,
                            **({} if model == "gru" else dict(depth=1)))
    count = param_count(config.model.build(system, key=jr.PRNGKey(0)))
    assert abs(count - 5000) / 5000 < 0.25, count


def test_budget_refuses_a_fixed_size_model():
    config = wp.make_config("msd", "quick", model="warp-phys", physics_form="direct", budget=500)
    with pytest.raises(wp.WarpPhysError, match="fixed size"):
        config.model.build(wp.load_system("msd"), key=jr.PRNGKey(0))


def test_box_distance():
    system = wp.load_system("msd")  # m (0.02, 0.04), k (4, 16), c (0.01, 0.2)
    params = np.array([[0.03, 10.0, 0.1], [0.05, 10.0, 0.1], [0.01, 2.0, 0.1]])
    np.testing.assert_allclose(box_distance(system, params), [0.0, 0.5, np.hypot(0.5, 2 / 12)])


def test_study_trains_then_reuses_runs(tmp_path, capsys):
    argv = ["study", "msd", "--models", "warp,gru", "--seeds", "2", "--out", str(tmp_path),
            "--ensemble", *TINY]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    first = capsys.readouterr().out
    runs = sorted(p for p in (tmp_path / "msd").glob("*/*") if p.parent.name != "study-quick")
    assert len(runs) == 4
    folder = tmp_path / "msd" / "study-quick"
    rows = list(csv.DictReader((folder / "study.csv").read_text().splitlines()))
    assert [r["model"] for r in rows] == ["warp", "gru"]
    for row in rows:
        seeds = [json.loads((p / "metrics.json").read_text())["splits"]["test-ood"]["mse"]
                 for p in runs if p.parent.name == row["model"]]
        assert float(row["test-ood_mse_mean"]) == pytest.approx(np.mean(seeds))
        assert float(row["test-ood_mse_std"]) == pytest.approx(np.std(seeds))
        assert int(row["parameters"]) > 0
    assert "| warp |" in first and (folder / "distance.png").stat().st_size > 0
    # The two seeds of each model trained together, as one vmapped ensemble.
    assert all(json.loads((p / "env.json").read_text())["ensemble"] == 2 for p in runs)
    # Run again: every run is reused, nothing trains.
    with pytest.raises(SystemExit):
        main(argv)
    capsys.readouterr()
    again = sorted(p for p in (tmp_path / "msd").glob("*/*") if p.parent.name != "study-quick")
    assert again == runs


def test_study_refuses_unknown_models(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "msd", "--models", "warp,transformer"])
    assert exit_info.value.code == 2
    assert "transformer" in capsys.readouterr().err


def test_grey_box_seeds_are_not_stacked():
    # Each seed's normaliser lives in its grey-box root as static data, so the seeds of
    # warp-phys have no common structure and fit_ensemble trains them one by one; those
    # of black-box WARP stack.
    from warp_phys._normalise import Normaliser
    from warp_phys._train import _stackable

    system = wp.load_system("msd")
    normalisers = [Normaliser(np.zeros(2), np.ones(2)), Normaliser(np.zeros(2), np.full(2, 2.0))]
    for model, stackable in (("warp-phys", False), ("warp", True)):
        config = wp.make_config("msd", "quick", model=model)
        models = [config.model.build(system, n, key=jr.PRNGKey(i)) for i, n in enumerate(normalisers)]
        assert _stackable(models) is stackable
