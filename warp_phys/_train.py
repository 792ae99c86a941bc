"""Training: one jitted step, validation, checkpoints, early stop, for one model or several.

`fit(config)` trains a model on a system's `train` split, selects the best checkpoint on
`val` (never a test split), and writes everything to a run directory (see `_run.py`).
`fit_ensemble(configs)` trains several seeds of one configuration through one vmapped
step. There is one path: a single model trains as an ensemble of one, its arrays carrying
a leading member axis of size 1.
"""

import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from tqdm.auto import tqdm

from ._config import FitConfig
from ._errors import WarpPhysError
from ._evaluate import metrics
from ._generate import load_splits
from ._normalise import Normaliser
from ._optimiser import lr_scale
from ._options import ConfigError
from ._registry import load_system
from ._report import finish
from ._run import Run, data_hashes, environment, new_run_dir, read_history, run_folder
from ._system import System


# ------------------------------------------------------------------------------ the step


def loss_fn(model, x, targets, labels, forced, *, config: FitConfig, task,
            masked: bool = False):
    """The task's loss of the model's outputs on one batch (`masked`: targets may hold
    missing values, NaN)."""
    mean, sigma = config.model.forward(model, x, forced)
    return task.loss(mean, sigma, targets, labels, masked=masked)


def make_step(optimiser, config: FitConfig, task, *, steps: int, context: int,
              masked: bool = False) -> Callable:
    """The training step of one member, as a function
    `(model, opt_state, x, targets, labels, key, probability) -> (model, opt_state, loss)`:
    one optimiser update on one batch, each step after the context reading the truth with
    `probability` where the task feeds back forecasts; `masked` when the targets have
    missing values."""
    def step(model, opt_state, x, targets, labels, key, probability):
        forced = task.forced(key, x.shape[0], steps, context, probability)
        value, grads = eqx.filter_value_and_grad(loss_fn)(
            model, x, targets, labels, forced, config=config, task=task, masked=masked)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optimiser.update(grads, opt_state, params, value=value)
        return eqx.apply_updates(model, updates), opt_state, value

    return step


# ------------------------------------------------------------------------------ devices


def data_parallel(devices: int, batch: int):
    """Shardings for data-parallel training over the first `devices` devices: the models
    and optimiser states replicated, each minibatch (member, batch, ...) split along its
    batch axis. The same code serves one CPU, several GPUs, and several hosts (after
    `jax.distributed.initialize()`, `jax.devices()` lists every host's devices)."""
    available = jax.devices()
    if devices > len(available):
        raise WarpPhysError(
            f"devices={devices}: only {len(available)} {available[0].platform} device(s) are "
            "visible here; on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N splits it")
    if batch % devices:
        raise WarpPhysError(f"batch_size={batch} does not split evenly over devices={devices}; "
                            f"use a multiple of {devices}")
    mesh = jax.sharding.Mesh(np.asarray(available[:devices]), ("batch",))
    P = jax.sharding.PartitionSpec
    return (jax.sharding.NamedSharding(mesh, P()),
            jax.sharding.NamedSharding(mesh, P(None, "batch")))


def shard(array: np.ndarray, sharding) -> jax.Array:
    """A host array as a global device array: each device (of every host) receives its
    slice of the batch."""
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


# ------------------------------------------------------------------------------ fit


def fit(config: FitConfig | str | System = "msd", *, runs_dir: str | Path = "runs",
        resume: str | Path | None = None, progress: bool = True, force: bool = False,
        **parts) -> Run:
    """Train a model and return its `Run` (directory, metrics, model).

    **Arguments:**

    - `config`: a `FitConfig` (see `warp_phys.make_config` for presets), or a system
      (name, path or `System`) with the configuration's parts as keywords: `model=`,
      `optimiser=`, `training=`, `data=`, `seed=`. Ignored with `resume`, which continues
      with the run's own `config.json`.
    - `runs_dir`: where to create `<system>/<model>/<timestamp>/`.
    - `resume`: an existing run directory to continue from its last checkpoint.
    - `progress`: show progress bars.
    - `force`: simulate the run's data again even when it is cached.

    **Returns:** the finished `warp_phys.Run`.

    **Example:**

    ```python
    run = wp.fit("msd", model=wp.WARPConfig(width=16), optimiser=wp.AdaBelief(1e-3),
                 training=wp.Training(epochs=40))
    ```
    """
    if resume is not None:
        config = resumed_config(Run.load_config(Path(resume)), parts.pop("changes", {}))
        if parts:
            raise WarpPhysError(f"fit(resume=...) takes changes={{...}}, not {sorted(parts)}")
    elif not isinstance(config, FitConfig):
        config = FitConfig(system=_system_name(config), **parts)
    elif parts:
        raise WarpPhysError(f"fit got a FitConfig and parts {sorted(parts)}: change the "
                            "config instead, e.g. config.replace(lr=3e-4)")
    if force:  # refresh the cache; training then reads the new entries
        load_splits(config.load_system(), config.data.sizes(), config.seed, force=True)
    [run] = _train([config], runs_dir=runs_dir, resume=resume, progress=progress)
    return run


RESUMABLE = ("epochs", "patience", "val_every", "checkpoint_every", "checkpoint_seconds", "lr",
             "a_lr_scale", "grad_clip_value", "plateau_factor", "plateau_patience",
             "plateau_min_scale")
"""The options a resumed run may change (by flat name): how long and how carefully it
trains on. The model, the data, the seed and the optimiser's kind stay the run's own."""


def resumed_config(config: FitConfig, changes: dict) -> FitConfig:
    """`config` with `changes` (flat names, None: unchanged) for a resumed run; a change
    that cannot apply to a run under way is a `WarpPhysError` naming it."""
    current = config.flat()  # an option given with the run's own value changes nothing
    changes = {k: v for k, v in changes.items() if v is not None and current.get(k) != v}
    fixed = sorted(k for k in changes if k not in RESUMABLE)
    if fixed:
        raise ConfigError("resume", fixed[0], "cannot change on a resumed run (its model and "
                          "data are made); only {names} can", changes[fixed[0]], names=RESUMABLE)
    return config.replace(**changes) if changes else config


def _system_name(system) -> str:
    if not isinstance(system, System):
        return str(system)
    if system.measured is not None:
        raise WarpPhysError(f"system {system.name!r} is measured: pass the path of its file "
                            f"({system.measured.path}), with law= and context= in data=wp.Data(...)")
    if load_system(system.name).hash != system.hash:
        raise WarpPhysError(f"system {system.name!r} is not the one its name loads; pass the "
                            "path of its file so that the run can be re-made")
    return system.name


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
    run: Run | None = None
    history: list = dataclasses.field(default_factory=list)
    best: float = math.inf
    waited: int = 0
    stopped: str | None = None  # why training ended early (the run's note)
    diverged: bool = False
    done: bool = False
    checkpointed: float = dataclasses.field(default_factory=time.monotonic)


def _prepare(config: FitConfig, system: System, resume, progress: bool):
    """A member's data and normaliser, its freshly initialised model, and the member."""
    data = load_splits(system, config.data.sizes(), config.seed, progress=progress)
    train = data["train"]
    # A resumed run keeps the normaliser it was trained with.
    normaliser = (Normaliser.fit(config.data.normalise, train) if resume is None
                  else Run.open(resume).normaliser)
    model_key, train_key = jr.split(jr.PRNGKey(config.seed))
    model = config.model.build(system, normaliser, key=model_key)
    member = _Member(
        config=config, data=data, normaliser=normaliser,
        x=normaliser(train.inputs).astype(np.float32),
        targets=normaliser(train.targets).astype(np.float32),
        labels=train.labels if train.labels.size else np.zeros(len(train), np.int64),
        train_key=train_key,
    )
    return model, member


def _stack(trees):
    """One pytree whose array leaves gain a leading member axis over `trees`."""
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


def _member(tree, i: int):
    """Member `i` of a stacked pytree."""
    return jax.tree.map(lambda a: a[i] if eqx.is_array(a) else a, tree)


def _check(config: FitConfig, system: System) -> None:
    """Reject a configuration that cannot train on `system` before any data is made."""
    task = system.task
    task.check_training(config.training.forcing, where=f"system {system.name!r}")
    config.model.check_training(task, config.training)
    # Build the model once as shapes only, so that an option the model rejects (a closed
    # form with root_previous, an unknown activation) fails before any data is generated.
    eqx.filter_eval_shape(config.model.build, system, key=jr.PRNGKey(config.seed))


def _train(configs: list[FitConfig], *, runs_dir, resume, progress: bool) -> list[Run]:
    system = configs[0].load_system()
    _check(configs[0], system)
    if resume is not None:  # a stale run is refused before its new data is simulated
        Run.open(resume).check_system()
    else:  # and a bad --out before any data is simulated
        run_folder(runs_dir, system.name, configs[0].model.name)
    prepared = [_prepare(c, system, resume, progress) for c in configs]
    if not _stackable([model for model, _ in prepared]):
        # A grey-box root keeps its seed's normaliser as static data: no common structure,
        # so the members train one after another (on the data already prepared).
        return [run for one in prepared
                for run in _Trainer([one], system, runs_dir, resume, progress).run()]
    return _Trainer(prepared, system, runs_dir, resume, progress).run()


class _Trainer:
    """Trains prepared (model, member) pairs together, stacked along a member axis."""

    def __init__(self, prepared, system: System, runs_dir, resume, progress: bool):
        self.members = [member for _, member in prepared]
        self.system, self.progress = system, progress
        self.config = config = self.members[0].config  # members differ in their seed only
        self.optimiser = config.optimiser.make()
        models = [model for model, _ in prepared]
        opt_states = [self.optimiser.init(eqx.filter(m, eqx.is_inexact_array)) for m in models]
        self.n_train = len(self.members[0].x)
        self.batch = min(config.training.batch_size, self.n_train)
        if self.batch < config.training.batch_size:
            warnings.warn(f"batch_size={config.training.batch_size} is more than the "
                          f"{self.n_train} training trajectories: batches of {self.batch}",
                          stacklevel=2)
        # Before any run directory exists, so that a failed start leaves none behind.
        replicated, self.sharded = data_parallel(config.training.devices, self.batch)
        self.start = self._open(models, opt_states, Path(runs_dir), resume)
        self.model, self.opt_state = eqx.filter_shard((_stack(models), _stack(opt_states)),
                                                      replicated)
        self.step = self._compile_step(replicated)

    def _open(self, models, opt_states, runs_dir: Path, resume) -> int:
        """Create each member's run directory (or reopen the resumed one); the first epoch."""
        if resume is None:
            for member, model in zip(self.members, models):
                path = new_run_dir(runs_dir, self.system.name, self.config.model.name)
                hashes = {"system": self.system.hash, "data": data_hashes(member.data)}
                member.run = Run.create(path, member.config, member.normaliser,
                           {**environment(member.config, model),
                            **({"ensemble": len(self.members)} if len(self.members) > 1 else {})},
                           hashes)
            return 1
        [member] = self.members
        member.run = run = Run.open(resume)
        run.acquire()
        try:
            run.check_system()
            run.check_data(member.data)
            if not (run.path / "checkpoint.eqx").is_file():
                raise WarpPhysError(f"run {run.path} stopped before its first checkpoint (at "
                                    "the end of epoch 1): nothing to resume; start a new run")
            models[0], opt_states[0], state = run.load_checkpoint(models[0], opt_states[0])
        except BaseException:
            run.release()
            raise
        run.resumed(member.config, state["epoch"])
        member.best = state["best_val"]
        member.history = read_history(run.path / "metrics.jsonl", state["epoch"])
        member.train_key = jnp.asarray(state["key"], dtype=jnp.uint32)
        return state["epoch"] + 1

    def _compile_step(self, replicated):
        masked = any(np.isnan(m.targets).any() for m in self.members)
        step_fn = make_step(self.optimiser, self.config, self.system.task,
                            steps=self.system.steps, context=self.system.context, masked=masked)
        step_fn = _over_members(step_fn, len(self.members))

        @eqx.filter_jit(donate="all")
        @eqx.debug.assert_max_traces(max_traces=1)
        def train_step(model, opt_state, x, targets, labels, key, probability):
            model, opt_state, loss = step_fn(model, opt_state, x, targets, labels, key, probability)
            model, opt_state = eqx.filter_shard((model, opt_state), replicated)
            return model, opt_state, loss

        return train_step

    def run(self) -> list[Run]:
        """Train to the last epoch (or every member's stop), then evaluate and save; every
        run directory ends in a recorded state, and is released, however training ends."""
        try:
            return self._run()
        except BaseException as e:
            why = "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
            for member in self.members:
                if member.run.state()["state"] == "running":
                    member.run.set_state("failed", why)
            raise
        finally:
            for member in self.members:
                member.run.release()

    def _run(self) -> list[Run]:
        config, members = self.config, self.members
        name = f"{self.system.name} {config.model.name}" + (
            f" x{len(members)}" if len(members) > 1 else "")
        bar = tqdm(desc=name, unit="epoch", disable=not self.progress, initial=self.start - 1,
                   total=config.training.epochs, dynamic_ncols=True)
        for epoch in range(self.start, config.training.epochs + 1):
            self._epoch(epoch)
            _show(bar, members, epoch, first=epoch == self.start)
            if all(m.done for m in members):
                break
        bar.close()
        return self._finish()

    def _epoch(self, epoch: int) -> None:
        members, steps = self.members, self.n_train // self.batch
        start = time.perf_counter()
        # Seeded per epoch, so a resumed run shuffles exactly as an uninterrupted one.
        orders = [np.random.default_rng([m.config.seed, epoch]).permutation(self.n_train)
                  for m in members]
        probability = self.config.training.forcing_at(epoch)
        total = jnp.zeros(len(members))
        for i in range(steps):
            keys = []
            for member in members:
                member.train_key, step_key = jr.split(member.train_key)
                keys.append(step_key)
            parts = [self._batch(m, order, i) for m, order in zip(members, orders)]
            x, targets, labels = (shard(np.stack(a), self.sharded) for a in zip(*parts))
            self.model, self.opt_state, loss = self.step(
                self.model, self.opt_state, x, targets, labels, jnp.stack(keys),
                jnp.asarray(probability, jnp.float32))
            total = total + loss
        losses = np.asarray(total, np.float64) / steps  # one fetch per epoch
        seconds = (time.perf_counter() - start) / len(members)  # each member's share
        for i, (member, train_loss) in enumerate(zip(members, losses)):
            if not member.done:
                _end_epoch(member, epoch, float(train_loss), seconds, _member(self.model, i),
                           _member(self.opt_state, i), len(members), self.system)

    def _batch(self, member, order, i):
        idx = order[i * self.batch : (i + 1) * self.batch]
        return member.x[idx], member.targets[idx], member.labels[idx]

    def _finish(self) -> list[Run]:
        runs, failures = [], []
        for member in self.members:  # every member that has a best model is evaluated
            if (member.run.path / "model.eqx").exists():
                finish(member.run, member.data, history=member.history, note=member.stopped,
                       progress=self.progress)
                runs.append(member.run)
            else:
                failures.append(member.stopped or f"run {member.run.path} has no model checkpoint")
            if member.diverged and member.stopped not in failures:
                failures.append(member.stopped)
            member.run.set_state("stopped" if member.diverged else "finished", member.stopped)
        if failures:
            raise WarpPhysError(failures[0])
        return runs


def _over_members(step_fn, n: int):
    """`step_fn` over a leading member axis of every argument but the last (the forcing
    probability): vmapped for several members; for one, the step itself, between taking
    member 0 and putting the axis back. (A vmap of one batches every matrix product, which
    rounds differently from the unbatched step: msd quick's training losses then part from
    a lone run's after a few dozen steps, and its figures moved.)"""
    if n > 1:
        member_axis = eqx.if_array(0)
        return eqx.filter_vmap(step_fn, in_axes=(member_axis, member_axis, 0, 0, 0, 0, None))

    def one(*args):
        *members, probability = args
        out = step_fn(*(_member(a, 0) for a in members), probability)
        return jax.tree.map(lambda a: a[None] if eqx.is_array(a) else a, out)

    return one


def _show(bar, members, epoch: int, *, first: bool) -> None:
    """Advance the bar past `epoch`, showing that epoch's metrics (the mean over the
    members that trained it). The first epoch includes compilation: the rate, and so the
    ETA, counts from the second."""
    logged = [m.history[-1] for m in members if m.history and m.history[-1]["epoch"] == epoch]
    if logged:
        val = [r.get("val_mse", r.get("val_accuracy")) for r in logged]
        val = [v for v in val if v is not None]
        bar.set_postfix(loss=f"{np.mean([r['train_loss'] for r in logged]):.3g}",
                        lr=f"{logged[0]['lr']:.2g}",
                        val=f"{np.mean(val):.3g}" if val else "-", refresh=False)
    bar.update(1)
    if first and not bar.disable:
        bar.start_t, bar.initial = time.time(), bar.n  # tqdm's own rate bookkeeping


def _end_epoch(member: _Member, epoch: int, train_loss: float, seconds: float, model,
               opt_state, ensemble: int, system: System) -> None:
    """Validate, keep the best model, log and checkpoint one member after an epoch."""
    config, training, run = member.config, member.config.training, member.run
    if not math.isfinite(train_loss):
        member.stopped = _diverged(member, epoch, train_loss)
        member.diverged = member.done = True
        return
    record = {"epoch": epoch, "train_loss": train_loss,
              "lr": config.optimiser.lr * lr_scale(opt_state), "seconds": seconds,
              "forcing": training.forcing_at(epoch)}
    if ensemble > 1:
        record["ensemble"] = ensemble
    if epoch % training.val_every == 0 or epoch == training.epochs:
        m = metrics(config.model.inference(model), member.data["val"], member.normaliser,
                    system.task)
        score = system.task.score(m)
        record.update({f"val_{k}": v for k, v in m.items() if k != "n"})
        if score < member.best:
            member.best, member.waited = score, 0
            run.save_model(model, {"epoch": epoch, "val": score})
        else:
            member.waited += 1
    member.history.append(record)
    run.log(record)
    # After the first epoch, every checkpoint_every epochs, and once checkpoint_seconds
    # have passed since the last: a kill loses at most that much work.
    if (epoch == 1 or epoch % training.checkpoint_every == 0 or epoch == training.epochs
            or time.monotonic() - member.checkpointed >= training.checkpoint_seconds):
        run.save_checkpoint(model, opt_state, {"epoch": epoch, "best_val": member.best,
                                               "key": np.asarray(member.train_key).tolist()})
        member.checkpointed = time.monotonic()
    if training.patience and member.waited >= training.patience:
        member.stopped = (f"early stop at epoch {epoch}: no validation improvement in "
                          f"{member.waited} checks")
    member.done = member.stopped is not None or epoch == training.epochs


def _diverged(member: _Member, epoch: int, train_loss: float) -> str:
    config, run_dir = member.config, member.run.path
    kept = (f"the best checkpoint so far is kept in {run_dir / 'model.eqx'}"
            if (run_dir / "model.eqx").exists() else "no checkpoint was good enough to keep")
    fix = f"lower the learning rate (now lr={config.optimiser.lr:g})"
    if getattr(config.model, "final", "clip") != "clip" and config.training.forcing < 1.0:
        fix += " or bound fed-back forecasts with final='clip'"
    return (f"training stopped at epoch {epoch}: the training loss became {train_loss}; "
            f"{kept}; {fix}")
