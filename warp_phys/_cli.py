"""The `warp-phys` command: a thin skin over the library.

Every user error (`WarpPhysError`) becomes one line on stderr and exit status 2.
"""

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import click
import typer

from ._errors import WarpPhysError
from ._flags import GroupedCommand


app = typer.Typer(
    name="warp-phys",
    help="Declare dynamical systems in SymPy, generate in- and out-of-distribution data, "
    "and train WARP models on it.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool):
    if value:
        import importlib.metadata

        try:
            version = importlib.metadata.version("warp-phys")
        except importlib.metadata.PackageNotFoundError:  # a source tree, not installed
            version = "0+unknown"
        typer.echo(f"warp-phys {version}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
):
    pass


@app.command("systems")
def systems_command(
    names: Annotated[list[str] | None, typer.Argument(
        help="List only these systems (names or .py paths); only their files are imported.",
        show_default=False)] = None,
    builtin: Annotated[bool, typer.Option(
        "--builtin", help="List only the built-in systems: import nothing from ./systems.")] = False,
):
    """List the systems on the search path (./systems, then the built-ins).

    Listing a system imports its file: with no NAMES, the code of every systems/*.py in
    the working folder runs. Run it so only in a folder whose system files you trust, or
    name the systems to list, or pass --builtin."""
    from ._registry import builtin_systems_dir, load_system, system_files

    if names and builtin:
        raise WarpPhysError("give system names or --builtin, not both")
    files = system_files(folders=[builtin_systems_dir()] if builtin else None)
    if names:
        files = {name: _system_path(name, files) for name in names}
    rows = [("NAME", "STATE", "PARAMETERS (train -> ood)", "SOURCE")]
    for name, path in files.items():
        try:
            system = load_system(path)
        except WarpPhysError as e:
            rows.append((name, "-", f"error: {e}", _short(path)))
            continue
        params = [
            f"{n} {d.describe('train')}" + (f"->{d.describe('ood')}" if d.has_ood else "")
            for n, d in system.draws
        ] + [f"{s.name}={v:g}" for s, v in system.fixed_parameters.items()]
        rows.append((system.name, ",".join(s.name for s in system.state), "  ".join(params),
                     _short(path)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[3])


def _system_path(name: str, files: dict[str, Path]) -> Path:
    if name.endswith(".py") or "/" in name:
        if not Path(name).is_file():
            raise WarpPhysError(f"no system file {name}: check the path")
        return Path(name)
    if name not in files:
        raise WarpPhysError(f"unknown system {name!r}; available: {', '.join(sorted(files))}")
    return files[name]


def _short(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@app.command("generate")
def generate_command(
    system: Annotated[str, typer.Argument(help="A system name (see `warp-phys systems`) or a path to a .py file.")],
    split: Annotated[
        list[str] | None,
        typer.Option("--split", "-s", help="Split(s) to generate; repeat the option. Default: all the system has."),
    ] = None,
    n_train: Annotated[int | None, typer.Option(help="Training trajectories (default: the system's size).")] = None,
    n_val: Annotated[int | None, typer.Option(help="Validation trajectories.")] = None,
    n_test: Annotated[int | None, typer.Option(help="Trajectories in each test split.")] = None,
    seed: Annotated[int, typer.Option(help="Base seed; each split derives its own stream.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the datasets (default: $WARP_PHYS_CACHE or ~/.cache/warp-phys).")
    ] = None,
    rtol: Annotated[float, typer.Option(help="Relative tolerance of the adaptive solver.")] = 1e-9,
    atol: Annotated[float, typer.Option(help="Absolute tolerance of the adaptive solver.")] = 1e-9,
    force: Annotated[bool, typer.Option(help="Regenerate even when the data is cached.")] = False,
):
    """Simulate a system's splits and save them as .npz + .json."""
    from ._generate import GenerationWarning, dataset_stem, default_cache_dir, default_size, generate
    from ._registry import load_system
    from ._splits import check_split

    declared = load_system(system)
    splits = split or list(declared.splits)
    for name in splits:
        check_split(name, declared)
    sizes = {"train": n_train, "val": n_val}
    for option, value in (("--n-train", n_train), ("--n-val", n_val), ("--n-test", n_test)):
        if value is not None and value < 1:
            raise WarpPhysError(f"{option} must be a positive integer, got {value}")
    root = default_cache_dir() if out is None else out
    typer.echo(f"{declared.name}: {declared.steps} steps over t in {list(declared.t_span)}, "
               f"state {[s.name for s in declared.state]}, declaration {declared.hash[:12]}")
    for name in splits:
        n = sizes.get(name, n_test) or default_size(declared, name)
        stem = dataset_stem(declared, name, n, seed, rtol, atol, root)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GenerationWarning)
            dataset = generate(declared, name, n, seed=seed, rtol=rtol, atol=atol,
                               cache_dir=root, progress=True, force=force)
        for warning in caught:
            typer.echo(f"warning: {warning.message}", err=True)
        elapsed = time.perf_counter() - start
        typer.echo(f"{name:>10}: {len(dataset)} trajectories ({dataset.meta['method']}, "
                   f"{elapsed:.2f} s) -> {stem.with_suffix('.npz')}")


@app.command("evaluate")
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by `warp-phys fit`.")],
    split: Annotated[list[str] | None, typer.Option("--split", "-s", help="Split(s) to evaluate (default: every test split).")] = None,
):
    """Recompute the test metrics of a saved run from its best checkpoint."""
    from ._run import Run, format_table
    from ._splits import check_split

    run = Run.open(run_dir)
    for name in split or []:
        check_split(name, run.system)
    typer.echo(format_table(run.evaluate(splits=split)))


@app.command("predict")
def predict_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by `warp-phys fit`.")],
    data: Annotated[str, typer.Argument(help="A split of the run's system (test-ood, ...) or a "
                                        ".csv, .parquet or .npz file of trajectories.")],
    horizon: Annotated[int | None, typer.Option(help="Steps to forecast after the context "
                                                "(default: to the end of the data).")] = None,
    out: Annotated[Path | None, typer.Option(help="A .csv or .parquet file for the forecasts "
                                             "(default: RUN/predictions-DATA.csv).")] = None,
):
    """Forecast a split or a file with a trained run and write the forecasts (and what a
    WARP-Phys run inferred of each trajectory's parameters) to CSV or Parquet."""
    from ._predict import predict, write_table
    from ._run import Run

    run = Run.open(run_dir)
    forecasts, parameters = predict(run, data, horizon=horizon)
    out = out or run.path / f"predictions-{Path(data).stem}.csv"
    write_table(forecasts, out)
    n, steps = forecasts["trajectory"].nunique(), int((forecasts["part"] == "forecast").sum())
    typer.echo(f"{n} trajectories, {steps // max(n, 1)} forecast steps each -> {out}")
    if parameters is not None:
        written = write_table(parameters, out.with_name(f"{out.stem}-parameters{out.suffix}"))
        typer.echo(f"inferred parameters -> {written}")


@app.command("plot")
def plot_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by `warp-phys fit`.")],
    what: Annotated[
        list[str] | None,
        typer.Option("--what", "-w", help="forecasts, pca (PCA of the weight trajectories and the linear probe), weights (weights over time, their correlation with tau), matrices (A and B), or all; repeat the option."),
    ] = None,
    count: Annotated[int, typer.Option(help="Sequences per split in the weight-space figures.")] = 256,
):
    """Draw a run's figures into its plots/ folder and print their paths."""
    from ._report import FIGURES, figures, plot
    from ._run import Run

    if count < 1:
        raise WarpPhysError(f"--count must be a positive integer, got {count}")
    run = Run.open(run_dir)
    asked = what or ["all"]
    if "all" in asked:
        for name in FIGURES:
            if name not in figures(run):
                typer.echo(f"skipped {name}: not drawn for a {run.config.model.name} run on "
                           f"{run.config.system}", err=True)
        asked = list(figures(run))
    for path in plot(run, list(dict.fromkeys(asked)), count=count):
        typer.echo(str(path))
    if (run.path / "analysis.json").is_file() and set(asked) & {"pca", "weights"}:
        typer.echo(f"numbers: {run.path / 'analysis.json'}")



def _run_options(command):
    """The options every training command shares: system, preset, model, optimiser, and
    every configuration field (see `_flags.py`)."""
    from ._flags import config_options
    from ._models import MODELS
    from ._optimiser import OPTIMISERS

    shared = [
        click.Argument(["system"], default="msd", required=False),
        click.Option(["--preset"], default="quick", show_default=True,
                     help="quick (CPU, minutes; good defaults for any system) or paper (the "
                     "paper's settings, for a GPU), or a preset the system file declares."),
        click.Option(["--optimiser"], type=click.Choice(list(OPTIMISERS)), default=None,
                     help="The optimiser (default adabelief, unless the preset sets it)."),
        click.Option(["--out"], type=click.Path(path_type=Path), default=Path("runs"),
                     show_default=True, help="Folder for run directories."),
    ]
    if command == "fit":
        shared += [
            click.Option(["--model"], type=click.Choice(list(MODELS)), default="warp",
                         show_default=True, help="The model to train (warp-phys: grey-box, "
                         "compiled from the system)."),
            click.Option(["--seed"], type=int, default=None,
                         help="Seed for data, initialisation and batches.  [default: 0]"),
            click.Option(["--resume"], type=click.Path(path_type=Path), default=None,
                         help="Continue a run directory from its last checkpoint."),
            click.Option(["--force"], is_flag=True, default=False,
                         help="Simulate the run's data again even when it is cached."),
        ]
    for param in shared:
        param.group = "Run"
    return shared + config_options()


def _fit(system, preset, optimiser, out, model, seed, resume, force, **options):
    """Train a model on a system and print its test errors (in- and out-of-distribution).

    SYSTEM is a system name (see `warp-phys systems`), a path to a .py file, or a .csv,
    .parquet or .npz file of measured trajectories (with --law FILE.py for their law);
    the preset fills every option and the options given override it."""
    from ._presets import resolve
    from ._flags import given
    from ._train import fit

    chosen = given(options)
    start = time.perf_counter()
    if resume is not None:
        context = click.get_current_context()
        named = [f"{'SYSTEM' if k == 'system' else '--' + k} {v}"
                 for k, v in (("system", system), ("model", model), ("preset", preset))
                 if context.get_parameter_source(k) != click.core.ParameterSource.DEFAULT]
        if named:
            raise WarpPhysError(f"--resume continues the run's own {named[0].split()[0]}; drop "
                                f"{', '.join(named)}")
        fixed = {"optimiser": optimiser, "seed": seed}
        chosen.update({k: v for k, v in fixed.items() if v is not None})
        run = fit(resume=resume, changes=chosen, force=force)
        if chosen:
            typer.echo(f"resumed with {' '.join(f'{k}={v!r}' for k, v in chosen.items())} "
                       f"(recorded in {run.path / 'config.json'})")
    else:
        config, sources = resolve(system, preset, model=model, optimiser=optimiser, seed=seed,
                                  **chosen)
        typer.echo(_describe(config, sources))
        run = fit(config, runs_dir=out, force=force)
    typer.echo(_outcome(run, time.perf_counter() - start))


def _describe(config, sources) -> str:
    """The resolved configuration: where each value came from, then every value."""
    by_source: dict[str, list[str]] = {}
    for name, source in sources.items():
        if name != "model":
            by_source.setdefault(source, []).append(f"{name}={config.flat()[name]!r}")
    lines = [f"{config.system}: model {config.model.name}, preset {config.preset!r}, "
             f"seed {config.seed}"]
    lines += [f"  {source}: {' '.join(values)}" for source, values in by_source.items()]
    for label, part in (("model", config.model), ("optimiser", config.optimiser),
                        ("training", config.training), ("data", config.data)):
        values = " ".join(f"{k}={v!r}" for k, v in part.to_json().items() if k != "name")
        lines.append(f"  {' '.join(filter(None, (label, part.name)))}: {values}")
    return "\n".join(lines)


def _outcome(run, seconds: float) -> str:
    """What a finished run tells its user: where it is, how it went, its test table."""
    from ._generate import dataset_stem, default_cache_dir, default_size
    from ._run import format_table

    summary, config, system = run.metrics, run.config, run.system
    if system.measured is not None:
        source = f"{system.measured.path} ({system.measured.rule})"
    else:
        n = config.data.n_train or default_size(system, "train")
        source = dataset_stem(system, "train", n, config.seed, 1e-9, 1e-9,
                              default_cache_dir()).parent
    lines = [f"run: {run.path}",
             f"best epoch {summary['best_epoch']} of {summary['epochs_run']} run (on val); "
             f"{seconds:.1f} s in all, {summary['seconds_per_epoch'] or 0:.3g} s per epoch"]
    if summary.get("note"):
        lines.append(f"note: {summary['note']}")
    lines.append(format_table(summary["splits"]))
    plots = sorted(p.name for p in (run.path / "plots").glob("*.png"))
    lines.append(f"plots: {run.path / 'plots'} ({', '.join(plots)})")
    lines.append(f"data: {source}")
    return "\n".join(lines)


def _study(system, preset, optimiser, out, models, seeds, ensemble, **options):
    """Train several models over several seeds (reusing finished runs) and compare them on
    in- and out-of-distribution test data: writes study.md, study.csv and distance.png.

    Every option applies to the models that have it (--width to WARP, --hidden to the
    baselines)."""
    from ._flags import given
    from ._models import MODELS
    from ._study import study

    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if not names or unknown:
        raise WarpPhysError(f"--models: unknown model(s) {', '.join(unknown) or '(none given)'}; "
                            f"choose from {', '.join(MODELS)}")
    chosen = given(options)
    if optimiser is not None:
        chosen["optimiser"] = optimiser
    folder = study(system, names, seeds, preset, runs_dir=out, ensemble=ensemble, **chosen)
    typer.echo((folder / "study.md").read_text())
    typer.echo(f"study: {folder}")


def _study_options():
    return [
        click.Option(["--models"], default="warp,warp-phys,node,ncde,gru,lstm", show_default=True,
                     help="Comma-separated models."),
        click.Option(["--seeds"], type=int, default=3, show_default=True,
                     help="Seeds per model (0, 1, ...)."),
        click.Option(["--ensemble/--no-ensemble"], default=False, show_default=True,
                     help="Train the missing seeds of a model together, as one vmapped model "
                     "(equal to one by one up to float rounding; on a 2-core CPU no faster, see "
                     "benchmarks/ensemble.py; a grey-box model trains its seeds one by one)."),
    ]


def cli() -> click.Group:
    """The whole command line: the commands above, and `fit` and `study` generated from
    the configuration objects."""
    group = typer.main.get_group(app)
    fit = GroupedCommand("fit", callback=_fit, params=_run_options("fit"), help=_fit.__doc__,
                         short_help="Train a model on a system and print its test errors.")
    study_params = _run_options("study")
    for param in _study_options():
        param.group = "Run"
    study = GroupedCommand("study", callback=_study, params=study_params[:4] + _study_options()
                           + study_params[4:], help=_study.__doc__,
                           short_help="Compare models over seeds, in and out of distribution.")
    group.add_command(fit)
    group.add_command(study)
    return group


def help_text(command: str = "", width: int = 100) -> str:
    """The `--help` of `warp-phys COMMAND` (of `warp-phys` itself for ""), as printed."""
    group = cli()
    with click.Context(group, info_name="warp-phys", terminal_width=width,
                       max_content_width=width) as ctx:
        if not command:
            return group.get_help(ctx)
        target = group.get_command(ctx, command)
        with click.Context(target, info_name=command, parent=ctx, terminal_width=width,
                           max_content_width=width) as sub:
            return target.get_help(sub)


def os_error(e: OSError) -> str:
    """One line for an error the operating system raised: what, where, and what to do."""
    import errno

    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f) or "a file"
    fix = {
        errno.ENOSPC: "free some disk space (or point --out / WARP_PHYS_CACHE elsewhere) and "
                      "run again; finished files are intact",
        errno.EACCES: "choose a folder you can write to (--out, or WARP_PHYS_CACHE for data)",
        errno.EROFS: "choose a folder you can write to (--out, or WARP_PHYS_CACHE for data)",
        errno.EPERM: "choose a folder you can write to (--out, or WARP_PHYS_CACHE for data)",
        errno.ENOTDIR: "a file stands where a folder should be: choose another path",
        errno.EEXIST: "a file stands where a folder should be: choose another path",
        errno.EISDIR: "a folder stands where a file should be: choose another path",
        errno.ENOENT: "check the path",
    }.get(e.errno, "check the path and the disk")
    return f"{e.strerror or type(e).__name__}: {where}; {fix}"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `warp-phys` command."""
    import warnings

    from ._flags import translate

    # A warning is one line, as an error is (not the file and line that raised it).
    warnings.showwarning = lambda message, *args, **kwargs: typer.echo(
        f"warp-phys: warning: {message}", err=True)

    try:
        code = cli()(args=argv, prog_name="warp-phys", standalone_mode=False)
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.ClickException as e:
        typer.echo(f"warp-phys: error: {e.format_message()} (see warp-phys --help)", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        typer.echo("warp-phys: interrupted", err=True)
        sys.exit(130)
    except WarpPhysError as e:
        typer.echo(f"warp-phys: error: {translate(e)}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("warp-phys: interrupted", err=True)
        sys.exit(130)
    except OSError as e:  # the machine's refusal, not a bug: name the file and the fix
        typer.echo(f"warp-phys: error: {os_error(e)}", err=True)
        sys.exit(2)
    except Exception as e:
        if os.environ.get("WARP_PHYS_DEBUG"):
            raise
        typer.echo(
            f"warp-phys: internal error: {type(e).__name__}: {e} (this is a bug; rerun with "
            "WARP_PHYS_DEBUG=1 for the traceback and report it)",
            err=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
