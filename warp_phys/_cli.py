"""The `warp-phys` command: a thin skin over the library.

Every user error (`WarpPhysError`) becomes one line on stderr and exit status 2.
"""

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer

from ._errors import WarpPhysError


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
        from . import __version__

        typer.echo(f"warp-phys {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
):
    pass


@app.command("systems")
def systems_command():
    """List the systems on the search path (./systems, then the built-ins)."""
    from ._registry import load_system, system_files

    rows = [("NAME", "STATE", "PARAMETERS (train -> ood)", "SOURCE")]
    for name, path in system_files().items():
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
        if force:
            for suffix in (".npz", ".json"):
                stem.with_suffix(suffix).unlink(missing_ok=True)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GenerationWarning)
            dataset = generate(declared, name, n, seed=seed, rtol=rtol, atol=atol,
                               cache_dir=root, progress=True)
        for warning in caught:
            typer.echo(f"warning: {warning.message}", err=True)
        elapsed = time.perf_counter() - start
        typer.echo(f"{name:>10}: {len(dataset)} trajectories ({dataset.meta['method']}, "
                   f"{elapsed:.2f} s) -> {stem.with_suffix('.npz')}")


@app.command("fit")
def fit_command(
    system: Annotated[str, typer.Argument(help="A system name or a path to a .py file.")] = "msd",
    model: Annotated[str, typer.Option(help="Model to train: warp, warp-phys (grey-box, compiled from the system), node, ncde, gru or lstm.")] = "warp",
    preset: Annotated[str, typer.Option(help="quick (CPU, minutes) or paper (the paper's settings, for a GPU).")] = "quick",
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Minibatch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    a_lr_scale: Annotated[float | None, typer.Option(help="Learning-rate multiplier for the D x D matrix A.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for data, initialisation and batches.")] = 0,
    n_train: Annotated[int | None, typer.Option(help="Training trajectories.")] = None,
    n_val: Annotated[int | None, typer.Option(help="Validation trajectories.")] = None,
    n_test: Annotated[int | None, typer.Option(help="Trajectories per test split.")] = None,
    width: Annotated[int | None, typer.Option(help="Root network width.")] = None,
    depth: Annotated[int | None, typer.Option(help="Root network hidden layers.")] = None,
    init: Annotated[str | None, typer.Option(help="theta_0: hypernetwork or learned.")] = None,
    physics_form: Annotated[str | None, typer.Option(help="warp-phys: mlp (theta = weights of an MLP of tau giving the parameters) or direct (theta = the parameters).")] = None,
    physics_reach: Annotated[float | None, typer.Option(help="warp-phys: how many half-widths of its training range a parameter may leave the centre by.")] = None,
    root_previous: Annotated[bool | None, typer.Option("--root-previous/--no-root-previous", help="warp: the root also reads the step's input; warp-phys: the physics runs one interval from the step's input instead of from x0.")] = None,
    hidden: Annotated[int | None, typer.Option(help="node, ncde, gru, lstm: hidden size.")] = None,
    node_physics: Annotated[bool | None, typer.Option("--node-physics/--no-node-physics", help="node: add the declared vector field as a known term.")] = None,
    budget: Annotated[int | None, typer.Option(help="Size the model's width to about this many trainable parameters.")] = None,
    final: Annotated[str | None, typer.Option(help="Final activation: none, clip, dynamic-tanh (WARP); baselines honour clip as a bound on their forecasts.")] = None,
    clip_bound: Annotated[float | None, typer.Option(help="With --final clip: forecasts are clipped to [-B, B] in normalised units.")] = None,
    forcing: Annotated[float | None, typer.Option(help="Teacher-forcing probability per step after the context.")] = None,
    forcing_schedule: Annotated[str | None, typer.Option(help="constant, or linear (from 1 down to --forcing).")] = None,
    optimiser: Annotated[str | None, typer.Option(help="Any of: adabelief, adam, adamw, sgd, lion, rmsprop.")] = None,
    grad_clip: Annotated[str | None, typer.Option(help="global-norm, elementwise or none.")] = None,
    grad_clip_value: Annotated[float | None, typer.Option(help="Clipping threshold.")] = None,
    normalise: Annotated[str | None, typer.Option(help="standard, minmax or none (metrics are always in data units).")] = None,
    uncertainty: Annotated[bool | None, typer.Option("--uncertainty/--no-uncertainty", help="Add a sigma head (NLL loss).")] = None,
    patience: Annotated[int | None, typer.Option(help="Stop after this many validations without improvement (0: never).")] = None,
    fast_vjp: Annotated[bool | None, typer.Option("--fast-vjp/--no-fast-vjp", help="Gradient of A as one matrix product.")] = None,
    devices: Annotated[int | None, typer.Option(help="Data-parallel training over this many devices (the batch is split, the model replicated).")] = None,
    transition: Annotated[str | None, typer.Option(help="Structure of WARP's A: dense (the paper), diagonal-low-rank, or block-diagonal (one block per root layer).")] = None,
    rank: Annotated[int | None, typer.Option(help="Rank of the low-rank part of a diagonal-low-rank A.")] = None,
    precision: Annotated[str | None, typer.Option(help="WARP's products with A: float32, tf32 (TF32 tensor cores on a GPU) or bf16 (bfloat16 inputs, float32 state).")] = None,
    mode: Annotated[str | None, typer.Option(help="recurrent, or convolutional (exact, for training that reads every input from the data: --forcing 1 or classification).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for run directories.")] = Path("runs"),
    resume: Annotated[Path | None, typer.Option(help="Continue a run directory from its last checkpoint.")] = None,
):
    """Train a model on a system and print its test errors (in- and out-of-distribution)."""
    from ._config import make_config
    from ._registry import load_system
    from ._run import format_table
    from ._train import fit

    if resume is not None:
        run = fit(None, resume=resume)
    else:
        load_system(system)  # fail early on a bad system
        if epochs is not None and epochs < 1:
            raise WarpPhysError(f"--epochs must be a positive integer, got {epochs}")
        config = make_config(
            system, preset, model=model, epochs=epochs, batch_size=batch_size, lr=lr,
            a_lr_scale=a_lr_scale, seed=seed,
            n_train=n_train, n_val=n_val, n_test=n_test, width=width, depth=depth, init=init,
            physics_form=physics_form, physics_reach=physics_reach, root_previous=root_previous, hidden=hidden,
            node_physics=node_physics, budget=budget,
            final=final, clip_bound=clip_bound, forcing=forcing, forcing_schedule=forcing_schedule, optimiser=optimiser,
            grad_clip=grad_clip, grad_clip_value=grad_clip_value, normalise=normalise,
            uncertainty=uncertainty, patience=patience, fast_vjp=fast_vjp, mode=mode, devices=devices, precision=precision,
            transition=transition, rank=rank,
        )
        run = fit(config, runs_dir=out)
    typer.echo(f"run: {run.path}")
    typer.echo(format_table(run.metrics["splits"]))


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
    from ._run import FIGURES, Run

    if count < 1:
        raise WarpPhysError(f"--count must be a positive integer, got {count}")
    run = Run.open(run_dir)
    asked = what or ["all"]
    if "all" in asked:
        for name in FIGURES:
            if name not in run.figures():
                typer.echo(f"skipped {name}: not drawn for a {run.config.model} run on "
                           f"{run.config.system}", err=True)
        asked = list(run.figures())
    for path in run.plot(list(dict.fromkeys(asked)), count=count):
        typer.echo(str(path))
    if (run.path / "analysis.json").is_file() and set(asked) & {"pca", "weights"}:
        typer.echo(f"numbers: {run.path / 'analysis.json'}")


@app.command("study")
def study_command(
    system: Annotated[str, typer.Argument(help="A system name or a path to a .py file.")] = "msd",
    models: Annotated[str, typer.Option(help="Comma-separated models.")] = "warp,warp-phys,node,ncde,gru,lstm",
    seeds: Annotated[int, typer.Option(help="Seeds per model (0, 1, ...).")] = 3,
    preset: Annotated[str, typer.Option(help="The preset every run starts from.")] = "quick",
    epochs: Annotated[int | None, typer.Option(help="Training epochs for every run.")] = None,
    n_train: Annotated[int | None, typer.Option(help="Training trajectories.")] = None,
    n_val: Annotated[int | None, typer.Option(help="Validation trajectories.")] = None,
    n_test: Annotated[int | None, typer.Option(help="Trajectories per test split.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Minibatch size.")] = None,
    budget: Annotated[int | None, typer.Option(help="Size every model to about this many trainable parameters.")] = None,
    ensemble: Annotated[bool, typer.Option("--ensemble/--no-ensemble", help="Train the missing seeds of a model together, as one vmapped model (equal to one by one up to float rounding; on a 2-core CPU no faster, see benchmarks/ensemble.py; a grey-box model trains its seeds one by one).")] = False,
    out: Annotated[Path, typer.Option(help="Folder for run directories and the study.")] = Path("runs"),
):
    """Train several models over several seeds (reusing finished runs) and compare them on
    in- and out-of-distribution test data: writes study.md, study.csv and distance.png."""
    from ._config import MODELS
    from ._study import study

    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if not names or unknown:
        raise WarpPhysError(f"--models: unknown model(s) {', '.join(unknown) or '(none given)'}; "
                            f"choose from {', '.join(MODELS)}")
    folder = study(system, names, seeds, preset, runs_dir=out, ensemble=ensemble, epochs=epochs,
                   n_train=n_train, n_val=n_val, n_test=n_test, batch_size=batch_size,
                   budget=budget)
    typer.echo((folder / "study.md").read_text())
    typer.echo(f"study: {folder}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `warp-phys` command."""
    try:
        app(args=argv, prog_name="warp-phys")
    except WarpPhysError as e:
        typer.echo(f"warp-phys: error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("warp-phys: interrupted", err=True)
        sys.exit(130)
    except Exception as e:
        if os.environ.get("WARP_PHYS_DEBUG"):
            raise
        typer.echo(
            f"warp-phys: internal error: {type(e).__name__}: {e} (this is a bug; rerun with "
            "WARP_PHYS_DEBUG=1 for the traceback and report it)",
            err=True,
        )
        sys.exit(1)
