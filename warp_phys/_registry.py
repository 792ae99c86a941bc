"""Finding systems: built-in names, a user's `systems/` folder, or a path to a `.py` file.

A system file is a Python module that assigns a `warp_phys.System` to a module-level
variable named `system`. A name `foo-bar` is looked up as `foo_bar.py`, first in
`./systems/` (the user's own), then among the built-in systems shipped with warp-phys.
"""

import importlib.util
import sys
from pathlib import Path

from ._errors import WarpPhysError
from ._system import System


def builtin_systems_dir() -> Path:
    """The folder of the built-in systems: packaged in the wheel, or the source tree."""
    packaged = Path(__file__).parent / "_systems"
    return packaged if packaged.is_dir() else Path(__file__).parents[1] / "systems"


def search_path() -> list[Path]:
    """Folders searched for a system name, in order: `./systems`, then the built-ins."""
    folders = []
    for folder in (Path.cwd() / "systems", builtin_systems_dir()):
        if folder.is_dir() and folder.resolve() not in [f.resolve() for f in folders]:
            folders.append(folder)
    return folders


def system_files(folders: list[Path] | None = None) -> dict[str, Path]:
    """Every system file in `folders` (default: the search path), by system name (first
    one found wins). Nothing is imported."""
    found: dict[str, Path] = {}
    for folder in search_path() if folders is None else folders:
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith("_"):
                found.setdefault(path.stem.replace("_", "-"), path)
    return found


_LOADED: dict[tuple[Path, int, int], System] = {}


def load_system(name_or_path: "str | Path | System", *, law=None,
                context: int | None = None) -> System:
    """Return a system by built-in name, by name in `./systems/`, or from a `.py` file; or
    the system of a file of measured trajectories (`.csv`, `.parquet`, `.npz`; see
    `warp_phys.read_trajectories`).

    **Arguments:**

    - `name_or_path`: `"msd"`, `"lotka-volterra"`, `"systems/pendulum.py"`, a `Path`,
      `"runs.csv"`, or a `System` (returned as is).
    - `law`: for a file of measurements, a declaration (name, path or `System`) of their
      law, whose state names match the file's state columns.
    - `context`: for a file of measurements, the steps a forecast observes (default: the
      law's, else 40% of the steps).

    **Returns:** the `warp_phys.System` the file assigns to `system`.

    **Raises:** `WarpPhysError` with a one-line reason if the file is missing, does not
    parse, fails to run, or defines no valid `system`.
    """
    from ._measured import is_measured, measured_system

    if is_measured(name_or_path):
        return measured_system(name_or_path, context=context,
                               law=None if not law else load_system(law))
    if context is not None:
        raise WarpPhysError(f"context= applies to a file of measured trajectories "
                            f"(.csv, .parquet, .npz), not to {name_or_path!r}")
    if law:
        return modelled_by(load_system(name_or_path), load_system(law))
    if isinstance(name_or_path, System):
        return name_or_path
    text = str(name_or_path)
    if text.endswith(".py") or "/" in text or isinstance(name_or_path, Path):
        path = Path(text)
        if not path.is_file():
            raise WarpPhysError(f"no system file {text}: check the path")
    else:
        files = system_files()
        if text not in files:
            raise WarpPhysError(
                f"unknown system {text!r}; available: {', '.join(sorted(files))} "
                "(or give a path to a .py file)"
            )
        path = files[text]
    return _load_file(path)


def modelled_by(data: System, law: System) -> System:
    """The system a model of `data`'s trajectories sees when `law` describes them (a law
    with an unknown term, say): `law`, on `data`'s grid and splits, whose datasets are
    `data`'s simulations (`System.simulated`)."""
    if data.unknowns:
        raise WarpPhysError(f"system {data.name!r} has unknown terms and cannot generate data; "
                            "give a complete declaration (or a file) as the data")
    names, given = [s.name for s in data.state], [s.name for s in law.state]
    if names != given:
        raise WarpPhysError(f"the law {law.name!r} has states {given} but the data of "
                            f"{data.name!r} have {names}; name the law's states as the data's, "
                            "in the same order")
    controls, taken = [u.name for u in data.controls], [u.name for u in law.controls]
    if controls != taken:
        raise WarpPhysError(f"the law {law.name!r} reads controls {taken} but {data.name!r} is "
                            f"driven by {controls}; declare the same controls")
    if type(law.task) is not type(data.task) or (law.label is None) != (data.label is None):
        raise WarpPhysError(f"the law {law.name!r} declares a {law.task.name} task and "
                            f"{data.name!r} a {data.task.name} one; give a law of the same task")
    return law.replace(name=data.name, t_span=data.t_span, steps=data.steps,
                       context=data.context, sizes=data.sizes, sampling=data.sampling,
                       simulated=data)


def _load_file(path: Path) -> System:
    path = path.resolve()
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key in _LOADED:
        return _LOADED[key]
    module_name = f"warp_phys_systems.{path.stem}_{abs(hash(path)):x}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise WarpPhysError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except WarpPhysError as e:
        raise WarpPhysError(f"{path}: {e}") from None
    except Exception as e:  # the user's code: report it, never a traceback
        line = _user_line(e, path)
        raise WarpPhysError(f"{path}{line}: {type(e).__name__}: {e}") from None
    finally:
        sys.modules.pop(module_name, None)
    system = getattr(module, "system", None)
    if system is None:
        raise WarpPhysError(
            f"{path} defines no `system`; assign a warp_phys.System to a module-level "
            "variable named `system`"
        )
    if not isinstance(system, System):
        raise WarpPhysError(
            f"{path}: `system` is a {type(system).__name__}, not a warp_phys.System"
        )
    _LOADED[key] = system
    return system


def _user_line(error: BaseException, path: Path) -> str:
    tb, line = error.__traceback__, ""
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path:
            line = f":{tb.tb_lineno}"
        tb = tb.tb_next
    return line
