"""Training: losses, the optimiser, one jitted step, validation, checkpoints, early stop.

`fit(config)` trains a model on a system's `train` split, selects the best checkpoint on
`val` (never a test split), and writes everything to a run directory (see `_run.py`).
`fit_ensemble(configs)` trains several seeds of one configuration through one vmapped
step, each member keeping its own run directory and bookkeeping.
"""

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from tqdm.auto import tqdm

from ._config import FitConfig
from ._errors import WarpPhysError
from ._evaluate import Normaliser, build_model, load_splits, metrics, task_kind
from ._registry import load_system
from ._io import write_json
from ._run import Run, load_checkpoint, new_run_dir, save_checkpoint, save_model
from ._warp import WARP


# ------------------------------------------------------------------------------ losses


def forced_mask(key, batch: int, steps: int, context: int, probability) -> jax.Array:
    """1 where a step reads the truth: every step of the context, and each later step with
    `probability` (teacher forcing)."""
    k = jnp.arange(steps)
    draw = jr.uniform(key, (batch, steps)) < probability
    return ((k < context) | draw).astype(jnp.float32)


def loss_fn(model: WARP, x, targets, labels, forced, *, kind: str, loss: str, fast_vjp: bool,
            mode: str = "recurrent"):
    if mode == "convolutional":  # every input is read from the data: `forced` is all ones
        mean, sigma = model.convolve(x, fast_vjp=fast_vjp)
    else:
        mean, sigma = model.unroll(x, forced, fast_vjp=fast_vjp)
    if kind == "classify":
        return optax.softmax_cross_entropy_with_integer_labels(mean[:, -1], labels).mean()
    prediction, target = mean[:, :-1], targets[:, 1:]
    if loss == "nll":
        sigma = sigma[:, :-1]
        return jnp.mean(jnp.log(sigma) + 0.5 * ((target - prediction) / sigma) ** 2) + 0.5 * math.log(2 * math.pi)
    return jnp.mean((prediction - target) ** 2)


# ------------------------------------------------------------------------------ optimiser


def make_optimiser(config: FitConfig) -> optax.GradientTransformationExtraArgs:
    clip = {
        "global-norm": optax.clip_by_global_norm(config.grad_clip_value),
        "elementwise": optax.clip(config.grad_clip_value),
        "none": optax.identity(),
    }[config.grad_clip]
    def only_A(params):
        nothing = jax.tree_util.tree_map(lambda _: False, params)
        return eqx.tree_at(lambda m: m.A, nothing, True) if isinstance(params, WARP) else nothing

    return optax.chain(
        clip,
        getattr(optax, config.optimiser)(learning_rate=config.lr),
        # Adaptive optimisers move every entry of A by about lr per step, so A's spectral
        # change grows like lr * sqrt(D): a separate scale keeps the recurrence stable.
        optax.masked(optax.scale(config.a_lr_scale), only_A),
        optax.contrib.reduce_on_plateau(
            factor=config.plateau_factor,
            patience=config.plateau_patience,
            accumulation_size=config.plateau_accumulation,
            min_scale=config.plateau_min_scale,
        ),
    )


def make_step(optimiser, *, kind: str, loss: str, steps: int, context: int,
              fast_vjp: bool = True, mode: str = "recurrent") -> Callable:
    """The training step `fit` jits (donating every argument), as a function
    `(model, opt_state, x, targets, labels, key, probability) -> (model, opt_state, loss)`:
    one optimiser update on one batch, with each step after the context forced with
    `probability` (every step, for tasks that only read the data)."""
    def step(model, opt_state, x, targets, labels, key, probability):
        forced = forced_mask(key, x.shape[0], steps, context, probability)
        forced = forced if kind == "forecast" else jnp.ones_like(forced)
        value, grads = eqx.filter_value_and_grad(loss_fn)(
            model, x, targets, labels, forced, kind=kind, loss=loss, fast_vjp=fast_vjp, mode=mode)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optimiser.update(grads, opt_state, params, value=value)
        return eqx.apply_updates(model, updates), opt_state, value

    return step


def lr_scale(opt_state) -> float:
    return float(optax.tree_utils.tree_get(opt_state, "scale"))


# ------------------------------------------------------------------------------ devices


def data_parallel(devices: int, batch: int):
    """Shardings for data-parallel training over the first `devices` devices: the model
    and optimiser state replicated, each minibatch split along its first axis. The same
    code serves one CPU, several GPUs, and several hosts (after `jax.distributed.initialize()`,
    `jax.devices()` lists every host's devices)."""
    available = jax.devices()
    if devices > len(available):
        raise WarpPhysError(
            f"--devices {devices}: only {len(available)} {available[0].platform} device(s) are "
            "visible here; on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N splits it")
    if batch % devices:
        raise WarpPhysError(f"--batch-size {batch} does not split evenly over --devices {devices}; "
                            f"use a multiple of {devices}")
    mesh = jax.sharding.Mesh(np.asarray(available[:devices]), ("batch",))
    P = jax.sharding.PartitionSpec
    return (jax.sharding.NamedSharding(mesh, P()),
            jax.sharding.NamedSharding(mesh, P("batch")))


def shard(array: np.ndarray, sharding) -> jax.Array:
    """A host array as a global device array: each device (of every host) receives its
    slice of the batch."""
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


# ------------------------------------------------------------------------------ fit


def fit(config: FitConfig, *, runs_dir: str | Path = "runs", resume: str | Path | None = None,
        progress: bool = True) -> Run:
    """Train a model as `config` says and return its `Run` (directory, metrics, model).

    **Arguments:**

    - `config`: a `FitConfig` (see `warp_phys.make_config` for presets); ignored with
      `resume`, which continues with the run's own `config.json`.
    - `runs_dir`: where to create `<system>/<model>/<timestamp>/`.
    - `resume`: an existing run directory to continue from its last checkpoint.
    - `progress`: show a progress bar.

    **Returns:** the finished `warp_phys.Run`.
    """
    if resume is not None:
        config = Run.load_config(Path(resume))
    [run] = _train([config], runs_dir=runs_dir, resume=resume, progress=progress)
    return run


def fit_ensemble(configs: list[FitConfig], *, runs_dir: str | Path = "runs",
                 progress: bool = True) -> list[Run]:
    """Train several seeds of one configuration at once, as one `eqx.filter_vmap`-ed model.

    Each member is the run `fit(config)` would make (its own data, normaliser, batches,
    keys, validation, best checkpoint, early stop and run directory; equal to it up to
    float rounding, and resumable on its own with `fit(..., resume=run_dir)`); what is
    shared is one jitted step over the stacked models. On the 2-core development CPU this
    is no faster than training the seeds one by one (`benchmarks/ensemble.py`); it is
    meant for accelerators, where one small model leaves most of the device idle.

    **Arguments:**

    - `configs`: configurations that differ in their seed only.
    - `runs_dir`, `progress`: as `fit`.

    **Returns:** the finished runs, in the order of `configs`. Configurations whose models
    differ in structure (a grey-box root holds its seed's normaliser) train one by one.
    """
    first = {k: v for k, v in configs[0].to_json().items() if k != "seed"}
    for config in configs[1:]:
        if {k: v for k, v in config.to_json().items() if k != "seed"} != first:
            raise WarpPhysError("an ensemble trains seeds of one configuration; these "
                                "configurations differ in more than their seed")
    if len({c.seed for c in configs}) != len(configs):
        raise WarpPhysError("an ensemble needs distinct seeds")
    if configs[0].devices > 1:
        raise WarpPhysError("an ensemble trains on one device; drop --devices or train the "
                            "seeds one by one")
    return _train(configs, runs_dir=runs_dir, resume=None, progress=progress)


@dataclasses.dataclass(eq=False)
class _Member:
    """The bookkeeping of one model being trained (an ensemble has several)."""

    config: FitConfig
    data: dict
    normaliser: Normaliser
    x: np.ndarray
    targets: np.ndarray
    labels: np.ndarray
    train_key: jax.Array
    run_dir: Path | None = None
    history: list = dataclasses.field(default_factory=list)
    best: float = math.inf
    waited: int = 0
    stopped: str | None = None  # why training ended early (the run's note)
    diverged: bool = False
    done: bool = False


def _prepare(config: FitConfig, system, kind: str, resume, progress: bool):
    """A member's data and normaliser, its freshly initialised model, and the member."""
    data = load_splits(system, config, progress=progress)
    train = data["train"]
    # A resumed run keeps the normaliser it was trained with.
    normaliser = (Normaliser.fit(config.normalise, train) if resume is None
                  else Run.open(resume).normaliser)
    model_key, train_key = jr.split(jr.PRNGKey(config.seed))
    model = build_model(config, system, normaliser, key=model_key)
    member = _Member(
        config=config, data=data, normaliser=normaliser,
        x=normaliser(train.inputs).astype(np.float32),
        targets=normaliser(train.targets).astype(np.float32),
        labels=train.labels if kind == "classify" else np.zeros(len(train), np.int64),
        train_key=train_key,
    )
    return model, member


def _stack(trees):
    """One pytree whose array leaves gain a leading axis over `trees`."""
    arrays = [eqx.filter(t, eqx.is_array) for t in trees]
    static = eqx.filter(trees[0], eqx.is_array, inverse=True)
    return eqx.combine(jax.tree.map(lambda *xs: jnp.stack(xs), *arrays), static)


def _stackable(trees) -> bool:
    """Whether the pytrees share their structure, static data and leaf shapes."""
    first = trees[0]
    return all(jax.tree.structure(t) == jax.tree.structure(first)
               and all(np.shape(a) == np.shape(b)
                       for a, b in zip(jax.tree.leaves(t), jax.tree.leaves(first)))
               for t in trees[1:])


def _member(tree, i: int | None):
    """Member `i` of a stacked pytree (`None`: the pytree is one member's already)."""
    if i is None:
        return tree
    return jax.tree.map(lambda a: a[i] if eqx.is_array(a) else a, tree)


def _train(configs: list[FitConfig], *, runs_dir, resume, progress: bool) -> list[Run]:
    config = configs[0]
    system = load_system(config.system)
    kind = task_kind(system)
    if kind == "copy" and config.forcing < 1.0:
        raise WarpPhysError(
            f"system {system.name!r} reads inputs that differ from its targets, so it cannot "
            "feed back its own forecasts; use --forcing 1"
        )
    loss_name = config.loss if config.loss != "auto" else (
        "ce" if kind == "classify" else "nll" if config.uncertainty else "mse")
    if loss_name == "nll" and not config.uncertainty:
        raise WarpPhysError("--loss nll needs an uncertainty head; add --uncertainty")
    if config.mode == "convolutional" and kind == "forecast" and (
            config.forcing < 1.0 or config.forcing_schedule != "constant"):
        raise WarpPhysError(
            "--mode convolutional needs every input read from the data, but forecasting with "
            f"--forcing {config.forcing:g} feeds back the model's own forecasts; use --forcing 1 "
            "or --mode recurrent")
    # Build the model once as shapes only, so that an option the model rejects (a closed
    # form with --root-previous, an unknown activation) fails before any data is generated.
    eqx.filter_eval_shape(build_model, config, system, key=jr.PRNGKey(config.seed))
    prepared = [_prepare(c, system, kind, resume, progress) for c in configs]
    if not _stackable([model for model, _ in prepared]):
        # A grey-box root keeps its seed's normaliser as static data: no common structure,
        # so the members train one after another (on the data already prepared).
        return [run for one in prepared
                for run in _train_prepared([one], system, kind, loss_name, runs_dir=runs_dir,
                                           resume=resume, progress=progress)]
    return _train_prepared(prepared, system, kind, loss_name, runs_dir=runs_dir, resume=resume,
                           progress=progress)


def _train_prepared(prepared, system, kind: str, loss_name: str, *, runs_dir, resume,
                    progress: bool) -> list[Run]:
    """Train prepared (model, member) pairs together: one member, or several stacked."""
    models = [model for model, _ in prepared]
    members = [member for _, member in prepared]
    config = members[0].config  # the members differ in their seed only
    optimiser = make_optimiser(config)
    opt_states = [optimiser.init(eqx.filter(m, eqx.is_inexact_array)) for m in models]

    if resume is None:
        for member, model in zip(members, models):
            member.run_dir = new_run_dir(Path(runs_dir), system.name, config.model)
            write_json(member.run_dir / "config.json",
                       {**member.config.to_json(), "normaliser": member.normaliser.to_json()})
            write_json(member.run_dir / "env.json",
                       {**_environment(member.config), "path": _path(member.config, model),
                        **({"ensemble": len(members)} if len(members) > 1 else {})})
        start_epoch = 1
    else:
        [member] = members
        member.run_dir = Path(resume)
        models[0], opt_states[0], state = load_checkpoint(
            member.run_dir / "checkpoint.eqx", models[0], opt_states[0])
        start_epoch, member.best = state["epoch"] + 1, state["best_val"]
        member.history = _read_history(member.run_dir / "metrics.jsonl", state["epoch"])
        member.train_key = jnp.asarray(state["key"], dtype=jnp.uint32)

    ensemble = len(members) > 1
    index = list(range(len(members))) if ensemble else [None]
    model, opt_state = (_stack(models), _stack(opt_states)) if ensemble else (models[0], opt_states[0])
    n_train = len(members[0].x)
    batch = min(config.batch_size, n_train)
    steps_per_epoch = n_train // batch
    replicated, sharded = data_parallel(config.devices, batch)
    model, opt_state = eqx.filter_shard((model, opt_state), replicated)
    step_fn = make_step(optimiser, kind=kind, loss=loss_name, steps=system.steps,
                        context=system.context, fast_vjp=config.fast_vjp, mode=config.mode)

    if ensemble:  # every array but the forcing probability has a leading member axis
        member_axis = eqx.if_array(0)  # (a model's functions, e.g. activations, are shared)
        step_fn = eqx.filter_vmap(step_fn, in_axes=(member_axis, member_axis, 0, 0, 0, 0, None))

    @eqx.filter_jit(donate="all")
    @eqx.debug.assert_max_traces(max_traces=1)
    def train_step(model, opt_state, x, targets, labels, key, probability):
        model, opt_state, loss = step_fn(model, opt_state, x, targets, labels, key, probability)
        model, opt_state = eqx.filter_shard((model, opt_state), replicated)
        return model, opt_state, loss

    def batch_of(member, order, i):
        idx = order[i * batch : (i + 1) * batch]
        return member.x[idx], member.targets[idx], member.labels[idx]

    for member in members:
        (member.run_dir / "plots").mkdir(exist_ok=True)
    name = f"{system.name} {config.model}" + (f" x{len(members)}" if ensemble else "")
    bar = tqdm(range(start_epoch, config.epochs + 1), desc=name, unit="epoch",
               disable=not progress, initial=start_epoch - 1, total=config.epochs,
               dynamic_ncols=True)
    for epoch in bar:
        start = time.perf_counter()
        # Seeded per epoch, so a resumed run shuffles exactly as an uninterrupted one.
        orders = [np.random.default_rng([m.config.seed, epoch]).permutation(n_train)
                  for m in members]
        probability = _forcing(config, epoch)
        total = jnp.zeros(len(members)) if ensemble else jnp.zeros(())
        for i in range(steps_per_epoch):
            keys = []
            for member in members:
                member.train_key, step_key = jr.split(member.train_key)
                keys.append(step_key)
            parts = [batch_of(m, order, i) for m, order in zip(members, orders)]
            if ensemble:  # stacked along the member axis; an ensemble uses one device
                (x, targets, labels), key = [np.stack(a) for a in zip(*parts)], jnp.stack(keys)
            else:
                (x, targets, labels), key = (shard(a, sharded) for a in parts[0]), keys[0]
            model, opt_state, loss = train_step(
                model, opt_state, x, targets, labels, key, jnp.asarray(probability, jnp.float32))
            total = total + loss
        losses = np.atleast_1d(np.asarray(total, np.float64)) / steps_per_epoch  # one fetch per epoch
        seconds = (time.perf_counter() - start) / len(members)  # each member's share
        for member, i, train_loss in zip(members, index, losses):
            if not member.done:
                _end_epoch(member, epoch, float(train_loss), seconds, _member(model, i),
                           _member(opt_state, i), len(members), kind)
        logged = [m.history[-1] for m in members if m.history and m.history[-1]["epoch"] == epoch]
        if logged:  # the mean over the members that trained this epoch
            bar.set_postfix(
                loss=f"{np.mean([r['train_loss'] for r in logged]):.3g}", lr=f"{logged[0]['lr']:.2g}",
                val=f"{np.mean([r.get('val_mse', r.get('val_accuracy', np.nan)) for r in logged]):.3g}")
        if all(m.done for m in members):
            break
    bar.close()

    runs, failures = [], []
    for member in members:  # every member that has a best model is evaluated and saved
        if (member.run_dir / "model.eqx").exists():
            run = Run.open(member.run_dir)
            run.evaluate_and_save(member.data, history=member.history, note=member.stopped)
            runs.append(run)
        else:
            failures.append(member.stopped or f"run {member.run_dir} has no model checkpoint")
        if member.diverged and member.stopped not in failures:
            failures.append(member.stopped)
    if failures:
        raise WarpPhysError(failures[0])
    return runs


def _end_epoch(member: _Member, epoch: int, train_loss: float, seconds: float, model,
               opt_state, ensemble: int, kind: str) -> None:
    """Validate, keep the best model, log and checkpoint one member after an epoch."""
    config, run_dir = member.config, member.run_dir
    if not math.isfinite(train_loss):
        kept = (f"the best checkpoint so far is kept in {run_dir / 'model.eqx'}"
                if (run_dir / "model.eqx").exists() else "no checkpoint was good enough to keep")
        fix = f"lower --lr (now {config.lr:g})"
        if config.final != "clip" and config.forcing < 1.0:
            fix += " or bound fed-back forecasts with --final clip"
        member.stopped = (f"training stopped at epoch {epoch}: the training loss became "
                          f"{train_loss}; {kept}; {fix}")
        member.diverged = member.done = True
        return
    record = {"epoch": epoch, "train_loss": train_loss, "lr": config.lr * lr_scale(opt_state),
              "seconds": seconds, "forcing": _forcing(config, epoch)}
    if ensemble > 1:
        record["ensemble"] = ensemble
    if epoch % config.val_every == 0 or epoch == config.epochs:
        m = metrics(model, member.data["val"], member.normaliser, kind)
        score = (1 - m["accuracy"]) if kind == "classify" else m["mse"]
        record.update({f"val_{k}": v for k, v in m.items() if k != "n"})
        if score < member.best:
            member.best, member.waited = score, 0
            save_model(run_dir / "model.eqx", model, {"epoch": epoch, "val": score})
        else:
            member.waited += 1
    member.history.append(record)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    if epoch % config.checkpoint_every == 0 or epoch == config.epochs:
        save_checkpoint(run_dir / "checkpoint.eqx", model, opt_state,
                        {"epoch": epoch, "best_val": member.best,
                         "key": np.asarray(member.train_key).tolist()})
    if config.patience and member.waited >= config.patience:
        member.stopped = f"early stop at epoch {epoch}: no validation improvement in {member.waited} checks"
    member.done = member.stopped is not None or epoch == config.epochs


def _path(config: FitConfig, model) -> str:
    """Which computation a training step takes, in words (recorded in env.json)."""
    if config.mode == "recurrent":
        return "recurrent: one (batch x D) @ (D x D) product per step"
    if model.shares_theta0:
        return ("convolutional, shared theta_0: the kernel A^j B and A^k theta_0 in one chain "
                "of T matrix-vector products, the inputs by a causal convolution (blocked "
                "matrix products)")
    return ("convolutional, per-sequence theta_0 (hypernetwork): the inputs by a causal "
            "convolution (blocked matrix products), A^k theta_0 by the batched recurrence")


def _forcing(config: FitConfig, epoch: int) -> float:
    if config.forcing_schedule == "linear":  # from always forced down to `forcing`
        return 1.0 - (1.0 - config.forcing) * min(1.0, (epoch - 1) / max(1, config.epochs - 1))
    return config.forcing


def _read_history(path: Path, last_epoch: int) -> list[dict]:
    """The metric records up to `last_epoch`; later ones (lost with the crash) are dropped
    from the file too."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    records = [r for r in records if r["epoch"] <= last_epoch]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def _environment(config: FitConfig) -> dict:
    import importlib.metadata
    import platform

    versions = {}
    for package in ("warp-phys", "jax", "jaxlib", "equinox", "diffrax", "optax", "numpy", "sympy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
        "precision": (f"float32 parameters and activations; WARP's products with A at "
                      f"{config.precision}; data generated in float64"),
        "seed": config.seed,
    }
