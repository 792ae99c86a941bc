"""Training: losses, the optimiser, one jitted step, validation, checkpoints, early stop.

`fit(config)` trains a model on a system's `train` split, selects the best checkpoint on
`val` (never a test split), and writes everything to a run directory (see `_run.py`).
"""

import json
import math
import time
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
        run_dir = Path(resume)
        config = Run.load_config(run_dir)
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
    data = load_splits(system, config, progress=progress)
    train, val = data["train"], data["val"]
    # A resumed run keeps the normaliser it was trained with.
    normaliser = (Normaliser.fit(config.normalise, train) if resume is None
                  else Run.open(run_dir).normaliser)
    dtype = np.float32
    x_train = normaliser(train.inputs).astype(dtype)
    t_train = normaliser(train.targets).astype(dtype)
    labels_train = train.labels if kind == "classify" else np.zeros(len(train), np.int64)

    key = jr.PRNGKey(config.seed)
    model_key, train_key = jr.split(key)
    model = build_model(config, system, normaliser, key=model_key)
    optimiser = make_optimiser(config)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_inexact_array))

    if resume is None:
        run_dir = new_run_dir(Path(runs_dir), system.name, config.model)
        write_json(run_dir / "config.json", {**config.to_json(), "normaliser": normaliser.to_json()})
        write_json(run_dir / "env.json", {**_environment(config), "path": _path(config, model)})
        start_epoch, best, history = 1, math.inf, []
    else:
        model, opt_state, state = load_checkpoint(run_dir / "checkpoint.eqx", model, opt_state)
        start_epoch, best = state["epoch"] + 1, state["best_val"]
        history = _read_history(run_dir / "metrics.jsonl", state["epoch"])
        train_key = jnp.asarray(state["key"], dtype=jnp.uint32)

    batch = min(config.batch_size, len(train))
    steps_per_epoch = len(train) // batch
    replicated, sharded = data_parallel(config.devices, batch)
    model, opt_state = eqx.filter_shard((model, opt_state), replicated)
    context, steps = system.context, system.steps
    forcing_all = kind != "forecast"

    @eqx.filter_jit(donate="all")
    @eqx.debug.assert_max_traces(max_traces=1)
    def train_step(model, opt_state, x, targets, labels, key, probability):
        forced = forced_mask(key, x.shape[0], steps, context, probability)
        forced = jnp.ones_like(forced) if forcing_all else forced
        loss, grads = eqx.filter_value_and_grad(loss_fn)(
            model, x, targets, labels, forced, kind=kind, loss=loss_name, fast_vjp=config.fast_vjp,
            mode=config.mode)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optimiser.update(grads, opt_state, params, value=loss)
        model, opt_state = eqx.filter_shard((eqx.apply_updates(model, updates), opt_state), replicated)
        return model, opt_state, loss

    def val_score(model):
        m = metrics(model, val, normaliser, kind)
        return (1 - m["accuracy"]) if kind == "classify" else m["mse"], m

    (run_dir / "plots").mkdir(exist_ok=True)
    bar = tqdm(range(start_epoch, config.epochs + 1), desc=f"{system.name} {config.model}",
               unit="epoch", disable=not progress, initial=start_epoch - 1, total=config.epochs,
               dynamic_ncols=True)
    stopped, diverged, waited = None, False, 0
    for epoch in bar:
        start = time.perf_counter()
        # Seeded per epoch, so a resumed run shuffles exactly as an uninterrupted one.
        order = np.random.default_rng([config.seed, epoch]).permutation(len(train))
        probability = _forcing(config, epoch)
        total = jnp.zeros(())
        for i in range(steps_per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            train_key, step_key = jr.split(train_key)
            x, targets, labels = (shard(a[idx], sharded) for a in (x_train, t_train, labels_train))
            model_new, opt_state_new, loss = train_step(
                model, opt_state, x, targets, labels, step_key, jnp.asarray(probability, jnp.float32))
            model, opt_state = model_new, opt_state_new
            total = total + loss
        train_loss = float(total) / steps_per_epoch  # one device fetch per epoch
        seconds = time.perf_counter() - start
        if not math.isfinite(train_loss):
            kept = (f"the best checkpoint so far is kept in {run_dir / 'model.eqx'}"
                    if (run_dir / "model.eqx").exists() else "no checkpoint was good enough to keep")
            stopped = (f"training stopped at epoch {epoch}: the training loss became "
                       f"{train_loss}; {kept}; lower --lr (now {config.lr:g})")
            diverged = True
            break
        record = {"epoch": epoch, "train_loss": train_loss, "lr": config.lr * lr_scale(opt_state),
                  "seconds": seconds, "forcing": probability}
        if epoch % config.val_every == 0 or epoch == config.epochs:
            score, val_metrics = val_score(model)
            record.update({f"val_{k}": v for k, v in val_metrics.items() if k != "n"})
            if score < best:
                best, waited = score, 0
                save_model(run_dir / "model.eqx", model, {"epoch": epoch, "val": score})
            else:
                waited += 1
        history.append(record)
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        bar.set_postfix(loss=f"{train_loss:.3g}", lr=f"{record['lr']:.2g}",
                        val=f"{record.get('val_mse', record.get('val_accuracy', float('nan'))):.3g}")
        if epoch % config.checkpoint_every == 0 or epoch == config.epochs:
            save_checkpoint(run_dir / "checkpoint.eqx", model, opt_state,
                            {"epoch": epoch, "best_val": best, "key": np.asarray(train_key).tolist()})
        if config.patience and waited >= config.patience:
            stopped = f"early stop at epoch {epoch}: no validation improvement in {waited} checks"
            break
    bar.close()

    run = Run.open(run_dir)
    if not (run_dir / "model.eqx").exists():
        raise WarpPhysError(stopped or f"run {run_dir} has no model checkpoint")
    run.evaluate_and_save(data, history=history, note=stopped)
    if diverged:
        raise WarpPhysError(stopped)
    return run


def _path(config: FitConfig, model) -> str:
    """Which computation a training step takes, in words (recorded in env.json)."""
    if config.mode == "recurrent":
        return "recurrent: one (batch x D) @ (D x D) product per step"
    if model.shares_theta0:
        return ("convolutional, shared theta_0: the kernel A^j B and A^k theta_0 in one chain "
                "of T matrix-vector products, the inputs by FFT convolution")
    return ("convolutional, per-sequence theta_0 (hypernetwork): the inputs by FFT "
            "convolution, A^k theta_0 by the batched recurrence")


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
