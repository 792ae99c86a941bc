"""Configuration objects, presets, config.json both ways, and the flags made from them."""

import json
from pathlib import Path

import jax.random as jr
import pytest

import warp_phys as wp
from warp_phys._cli import main
from warp_phys._config import FitConfig, from_flat
from warp_phys._flags import translate
from warp_phys._study import _applying

from .test_compile import PENDULUM


DATA = Path(__file__).parent / "data"


def test_presets_resolve_as_warp_phys_0_1_did():
    # Every built-in system, preset and model gave these options before presets moved into
    # the system files (tests/data/resolved_configs_v0.json, written by the old code).
    old = json.loads((DATA / "resolved_configs_v0.json").read_text())
    assert len(old) == 72
    for key, expected in old.items():
        system, preset, model = key.split("|")
        flat = wp.make_config(system, preset, model=model).flat()
        if model not in ("warp", "warp-phys") and expected["final"] == "dynamic-tanh":
            expected = {**expected, "final": "none"}  # baselines honoured only clip
        expected["checkpoint_every"] = 1  # every epoch since run integrity (was 5, 10, 25)
        differ = {k: (expected[k], v) for k, v in flat.items() if k in expected and expected[k] != v}
        assert not differ, (key, differ)


def test_a_legacy_flat_config_json_reads_as_the_same_configuration():
    old = json.loads((DATA / "resolved_configs_v0.json").read_text())
    for key in ("msd|quick|warp", "msd|quick|warp-phys", "spirals|paper|gru", "sine|quick|node"):
        system, preset, model = key.split("|")
        legacy = {**old[key], "normaliser": {"shift": [0.0], "scale": [1.0]}}
        legacy.pop("normaliser")
        # A file records its checkpoint_every (5 then; the default is 1 now).
        assert FitConfig.from_json(legacy) == wp.make_config(
            system, preset, model=model, checkpoint_every=legacy["checkpoint_every"])


def test_config_json_round_trips_and_names_its_format():
    config = wp.make_config("msd", "quick", model="warp-phys", physics_form="direct", lr=3e-4)
    data = json.loads(json.dumps(config.to_json()))
    assert data["format"] == 2 and data["model"]["name"] == "warp-phys"
    assert FitConfig.from_json(data) == config
    with pytest.raises(wp.WarpPhysError, match="format 99"):
        FitConfig.from_json({**data, "format": 99})


def test_a_new_system_gets_the_general_quick_preset(tmp_path):
    path = tmp_path / "pendulum.py"
    path.write_text(PENDULUM)
    config, sources = wp.resolve(str(path), "quick")
    assert isinstance(config.model, wp.WARPConfig)
    assert (config.optimiser.lr, config.optimiser.a_lr_scale) == (1e-3, 0.05)
    assert (config.model.final, config.model.clip_bound) == ("clip", 8.0)
    assert config.training.batch_size == 16 and config.data.n_train == 1024
    assert config.model.init == "hypernetwork"  # the pendulum starts from a random angle
    assert sources["n_train"] == "quick" and "lr" not in sources  # a class default
    assert wp.make_config(str(path), "quick", model="warp-phys").model.root_previous


def test_a_system_file_carries_its_own_presets(tmp_path):
    path = tmp_path / "pendulum.py"
    text = PENDULUM.rstrip().rstrip(")").rstrip() + (
        '\n    presets={"quick": {"*": dict(lr=5e-4), wp.WARPPhysConfig: dict(forcing=0.0)},\n'
        '             "long": {"*": dict(epochs=400)}},\n)\n')
    path.write_text(text)
    config, sources = wp.resolve(str(path), "quick", model="warp-phys")
    assert config.optimiser.lr == 5e-4 and config.training.forcing == 0.0
    assert sources["lr"] == "system 'pendulum' quick"
    assert wp.make_config(str(path), "quick", model="gru").training.forcing == 0.25
    assert wp.make_config(str(path), "long").training.epochs == 400
    with pytest.raises(wp.WarpPhysError, match="unknown preset 'huge'.*quick, paper, long"):
        wp.make_config(str(path), "huge")
    path.write_text(text.replace("wp.WARPPhysConfig:", '"warp-phys":'))
    with pytest.raises(wp.WarpPhysError, match="selector must be '\\*' or a model config class"):
        wp.make_config(str(path), "quick")


def test_library_errors_name_arguments_and_the_cli_names_flags():
    with pytest.raises(wp.WarpPhysError) as error:
        wp.WARPConfig(width=0)
    assert str(error.value) == "WARPConfig(width=0): width must be a positive integer"
    assert translate(error.value) == "--width must be a positive integer, got 0"
    with pytest.raises(wp.WarpPhysError) as error:
        from_flat({"model": "gru", "uncertainty": True})
    assert "uncertainty does not apply to model 'gru'" in str(error.value)
    assert translate(error.value).startswith("--uncertainty does not apply")
    free = wp.WarpPhysError("set forcing=1 or mode='recurrent'; keep root_previous=False")
    assert translate(free) == "set --forcing 1 or --mode recurrent; keep --no-root-previous"


def help_text(command, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_every_option_of_every_config_object_is_a_documented_flag(capsys, monkeypatch):
    output = help_text("fit", capsys, monkeypatch)
    classes = [*wp.MODELS.values(), *wp.OPTIMISERS.values(), wp.Training, wp.Data]
    for cls in classes:
        for name in cls.fields():
            assert f"--{name.replace('_', '-')}" in output, (cls, name)
    for heading in ("Run options", "Data options", "Model options", "Optimiser options",
                    "Training options"):
        assert heading in output
    study = help_text("study", capsys, monkeypatch)
    assert "--lr" in study and "--width" in study and "--a-lr-scale" in study


def test_every_model_family_builds_from_its_config():
    msd = wp.load_system("msd")
    for name, cls in wp.MODELS.items():
        model = cls().build(msd, key=jr.PRNGKey(0))
        assert wp.param_count(model) > 0, name
        assert cls.name == name


def test_fit_takes_objects(tmp_path):
    run = wp.fit("sine", model=wp.WARPConfig(width=4, depth=1),
                 optimiser=wp.Adam(3e-3, a_lr_scale=1.0),
                 training=wp.Training(epochs=2, batch_size=8),
                 data=wp.Data(n_train=16, n_val=8, n_test=8), runs_dir=tmp_path, progress=False)
    saved = wp.Run.load_config(run.path)
    assert isinstance(saved.optimiser, wp.Adam) and saved.model.width == 4
    assert [json.loads(line)["epoch"] for line in
            (run.path / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_study_options_reach_the_models_that_have_them():
    applying = _applying({"width": 8, "hidden": 4, "lr": 1e-2}, ["warp", "gru"])
    assert applying == {"warp": {"width": 8, "lr": 1e-2}, "gru": {"hidden": 4, "lr": 1e-2}}
    with pytest.raises(wp.WarpPhysError, match="uncertainty applies to none of the models gru"):
        _applying({"uncertainty": True}, ["gru"])
