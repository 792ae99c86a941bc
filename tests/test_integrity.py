"""Run integrity: nothing stale, nothing torn, nothing lost, every fault one line
(docs/reliability.md says what each test here guarantees)."""

import errno
import json
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import warp_phys as wp
from warp_phys._cli import main, os_error
from warp_phys._run import Run, new_run_dir, read_history
from warp_phys._study import find_run


SINE = (Path(__file__).parents[1] / "systems" / "sine.py").read_text()


def tiny(system="sine", **overrides):
    values = dict(width=8, depth=1, epochs=2, batch_size=16, n_train=32, n_val=16, n_test=16,
                  lr=3e-3, checkpoint_every=5)
    return wp.make_config(system, "quick", **{**values, **overrides})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return wp.fit(tiny(), runs_dir=tmp_path_factory.mktemp("runs"), progress=False)


def _epochs(run):
    return [json.loads(line)["epoch"] for line in (run.path / "metrics.jsonl").read_text().splitlines()]


def _copy(run, tmp_path) -> Run:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(run.path, target, ignore=shutil.ignore_patterns(".lock"))
    return Run.open(target)


# ------------------------------------------------------------------ stale results


def test_an_edited_system_file_makes_its_runs_stale(tmp_path):
    path = tmp_path / "wave.py"
    path.write_text(SINE.replace('name="sine"', 'name="wave"'))
    config = tiny(str(path))
    run = wp.fit(config, runs_dir=tmp_path / "runs", progress=False)
    assert find_run(tmp_path / "runs", config).path == run.path
    path.write_text(SINE.replace('name="sine"', 'name="wave"').replace("/ 6, float", "/ 4, float"))
    assert find_run(tmp_path / "runs", config) is None  # a study trains anew
    with pytest.raises(wp.WarpPhysError, match="declaration hash .* now declares"):
        run.evaluate()
    with pytest.raises(wp.WarpPhysError, match="declaration hash"):
        wp.fit(None, resume=run.path, progress=False)


# ------------------------------------------------------------- one owner, no races


def test_a_run_directory_has_one_owner(finished):
    run = Run.open(finished.path)
    run.acquire()
    try:
        other = Run.open(finished.path)
        with pytest.raises(wp.WarpPhysError, match="in use by another warp-phys process"):
            other.acquire()
        with pytest.raises(wp.WarpPhysError, match="in use"):
            wp.fit(None, resume=finished.path, progress=False)
    finally:
        run.release()


def test_run_directories_are_created_atomically(tmp_path):
    made, errors = [], []

    def make():
        try:
            made.extend(new_run_dir(tmp_path, "sine", "warp") for _ in range(10))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(made)) == 80 and all(p.is_dir() for p in made)


def test_a_file_where_runs_should_go_is_one_line(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "sine", "--out", str(tmp_path / "taken"), "--epochs", "1", "--n-train", "16",
              "--batch-size", "16"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "a file stands where a folder should" in err
    assert len(err.strip().splitlines()) == 1


def test_operating_system_errors_name_the_file_and_the_fix():
    line = os_error(OSError(errno.ENOSPC, "No space left on device", "/runs/x/model.eqx"))
    assert "/runs/x/model.eqx" in line and "free some disk space" in line
    line = os_error(PermissionError(errno.EACCES, "Permission denied", "/ro"))
    assert "/ro" in line and "--out" in line


# ----------------------------------------------------------------- state and resume


def test_every_run_states_how_it_ended(finished, tmp_path):
    assert finished.state()["state"] == "finished"
    run = _copy(finished, tmp_path)
    run.set_state("running")  # as a process killed with -9 leaves it: no one holds the lock
    state = run.state()
    assert state["state"] == "killed" and "--resume" in state["why"]
    run.acquire()
    try:
        assert run.state()["state"] == "running"
    finally:
        run.release()


def test_a_failed_start_leaves_no_run_directory(tmp_path):
    with pytest.raises(wp.WarpPhysError, match="devices=4"):
        wp.fit(tiny(devices=4, batch_size=16), runs_dir=tmp_path, progress=False)
    assert not list(tmp_path.rglob("config.json"))


def test_an_interrupted_run_resumes_from_its_first_epoch(tmp_path, monkeypatch):
    import warp_phys._train as train

    end_epoch = train._end_epoch

    def interrupt(member, epoch, *args):
        end_epoch(member, epoch, *args)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train, "_end_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        wp.fit(tiny(epochs=4), runs_dir=tmp_path, progress=False)
    monkeypatch.setattr(train, "_end_epoch", end_epoch)
    [path] = [p.parent for p in tmp_path.rglob("config.json")]
    run = Run.open(path)
    assert run.state()["state"] == "failed"
    assert run.state()["why"] == "interrupted"
    # Checkpointed after epoch 1 (checkpoint_every=5): epoch 2 alone is lost, and the torn
    # line a crash in mid-write leaves is dropped with a warning.
    with open(path / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "train_lo')
    with pytest.warns(UserWarning, match=r"dropped 1 unreadable line\(s\) \(line 3\); no record"):
        resumed = wp.fit(None, resume=path, progress=False)
    assert _epochs(resumed) == [1, 2, 3, 4] and resumed.state()["state"] == "finished"


def test_resume_applies_what_can_change_and_refuses_the_rest(finished, tmp_path):
    run = _copy(finished, tmp_path)
    with pytest.raises(wp.ConfigError, match="width cannot change on a resumed run"):
        wp.fit(None, resume=run.path, changes={"width": 4}, progress=False)
    resumed = wp.fit(None, resume=run.path, changes={"epochs": 3, "lr": 1e-3}, progress=False)
    assert _epochs(resumed) == [1, 2, 3]
    saved = json.loads((run.path / "config.json").read_text())
    assert saved["optimiser"]["lr"] == 1e-3 and saved["training"]["epochs"] == 3
    assert saved["resumed"] == [{"after_epoch": 2, "changed": {"epochs": [2, 3], "lr": [3e-3, 1e-3]}}]


def test_resume_on_the_command_line_takes_the_changes(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--resume", str(run.path), "--depth", "2"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--depth cannot change on a resumed run" in err
    assert "only --epochs, --patience, --val-every" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--resume", str(run.path), "--model", "gru"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "drop --model gru" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--resume", str(run.path), "--epochs", "3"])
    assert exit_info.value.code == 0
    assert "resumed with epochs=3" in capsys.readouterr().out


# --------------------------------------------------------------------- corruption


def test_a_damaged_model_file_is_named(finished, tmp_path):
    run = _copy(finished, tmp_path)
    raw = bytearray((run.path / "model.eqx").read_bytes())
    raw[-64:] = bytes(b ^ 0xFF for b in raw[-64:])
    (run.path / "model.eqx").write_bytes(bytes(raw))
    with pytest.raises(wp.WarpPhysError, match="model.eqx is damaged .*checksum"):
        run.load_model()
    (run.path / "checkpoint.eqx").write_bytes((run.path / "checkpoint.eqx").read_bytes()[:-10])
    with pytest.raises(wp.WarpPhysError, match="checkpoint.eqx is damaged .*truncated"):
        wp.fit(None, resume=run.path, changes={"epochs": 3}, progress=False)
    (run.path / "config.json").write_text((run.path / "config.json").read_text()[:50])
    with pytest.raises(wp.WarpPhysError, match="config.json is damaged"):
        Run.open(run.path)


def test_a_damaged_cache_entry_is_regenerated(tmp_path):
    system = wp.load_system("sine")
    first = wp.generate(system, "train", 8, seed=3, cache_dir=tmp_path)
    [npz] = tmp_path.rglob("*.npz")
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    npz.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match=r"does not match its checksum\); regenerating"):
        again = wp.generate(system, "train", 8, seed=3, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.y, first.y)
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.warns(UserWarning, match="regenerating"):
        wp.generate(system, "train", 8, seed=3, cache_dir=tmp_path)
    before = npz.stat().st_mtime_ns
    forced = wp.generate(system, "train", 8, seed=3, cache_dir=tmp_path, force=True)
    assert npz.stat().st_mtime_ns != before  # simulated again and the entry replaced
    np.testing.assert_array_equal(forced.y, first.y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(wp.generate(system, "train", 8, seed=3, cache_dir=tmp_path).y,
                                      first.y)


# ------------------------------------------------------------ declarations


def test_a_complex_valued_law_is_refused():
    x, v, k = sp.symbols("x v k")
    with pytest.raises(wp.WarpPhysError, match="imaginary unit"):
        wp.System(name="c", state=[x, v], equations=[v, -k * x + sp.I * x],
                  parameters={k: wp.Uniform(train=(1.0, 2.0))}, initial_state={x: 1.0, v: 0.0},
                  t_span=(0.0, 1.0), steps=10, context=3)


def test_a_hand_edited_config_is_caught(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path)
    path = run.path / "config.json"
    data = json.loads(path.read_text())
    data["seed"] = data["seed"] + 1  # still valid JSON, and a valid configuration
    path.write_text(json.dumps(data))
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(run.path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "was edited since the run wrote it" in err
    assert len(err.strip().splitlines()) == 1


def test_a_damaged_middle_line_names_the_records_it_loses(finished, tmp_path):
    run = _copy(finished, tmp_path)
    log = run.path / "metrics.jsonl"
    lines = log.read_text().splitlines()
    lines[0] = lines[0][:20]
    log.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"line 1\); the records of epoch\(s\) 1 are lost"):
        records = read_history(log, 2)
    assert [r["epoch"] for r in records] == [2]
