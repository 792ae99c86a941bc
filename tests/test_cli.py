import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import warp_phys as wp
from warp_phys._cli import main

from .test_compile import PENDULUM


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


def test_systems_table_lists_builtins_and_user_systems(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "systems").mkdir()
    (tmp_path / "systems" / "pendulum.py").write_text(PENDULUM)
    code, out, _ = run(["systems"], capsys)
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) >= {"msd", "msd-zero", "lotka-volterra", "lotka-volterra-copy", "sine",
                         "spirals", "pendulum"}
    assert "k [4, 16]->[2, 18]" in rows["msd"] and rows["msd"].rstrip().endswith("msd.py")
    assert "length [0.5, 1.5]->[0.25, 2]" in rows["pendulum"] and "g=9.81" in rows["pendulum"]
    assert rows["pendulum"].rstrip().endswith("systems/pendulum.py")


def test_systems_lists_only_what_it_is_asked_to(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "systems").mkdir()
    (tmp_path / "systems" / "pendulum.py").write_text(PENDULUM)
    marker = tmp_path / "ran"
    (tmp_path / "systems" / "other.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    code, out, _ = run(["systems", "pendulum", "msd"], capsys)
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["pendulum", "msd"]
    code, out, _ = run(["systems", "--builtin"], capsys)
    names = {line.split()[0] for line in out.splitlines()[1:]}
    assert code == 0 and "msd" in names and "pendulum" not in names
    assert not marker.exists()  # neither listing ran other.py
    code, _, err = run(["systems", "nope"], capsys)
    assert code == 2 and "unknown system 'nope'" in err and len(err.strip().splitlines()) == 1
    run(["systems"], capsys)
    assert marker.exists()  # listing everything imports everything, as --help says


def test_generate_user_system_by_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "systems").mkdir()
    (tmp_path / "systems" / "pendulum.py").write_text(PENDULUM)
    code, out, err = run(["generate", "pendulum", "--n-train", "6", "--n-val", "3",
                          "--n-test", "2", "--out", "data", "--seed", "4"], capsys)
    assert code == 0, err
    files = sorted(p.name for p in (tmp_path / "data").rglob("*.npz"))
    assert files == [f"{s}-n{n}-seed4-tol1e-09-1e-09.npz" for s, n in
                     [("test-id", 2), ("test-ood", 2), ("test-paper", 2), ("train", 6), ("val", 3)]]
    assert "test-ood: 2 trajectories" in out
    loaded = wp.Dataset.load(next((tmp_path / "data").rglob("train-*.npz")))
    assert loaded.y.shape == (6, 200, 2) and loaded.seed == 4
    meta = json.loads(next((tmp_path / "data").rglob("train-*.json")).read_text())
    assert meta["param_names"] == ["length", "damping"] and meta["failed"]["count"] == 0
    # Generating again is served from the cache, bit for bit.
    run(["generate", "pendulum", "-s", "train", "--n-train", "6", "--out", "data", "--seed", "4"],
        capsys)
    again = wp.Dataset.load(next((tmp_path / "data").rglob("train-*.npz")))
    np.testing.assert_array_equal(again.y, loaded.y)


BAD_FILES = {
    "syntax.py": ("system = (", "syntax error"),
    "empty.py": ("x = 1\n", "defines no `system`"),
    "wrong.py": ("system = 42\n", "`system` is a int, not a warp_phys.System"),
    "invalid.py": (PENDULUM.replace("steps=200", "steps=1"), "steps must be an integer >= 2"),
    "crash.py": ("import sympy\nraise RuntimeError('boom')\n", "crash.py:2: RuntimeError: boom"),
}


@pytest.mark.parametrize("filename", sorted(BAD_FILES))
def test_bad_system_files_give_one_line_and_exit_2(filename, tmp_path, capsys):
    text, message = BAD_FILES[filename]
    path = tmp_path / filename
    path.write_text(text)
    code, out, err = run(["generate", str(path), "--out", str(tmp_path)], capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv,message", [
    (["generate", "missing.py"], "no system file missing.py"),
    (["generate", "no-such-system"], "unknown system 'no-such-system'"),
    (["generate", "sine", "--split", "holdout"], "unknown split 'holdout'"),
    (["generate", "sine", "--split", "test-ood"], "no test-ood split"),
    (["generate", "sine", "--n-train", "-3"], "--n-train must be a positive integer"),
])
def test_bad_arguments_give_one_line_and_exit_2(argv, message, tmp_path, capsys):
    code, out, err = run(argv + ["--out", str(tmp_path)], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_installed_entry_point(tmp_path):
    """The console script exists and reports errors without a traceback."""
    exe = [str(Path(sys.executable).parent / "warp-phys")]
    ok = subprocess.run([*exe, "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("warp-phys ")
    bad = subprocess.run([*exe, "generate", str(tmp_path / "nope.py")], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
