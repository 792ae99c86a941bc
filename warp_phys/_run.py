"""Run directories: `runs/<system>/<model>/<timestamp>/`, saved and loaded.

    config.json     everything needed to re-run (the FitConfig and the data normaliser)
    env.json        package versions, devices, precision, seed
    metrics.jsonl   one line per epoch: train loss, learning rate, validation metrics
    metrics.json    final test metrics per split, from the best checkpoint
    model.eqx       the best model (on val): a JSON header line, then Equinox leaves
    checkpoint.eqx  the latest model and optimiser state, for resuming
    plots/          loss curves, forecasts against truth (see `_report.py`)

Every file is written to a temporary file and renamed, so a crash never leaves a
half-written file behind.
"""

import datetime
import json
from pathlib import Path

import equinox as eqx
import jax
import jax.random as jr

from ._config import FitConfig
from ._errors import WarpPhysError
from ._evaluate import metrics
from ._generate import load_splits
from ._io import atomic_write, write_json
from ._normalise import Normaliser
from ._registry import load_system


MODEL_FORMAT = 1


def new_run_dir(root: Path, system: str, model: str) -> Path:
    """A new, empty run directory under `root/system/model/`, named for the time."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / system / model / stamp
    suffix = 1
    while path.exists():
        path = root / system / model / f"{stamp}-{suffix}"
        suffix += 1
    path.mkdir(parents=True)
    return path


def _save(path: Path, header: dict, tree) -> None:
    def write(f):
        f.write((json.dumps({"format": MODEL_FORMAT, **header}) + "\n").encode())
        eqx.tree_serialise_leaves(f, tree)

    atomic_write(path, write)


def _load(path: Path, like):
    if not path.is_file():
        raise WarpPhysError(f"no file {path}; is this a finished or checkpointed run?")
    with open(path, "rb") as f:
        header = json.loads(f.readline())
        if header.get("format") != MODEL_FORMAT:
            raise WarpPhysError(f"{path} has an unknown format")
        return eqx.tree_deserialise_leaves(f, like), header


def read_history(path: Path, last_epoch: int) -> list[dict]:
    """The metric records up to `last_epoch`; later ones (lost with the crash) are dropped
    from the file too."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    records = [r for r in records if r["epoch"] <= last_epoch]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


class Run:
    """A run directory: its configuration, normaliser, best model, checkpoint and metrics."""

    def __init__(self, path: Path, config: FitConfig, normaliser: Normaliser):
        self.path, self.config, self.normaliser = Path(path), config, normaliser

    @classmethod
    def create(cls, path: Path, config: FitConfig, normaliser: Normaliser,
               environment: dict) -> "Run":
        """Start the run directory `path` (empty): its `config.json`, `env.json`, `plots/`."""
        write_json(path / "config.json", {**config.to_json(), "normaliser": normaliser.to_json()})
        write_json(path / "env.json", environment)
        (path / "plots").mkdir(exist_ok=True)
        return cls(path, config, normaliser)

    @staticmethod
    def load_config(path: Path) -> FitConfig:
        """The configuration recorded in run directory `path`."""
        return FitConfig.from_json(Run._config_json(Path(path)))

    @staticmethod
    def _config_json(path: Path) -> dict:
        file = path / "config.json"
        if not file.is_file():
            raise WarpPhysError(f"{path} is not a run directory (no config.json)")
        return json.loads(file.read_text())

    @classmethod
    def open(cls, path) -> "Run":
        path = Path(path)
        data = cls._config_json(path)
        return cls(path, FitConfig.from_json({k: v for k, v in data.items() if k != "normaliser"}),
                   Normaliser.from_json(data["normaliser"]))

    @property
    def system(self):
        return load_system(self.config.system)

    @property
    def task(self):
        return self.system.task

    def _skeleton(self):
        return self.config.model.build(self.system, self.normaliser, key=jr.PRNGKey(0))

    def load_model(self):
        """The best model (on the validation split)."""
        return _load(self.path / "model.eqx", self._skeleton())[0]

    def best_epoch(self) -> int:
        """The epoch of the best model."""
        with open(self.path / "model.eqx", "rb") as f:
            return json.loads(f.readline())["epoch"]

    def save_model(self, model, header: dict) -> None:
        _save(self.path / "model.eqx", header, model)

    def save_checkpoint(self, model, opt_state, header: dict) -> None:
        _save(self.path / "checkpoint.eqx", header, (model, opt_state))

    def load_checkpoint(self, model, opt_state):
        """The checkpointed model and optimiser state (shaped like the given ones) and the
        checkpoint's header (epoch, best validation score, PRNG key)."""
        (model, opt_state), header = _load(self.path / "checkpoint.eqx", (model, opt_state))
        return model, opt_state, header

    def log(self, record: dict) -> None:
        """Append one epoch's record to `metrics.jsonl`."""
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    @property
    def metrics(self) -> dict:
        return json.loads((self.path / "metrics.json").read_text())

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
        model = model if model is not None else self.load_model()
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
        rows.append(f"{split:>10}  MSE {m['mse']:.4g}  MAE {m['mae']:.4g}  "
                    f"naive MSE {m['naive_mse']:.4g} ({ratio:.3g}x the model's)  "
                    f"whole-sequence MSE incl. context {m['mse_whole']:.4g}  (n={m['n']}{diverged})")
    return "\n".join(rows)
