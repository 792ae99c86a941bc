"""Run directories: `runs/<system>/<model>/<timestamp>/`, saved and loaded.

    config.json     everything needed to re-run (the FitConfig and the data normaliser),
                    and the hashes of the system's declaration and of its data
    status.json     running, finished, stopped (and why) or failed; a "running" run whose
                    process is gone reads as killed
    env.json        package versions, devices, precision, seed
    metrics.jsonl   one line per epoch: train loss, learning rate, validation metrics
    metrics.json    final test metrics per split, from the best checkpoint
    model.eqx       the best model (on val): a JSON header line, then Equinox leaves
    checkpoint.eqx  the latest model and optimiser state, for resuming
    plots/          loss curves, forecasts against truth (see `_report.py`)

Every file is written to a temporary file and renamed, so a crash never leaves a
half-written file behind; the `.eqx` files carry the size and SHA-256 of their body in
their header line, checked on load. One process at a time owns a run directory (an OS
file lock on `.lock`, released when the process ends, however it ends).
"""

import datetime
import io
import json
import os
import warnings
from pathlib import Path

import equinox as eqx
import filelock
import jax
import jax.random as jr
import numpy as np

from ._config import FitConfig
from ._errors import WarpPhysError
from ._evaluate import metrics
from ._generate import load_splits
from ._io import atomic_write, read_json, sha256, write_json
from ._normalise import Normaliser


MODEL_FORMAT = 1


def run_folder(root: Path, system: str, model: str) -> Path:
    """`root/system/model/`, made if needed: where a model's runs of a system go. Called
    before any data is made, so a bad `--out` fails first."""
    folder = Path(root) / system / model
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise WarpPhysError(f"cannot make run directories in {folder}: a file stands where a "
                            "folder should; choose another --out (runs_dir= in Python)") from None
    return folder


def new_run_dir(root: Path, system: str, model: str) -> Path:
    """A new, empty run directory under `root/system/model/`, named for the time; created
    atomically, so concurrent runs never take one name (a taken name gets a suffix)."""
    folder = run_folder(root, system, model)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = 0
    while True:
        path = folder / (f"{stamp}-{suffix}" if suffix else stamp)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            suffix += 1


def _save(path: Path, header: dict, tree) -> None:
    body = io.BytesIO()
    eqx.tree_serialise_leaves(body, tree)
    data = body.getvalue()
    head = {"format": MODEL_FORMAT, **header, "bytes": len(data), "sha256": sha256(data)}

    def write(f):
        f.write((json.dumps(head) + "\n").encode())
        f.write(data)

    atomic_write(path, write)


def _read(path: Path) -> tuple[dict, bytes]:
    """The header and the checked body of an `.eqx` file."""
    if not path.is_file():
        raise WarpPhysError(f"no file {path}; is this a finished or checkpointed run?")
    line, _, body = path.read_bytes().partition(b"\n")
    damaged = f"{path} is damaged ({{}}); train the run again, or restore the file"
    try:
        header = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        raise WarpPhysError(damaged.format("its header line is not JSON")) from None
    if not isinstance(header, dict) or header.get("format") != MODEL_FORMAT:
        raise WarpPhysError(f"{path} has an unknown format")
    if "sha256" in header:  # files written before checksums have none
        if len(body) != header["bytes"]:
            raise WarpPhysError(damaged.format(f"{len(body)} bytes where {header['bytes']} "
                                               "were written: truncated"))
        if sha256(body) != header["sha256"]:
            raise WarpPhysError(damaged.format("its checksum does not match"))
    return header, body


def _load(path: Path, like):
    header, body = _read(path)
    try:
        return eqx.tree_deserialise_leaves(io.BytesIO(body), like), header
    except Exception as e:  # an unchecked file of another shape, or torn
        raise WarpPhysError(f"{path} does not hold this run's model ({type(e).__name__}: "
                            f"{e}); train the run again") from None


def read_history(path: Path, last_epoch: int) -> list[dict]:
    """The metric records up to `last_epoch`; later ones (lost with the crash) are dropped
    from the file too, and so is a line that does not parse, with a warning naming it and
    the epochs whose record is then missing (they are not trained again: the checkpoint
    holds them)."""
    records, unreadable = [], []
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            unreadable.append(number)
            continue
        if isinstance(record, dict) and record.get("epoch", last_epoch + 1) <= last_epoch:
            records.append(record)
    if unreadable:
        kept = {r.get("epoch") for r in records}
        lost = [e for e in range(1, last_epoch + 1) if e not in kept]
        what = (f"the records of epoch(s) {', '.join(map(str, lost))} are lost, the training "
                "they did is kept in the checkpoint" if lost else "no record up to the "
                "checkpoint is lost")
        warnings.warn(f"{path}: dropped {len(unreadable)} unreadable line(s) (line "
                      f"{', '.join(map(str, unreadable))}); {what}", stacklevel=2)
    atomic_write(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in records).encode()))
    return records


def _seal(data: dict) -> str:
    return sha256(json.dumps(data, sort_keys=True).encode())


def _sealed(data: dict) -> dict:
    """`data` with the SHA-256 of its canonical JSON under "sha256": an edit by hand that
    still parses (a seed changed) is caught when the run is opened."""
    return {**data, "sha256": _seal(data)}


def _config(path: Path, data: dict) -> FitConfig:
    try:
        return FitConfig.from_json(data)
    except (KeyError, TypeError, AttributeError) as e:
        raise WarpPhysError(f"{path / 'config.json'} is damaged ({type(e).__name__}: {e}); "
                            "train the run again") from None


def data_hashes(data: dict) -> dict[str, str]:
    """SHA-256 of each split's trajectories (what a run trained and validated on)."""
    return {split: sha256(np.ascontiguousarray(data[split].y).tobytes())
            for split in ("train", "val") if split in data}


class Run:
    """A run directory: its configuration, normaliser, best model, checkpoint and metrics."""

    def __init__(self, path: Path, config: FitConfig, normaliser: Normaliser,
                 hashes: dict | None = None):
        self.path, self.config, self.normaliser = Path(path), config, normaliser
        self.hashes = hashes or {}  # {"system": ..., "data": {split: ...}}; {} before 0.1.0
        self._lock: filelock.BaseFileLock | None = None

    @classmethod
    def create(cls, path: Path, config: FitConfig, normaliser: Normaliser,
               environment: dict, hashes: dict) -> "Run":
        """Start the run directory `path` (new and empty) and own it: its `config.json`
        (with the system's and the data's hashes), `status.json`, `env.json`, `plots/`."""
        run = cls(path, config, normaliser, hashes)
        run.acquire()
        write_json(path / "config.json", _sealed({**config.to_json(), "hashes": hashes,
                                                  "normaliser": normaliser.to_json()}))
        run.set_state("running")
        write_json(path / "env.json", environment)
        (path / "plots").mkdir(exist_ok=True)
        return run

    @staticmethod
    def load_config(path: Path) -> FitConfig:
        """The configuration recorded in run directory `path`."""
        return _config(Path(path), Run._config_json(Path(path)))

    @staticmethod
    def _config_json(path: Path) -> dict:
        file = path / "config.json"
        if not file.is_file():
            raise WarpPhysError(f"{path} is not a run directory (no config.json)")
        data = read_json(file, fix="the run cannot be read; train it again")
        seal = data.pop("sha256", None)  # runs made before seals have none
        if seal is not None and seal != _seal(data):
            raise WarpPhysError(f"{file} was edited since the run wrote it (its sha256 no longer "
                                "matches): the model and metrics belong to the configuration it "
                                "had; restore the file, or train a new run with the new options")
        return data

    @classmethod
    def open(cls, path) -> "Run":
        path = Path(path)
        data = cls._config_json(path)
        try:
            normaliser = Normaliser.from_json(data["normaliser"])
        except (KeyError, TypeError, ValueError):
            raise WarpPhysError(f"{path / 'config.json'} is damaged (no valid normaliser); "
                                "train the run again") from None
        return cls(path, _config(path, data), normaliser, data.get("hashes"))

    def check_system(self) -> None:
        """Fail if the system's declaration changed since the run was trained: its model,
        normaliser and data belong to the old one."""
        recorded = self.hashes.get("system")
        system = self.system
        current = system.hash
        if recorded is not None and recorded != current and system.measured is not None:
            raise WarpPhysError(
                f"run {self.path} was trained on {system.measured.path} (hash {recorded[:12]}), "
                f"which now hashes to {current[:12]} (the file or its law was edited): train a "
                "new run, or restore the file to use this one")
        if recorded is not None and recorded != current:
            raise WarpPhysError(
                f"run {self.path} was trained on system {self.config.system!r} with declaration "
                f"hash {recorded[:12]}, but it now declares {current[:12]} (its file was edited): "
                "train a new run, or restore the old declaration to use this one")

    def check_data(self, data: dict) -> None:
        """Fail if the run's training data (from the cache) is not what it trained on."""
        recorded = self.hashes.get("data", {})
        for split, digest in data_hashes(data).items():
            if split in recorded and recorded[split] != digest:
                raise WarpPhysError(
                    f"the {split} data of run {self.path} (hash {digest[:12]}) is not what it was "
                    f"trained on ({recorded[split][:12]}); train a new run")

    # --------------------------------------------------------- ownership and state

    def acquire(self) -> None:
        """Own the run directory until `release` (or the process ends); a second process
        gets a `WarpPhysError`."""
        lock = filelock.FileLock(self.path / ".lock", timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise WarpPhysError(
                f"run directory {self.path} is in use by another warp-phys process; wait for "
                "it to finish (its status.json says which), or start a new run") from None
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _owned_elsewhere(self) -> bool:
        probe = filelock.FileLock(self.path / ".lock", timeout=0)
        try:
            probe.acquire()
        except filelock.Timeout:
            return True
        probe.release()
        return False

    def set_state(self, state: str, why: str | None = None) -> None:
        """Record the run's state: running, finished, stopped or failed (with why)."""
        write_json(self.path / "status.json", {
            "state": state, "why": why, "pid": os.getpid(),
            "time": datetime.datetime.now().astimezone().isoformat(timespec="seconds")})

    def state(self) -> dict:
        """`status.json`, with `state` "killed" for a run recorded as running whose
        process is gone (it can be resumed from its last checkpoint)."""
        file = self.path / "status.json"
        if not file.is_file():  # runs made before status.json
            done = (self.path / "metrics.json").is_file()
            return {"state": "finished" if done else "unknown", "why": None}
        status = read_json(file, fix="delete it; the run's other files are intact")
        if status.get("state") == "running" and self._lock is None and not self._owned_elsewhere():
            status = {**status, "state": "killed",
                      "why": f"process {status.get('pid')} ended without finishing the run; "
                             f"continue it with warp-phys fit --resume {self.path}"}
        return status

    @property
    def system(self):
        return self.config.load_system()

    @property
    def task(self):
        return self.system.task

    def _skeleton(self):
        return self.config.model.build(self.system, self.normaliser, key=jr.PRNGKey(0))

    def load_model(self):
        """The best model (on the validation split), if the system is still the one it
        was trained on."""
        self.check_system()
        return _load(self.path / "model.eqx", self._skeleton())[0]

    def forecaster(self):
        """The best model as it forecasts at test time (`AbstractModelConfig.inference`:
        WARP-Phys with `refine` refines its parameters on each context)."""
        return self.config.model.inference(self.load_model())

    def best_epoch(self) -> int:
        """The epoch of the best model."""
        return _read(self.path / "model.eqx")[0]["epoch"]

    def save_model(self, model, header: dict) -> None:
        _save(self.path / "model.eqx", header, model)

    def resumed(self, config: FitConfig, epoch: int) -> None:
        """Record that the run continues after `epoch` with `config` (its changes, if any,
        are listed in `config.json` under "resumed")."""
        data = self._config_json(self.path)
        before, after = _config(self.path, data).flat(), config.flat()
        changed = {k: [before[k], v] for k, v in after.items() if before.get(k) != v}
        history = data.get("resumed", []) + [{"after_epoch": epoch, "changed": changed}]
        write_json(self.path / "config.json", _sealed({**data, **config.to_json(),
                                                       "resumed": history}))
        self.config = config
        self.set_state("running")

    def save_checkpoint(self, model, opt_state, header: dict) -> None:
        _save(self.path / "checkpoint.eqx", header, (model, opt_state))

    def load_checkpoint(self, model, opt_state):
        """The checkpointed model and optimiser state (shaped like the given ones) and the
        checkpoint's header (epoch, best validation score, PRNG key)."""
        (model, opt_state), header = _load(self.path / "checkpoint.eqx", (model, opt_state))
        return model, opt_state, header

    def log(self, record: dict) -> None:
        """Append one epoch's record to `metrics.jsonl`, on disk before the checkpoint
        that follows it (so a checkpoint never outlives its epoch's record)."""
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    @property
    def metrics(self) -> dict:
        return read_json(self.path / "metrics.json",
                         fix="warp-phys evaluate RUN still prints the test metrics; "
                         "warp-phys study trains such a run again")

    def save_metrics(self, summary: dict) -> None:
        write_json(self.path / "metrics.json", summary)

    def data(self, splits) -> dict:
        """The run's datasets of `splits` (from the cache)."""
        return load_splits(self.system, self.config.data.sizes(), self.config.seed, splits)

    def evaluate(self, data=None, *, splits=None, model=None) -> dict:
        """Recompute test metrics of the best model on `splits` (default: every test split);
        only those splits are loaded."""
        names = splits or [s for s in self.system.splits if s.startswith("test")]
        data = data if data is not None else self.data(names)
        model = model if model is not None else self.forecaster()
        return {s: metrics(model, data[s], self.normaliser, self.task) for s in names}


def environment(config: FitConfig, model) -> dict:
    """What `env.json` records: versions, platform, devices, precision, seed, and which
    computation a training step takes."""
    import importlib.metadata
    import platform

    versions = {}
    for package in ("warp-phys", "jax", "jaxlib", "equinox", "diffrax", "optax", "numpy", "sympy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    precision = getattr(config.model, "precision", "float32")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
        "precision": (f"float32 parameters and activations; WARP's products with A at "
                      f"{precision}; data generated in float64"),
        "seed": config.seed,
        "path": _path(config, model),
    }


def _path(config: FitConfig, model) -> str:
    """Which computation a training step takes, in words."""
    if getattr(config.model, "mode", "recurrent") == "recurrent":
        return "recurrent: one (batch x D) @ (D x D) product per step"
    if model.shares_theta0:
        return ("convolutional, shared theta_0: the kernel A^j B and A^k theta_0 in one chain "
                "of T matrix-vector products, the inputs by a causal convolution (blocked "
                "matrix products)")
    return ("convolutional, per-sequence theta_0 (hypernetwork): the inputs by a causal "
            "convolution (blocked matrix products), A^k theta_0 by the batched recurrence")


def format_table(metrics: dict) -> str:
    """The test metrics as an aligned text table: the forecast window's MSE and MAE, how
    many times better than the naive forecast (repeat the last context value), and the
    MSE over the whole sequence, context included."""
    rows = []
    for split, m in metrics.items():
        if "accuracy" in m:
            rows.append(f"{split:>10}  accuracy {m['accuracy']:.4f}  cross-entropy "
                        f"{m['cross_entropy']:.4g}  (n={m['n']})")
            continue
        diverged = (f"; {m['diverged']} rollouts DIVERGED and are excluded"
                    if m["diverged"] else "")
        ratio = m["naive_mse"] / m["mse"] if m["mse"] > 0 else float("inf")
        truth = (f"  against the noise-free truth: MSE {m['mse_clean']:.4g}, naive "
                 f"{m['naive_mse_clean']:.4g}" if "mse_clean" in m else "")
        rows.append(f"{split:>10}  MSE {m['mse']:.4g}  MAE {m['mae']:.4g}  "
                    f"naive MSE {m['naive_mse']:.4g} ({ratio:.3g}x the model's)  "
                    f"whole-sequence MSE incl. context {m['mse_whole']:.4g}{truth}  "
                    f"(n={m['n']}{diverged})")
    return "\n".join(rows)
