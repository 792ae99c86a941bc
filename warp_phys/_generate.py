"""`generate`: from a declaration to a dataset split, with an on-disk cache."""

import dataclasses
import json
import os
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ._compile import compile_system
from ._dataset import DamagedDataset, Dataset, held
from ._errors import WarpPhysError
from ._flow import AbstractFlow
from ._noise import add_noise
from ._simulate import chunk_size, initial_states
from ._splits import check_split, sample_draws, split_rng
from ._system import System
from ._known import with_channels


MAX_FAILED_FRACTION = 0.5


class GenerationWarning(UserWarning):
    """Some parameter draws could not be solved and were replaced by new draws."""


def default_cache_dir() -> Path:
    """`$WARP_PHYS_CACHE`, else `~/.cache/warp-phys`."""
    return Path(os.environ.get("WARP_PHYS_CACHE", Path.home() / ".cache" / "warp-phys"))


def dataset_stem(system: System, split: str, n: int, seed: int, rtol: float, atol: float,
                 root: Path) -> Path:
    """Where `generate` caches a split: keyed by declaration hash, split, size, seed and
    (for adaptive solves) tolerances."""
    return root / f"{system.name}-{system.hash[:12]}" / (
        f"{split}-n{n}-seed{seed}-tol{rtol:g}-{atol:g}"
    )


def default_size(system: System, split: str) -> int:
    return system.sizes["train" if split == "train" else "val" if split == "val" else "test"]


def generate(
    system: System,
    split: str,
    n: int | None = None,
    *,
    seed: int = 0,
    rtol: float = 1e-9,
    atol: float = 1e-9,
    cache: bool = True,
    force: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> Dataset:
    """Simulate `n` trajectories of one split of `system`.

    Parameters are drawn from the split's box (see `warp_phys.SPLITS`) with a random
    stream of their own, so the same `(system, split, n, seed)` gives the same data bit
    for bit, and different splits never share draws. The whole batch is solved in
    float64 by one vectorised call per chunk of trajectories, with the flow that
    `compile_system` chose: closed form when the system has one, `expm` when it is linear,
    an adaptive Diffrax solve (Dopri8, max-norm error control) otherwise. A draw whose
    solve fails or leaves finite values is replaced by a fresh draw and reported (warning, and `meta["failed"]`); no NaN is ever stored.

    **Arguments:**

    - `system`: the declaration (see `warp_phys.load_system`).
    - `split`: one of `train`, `val`, `test-id`, `test-ood`, `test-paper`.
    - `n`: number of trajectories; defaults to the system's `sizes`.
    - `seed`: the base seed.
    - `rtol`, `atol`: tolerances of the adaptive solver.
    - `cache`: read and write the result under `cache_dir`.
    - `force`: simulate again even when the result is cached (and replace the entry).
    - `cache_dir`: defaults to `$WARP_PHYS_CACHE` or `~/.cache/warp-phys`.
    - `progress`: show a progress bar.

    **Returns:** a `warp_phys.Dataset`.

    **Example:**

    ```python
    system = wp.load_system("msd")
    train = wp.generate(system, "train", 512, seed=0)
    train.y.shape       # (512, 256, 2)
    ```
    """
    if not isinstance(system, System):
        raise WarpPhysError(f"generate needs a warp_phys.System, got {type(system).__name__}")
    if system.measured is not None:
        raise WarpPhysError(
            f"system {system.name!r} is measured: its trajectories come from "
            f"{system.measured.path}, not from simulation; read them with "
            "warp_phys.read_trajectories")
    check_split(split, system)
    n = default_size(system, split) if n is None else n
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise WarpPhysError(f"n must be a positive integer, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise WarpPhysError(f"seed must be a non-negative integer, got {seed!r}")
    if not (rtol > 0 and atol > 0):
        raise WarpPhysError(f"rtol and atol must be positive, got {rtol!r} and {atol!r}")
    n, seed = int(n), int(seed)

    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    stem = dataset_stem(system, split, n, seed, rtol, atol, root)
    if cache and not force and stem.with_suffix(".json").is_file() and stem.with_suffix(".npz").is_file():
        try:
            return Dataset.load(stem)
        except DamagedDataset as e:  # a cache entry is only a copy: make it again
            warnings.warn(f"the cached dataset {e.stem} was damaged ({e.reason}); "
                          "regenerating it", stacklevel=2)

    dataset = _simulate_split(system, split, n, seed, rtol, atol, progress)
    if cache:
        dataset.save(stem)
    return dataset


# The flow each (declaration, tolerances) settled on (`AbstractFlow.settle`), so a stiff
# system is probed once per process, not once per split.
_SETTLED: dict[tuple[str, float, float], AbstractFlow] = {}


def _simulator(compiled, key):
    """`simulate(ts, params, y0) -> (ys, ok)` with the flow settled for `key`: the first
    call settles it (an explicit solve that grinds hands over to an implicit one)."""

    def simulate(ts, params, y0):
        if key in _SETTLED:
            return _SETTLED[key].simulate(ts, params, y0)
        flow, ys, ok = compiled.flow.with_options(rtol=key[1], atol=key[2]).settle(ts, params, y0)
        _SETTLED[key] = flow
        return ys, ok

    return simulate


def _simulate_split(system, split, n, seed, rtol, atol, progress) -> Dataset:
    compiled = compile_system(system)
    _check_signals(system)
    draw_rng, task_rng = split_rng(seed, split, 0), split_rng(seed, split, 1)
    n_params = len(system.free_parameters)
    ts = np.linspace(*system.t_span, system.steps)
    chunk = chunk_size(compiled, n)
    key = (system.hash, rtol, atol)
    simulate = _simulator(compiled, key)

    blocks_draws, blocks_y, failed, count = [], [], [], 0
    bar = tqdm(total=n, desc=f"{system.name} {split}", unit="traj", disable=not progress,
               leave=True, dynamic_ncols=True)
    with bar:
        while count < n:
            want = min(chunk, n - count)
            draws = sample_draws(system, split, want, draw_rng)
            # Pad to the chunk size so every call reuses one compiled solver.
            padded = np.concatenate([draws, np.repeat(draws[:1], chunk - want, axis=0)])
            params, z = padded[:, :n_params], padded[:, n_params:]
            ys, ok = simulate(ts, params, initial_states(compiled, params, z))
            ok = ok[:want]
            # A full, clean chunk is kept as a view (no copy); otherwise copy the good rows
            # out, so a small split never pins a whole padded chunk in memory.
            keep = slice(None) if want == chunk and ok.all() else np.flatnonzero(ok)
            blocks_draws.append(draws[keep])
            blocks_y.append(ys[keep])
            failed.extend(draws[~ok])
            count += len(blocks_draws[-1])
            bar.update(len(blocks_draws[-1]))
            if len(failed) > MAX_FAILED_FRACTION * (count + len(failed)) and len(failed) >= 8:
                raise WarpPhysError(_failure_message(system, split, failed, count, fatal=True))

    join = lambda blocks: blocks[0] if len(blocks) == 1 else np.concatenate(blocks)  # noqa: E731
    y, params = join(blocks_y), join(blocks_draws)[:, :n_params]
    y0 = y[:, 0, :]
    times = None
    if system.timed:  # irregular sampling: each sample at a time of its own
        times = system.sampling.times(ts, len(y), split_rng(seed, split, 4))
        y = _off_grid(system, _SETTLED[key], ts, times, params, y, split)
    controls = _signals(compiled, ts if times is None else times, params)
    y, clean = _observed(system, y, seed, split)
    if failed:
        warnings.warn(_failure_message(system, split, failed, n, fatal=False), GenerationWarning,
                      stacklevel=3)
    inputs, targets, extras = system.task.build(y, task_rng)
    inputs = held(inputs)  # a model reads the last value seen where one is missing
    inputs = with_channels(inputs, times, system.t_span, controls)
    extras |= {k: v for k, v in (("times", times), ("controls", controls)) if v is not None}
    labels = _labels(system, params)
    names = [name for name, _ in system.draws]
    meta = {
        "system": system.name,
        "hash": system.hash,
        "split": split,
        "seed": seed,
        "n": n,
        "context": system.context,
        "t_span": list(system.t_span),
        "steps": system.steps,
        "state_names": [s.name for s in system.state],
        "param_names": [s.name for s in system.free_parameters],
        "fixed_parameters": {s.name: v for s, v in system.fixed_parameters.items()},
        "classes": list(system.classes),
        "task": system.task.to_json(),
        "method": _SETTLED[key].description,
        "rtol": rtol,
        "atol": atol,
        "failed": {
            "count": len(failed),
            "names": names,
            "draws": [list(map(float, row)) for row in failed[:100]],
        },
        "declaration": system.to_json(),
    }
    meta = json.loads(json.dumps(meta))  # exactly what a save/load round trip gives
    return Dataset(t=ts, y=y, inputs=inputs, targets=targets, params=params, y0=y0,
                   labels=labels, extras={**extras, **clean}, meta=meta)


def _off_grid(system, flow: AbstractFlow, ts, times, params, y, split) -> np.ndarray:
    """The states at sample `times` (n, T): sample k >= 1 advanced by the flow from the grid
    point before it (`times[:, k]` lies in (ts[k - 1], ts[k]]), sample 0 as simulated."""
    with jax.enable_x64(True):
        moved = np.asarray(_advance(flow, jnp.asarray(np.broadcast_to(ts[:-1], times[:, 1:].shape)),
                                    jnp.asarray(times[:, 1:]), jnp.asarray(y[:, :-1]),
                                    jnp.asarray(params, jnp.float64)))
    if not np.isfinite(moved).all():
        bad = int(np.flatnonzero(~np.isfinite(moved).all(axis=(1, 2)))[0])
        raise WarpPhysError(f"system {system.name!r}, split {split!r}: trajectory {bad} could not "
                            "be solved to its jittered sample times; lower Sampling(jitter=...) "
                            "or loosen the tolerances")
    return np.concatenate([y[:, :1], moved], axis=1)


def _labels(system, params: np.ndarray) -> np.ndarray:
    """The class index of each trajectory (its label parameter's place among the choices),
    or an empty array without a label."""
    if system.label is None:
        return np.zeros(0, dtype=np.int64)
    return system.parameters[system.label].index(params[:, system.free_parameters.index(system.label)])


def _check_signals(system) -> None:
    """Raise if a control has no declared signal (it can only be read from a file)."""
    silent = [u.name for u, signal in system.controls.items() if signal is None]
    if silent:
        raise WarpPhysError(f"system {system.name!r}: control {silent[0]!r} has no signal to "
                            "generate data with; declare controls={u: an expression of t and "
                            "parameters}, or use it as the law of a file with u: columns")


def _signals(compiled, times: np.ndarray, params: np.ndarray) -> np.ndarray | None:
    """The declared control signals (n, T, m) at the sample `times` ((T,) or (n, T))."""
    if compiled.signals is None:
        return None
    times = np.broadcast_to(times, (len(params), times.shape[-1]))
    with jax.enable_x64(True):
        per_sample = jax.vmap(compiled.signals, in_axes=(0, None))
        return np.asarray(jax.jit(jax.vmap(per_sample))(jnp.asarray(times),
                                                        jnp.asarray(params, jnp.float64)))


@eqx.filter_jit
def _advance(flow, start, t, y, params):
    per_sample = jax.vmap(flow.advance, in_axes=(0, 0, 0, None))
    return jax.vmap(per_sample)(start, t, y, params)


def _observed(system: System, y: np.ndarray, seed: int, split: str) -> tuple[np.ndarray, dict]:
    """The simulated `y` as the declaration observes it (its noise, its sampling), each
    drawn from a stream of its own so the draws and solves are the same without them, and
    the extras that keep the truth (`{"clean": y}` when there is noise)."""
    clean = {}
    if system.noise:
        clean = {"clean": y}
        y = add_noise(y, tuple(system.noise.get(s) for s in system.state),
                      split_rng(seed, split, 2))
    if system.sampling is not None:  # gaps and shorter runs
        y = system.sampling.apply(y, split_rng(seed, split, 3))
    return y, clean


def _failure_message(system, split, failed, count, *, fatal) -> str:
    names = [name for name, _ in system.draws]
    shown = "; ".join(
        ", ".join(f"{k}={v:.4g}" for k, v in zip(names, row)) for row in failed[:3]
    )
    more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
    if fatal:
        return (
            f"system {system.name!r}, split {split!r}: {len(failed)} of "
            f"{len(failed) + count} draws failed to solve or became non-finite "
            f"(e.g. {shown}{more}); narrow the parameter ranges or shorten t_span"
        )
    return (
        f"system {system.name!r}, split {split!r}: {len(failed)} draw(s) failed to solve or "
        f"became non-finite and were replaced by new draws ({shown}{more}); "
        "the dataset's meta['failed'] lists them"
    )


def as_law(data: Dataset, law: System) -> Dataset:
    """`data` (simulated from another declaration) with its parameters as `law` names its
    free parameters (NaN for one the data's declaration does not have)."""
    names = [s.name for s in law.free_parameters]
    params = np.full((len(data), len(names)), np.nan)
    for j, name in enumerate(names):
        if name in data.param_names:
            params[:, j] = data.params[:, data.param_names.index(name)]
    return dataclasses.replace(data, params=params, meta={**data.meta, "param_names": names,
                                                          "law": law.hash})


def load_splits(system: System, sizes: dict, seed: int, splits=None, *,
                progress: bool = False, force: bool = False) -> dict[str, Dataset]:
    """The datasets a run uses (default: every split the system has), from the cache.

    **Arguments:**

    - `sizes`: `{"train": n, "val": n, "test": n}` (`test` for each test split; None: the
      system's declared size).
    - `seed`, `progress`, `force`: as `generate`.

    A measured system's splits are read from its file (`warp_phys.read_trajectories`).
    """
    if system.measured is not None:
        from ._measured import measured_splits

        return measured_splits(system, sizes, splits)
    if system.simulated is not None:
        return {split: as_law(data, system) for split, data in load_splits(
            system.simulated, sizes, seed, splits, progress=progress, force=force).items()}
    return {
        split: generate(system, split, sizes.get(split, sizes.get("test")), seed=seed,
                        progress=progress, force=force)
        for split in (splits or system.splits)
    }
