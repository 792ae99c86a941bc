"""A generated split of a system: arrays plus the metadata that says where they came from.

On disk a dataset is two files side by side: `<stem>.npz` (arrays, loaded without
pickle) and `<stem>.json` (metadata). Both are written to a temporary file and renamed,
so an interrupted write never leaves a truncated dataset behind; the `.json`, written
last, holds the `.npz`'s size and SHA-256, checked on load (`DamagedDataset`).
"""

import dataclasses
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ._custom_types import InitialStates, Labels, Params, States, Times
from ._errors import WarpPhysError
from ._io import atomic_write, read_json, sha256


FORMAT_VERSION = 1


class DamagedDataset(WarpPhysError):
    """A dataset on disk that cannot be trusted (torn, truncated or altered); `reason`
    says what is wrong with it."""

    def __init__(self, stem: Path, reason: str):
        self.stem, self.reason = stem, reason
        super().__init__(f"dataset {stem} is damaged ({reason}); delete both files to "
                         "regenerate it")


def held(y: np.ndarray) -> np.ndarray:
    """`y` (n, T, d) with each missing value (NaN) replaced by the last one observed
    before it (the first sample is complete)."""
    if not np.isnan(y).any():
        return y
    index = np.where(np.isnan(y), 0, np.arange(y.shape[1])[None, :, None])
    index = np.maximum.accumulate(index, axis=1)
    return np.take_along_axis(y, index, axis=1)


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Trajectories of one split of a system.

    **Attributes:**

    - `t`: the time grid, shape (T,).
    - `y`: the simulated trajectories, shape (n, T, d), in the system's own units.
    - `inputs`, `targets`: what a model reads and what it must predict, shape (n, T, d).
      For forecasting both are `y`; the repeat-copy task builds its own. Where `y` has
      missing values (NaN: a gap, or padding after a shorter trajectory), `targets` keeps
      them (losses and metrics skip them) and `inputs` holds the last value observed
      (`held`).
    - `params`: the free parameters of each trajectory, shape (n, P), ordered as
      `param_names`.
    - `y0`: the initial state of each trajectory, shape (n, d).
    - `labels`: class indices, shape (n,), for classification systems; else shape (0,).
    - `extras`: other per-trajectory arrays a task stores (e.g. `segment_length`).
    - `meta`: JSON metadata: system name and declaration hash, split, seed, context,
      state and parameter names, classes, solver settings, failed draws.
    """

    t: Times
    y: States
    inputs: States
    targets: States
    params: Params
    y0: InitialStates
    labels: Labels
    extras: dict[str, np.ndarray]
    meta: dict

    # Convenience views of the metadata.
    system = property(lambda self: self.meta["system"])
    split = property(lambda self: self.meta["split"])
    seed = property(lambda self: self.meta["seed"])
    hash = property(lambda self: self.meta["hash"])
    context = property(lambda self: self.meta["context"])
    param_names = property(lambda self: tuple(self.meta["param_names"]))
    state_names = property(lambda self: tuple(self.meta["state_names"]))
    classes = property(lambda self: tuple(self.meta["classes"]))

    def __len__(self) -> int:
        return self.y.shape[0]

    def __repr__(self) -> str:
        n, steps, d = self.y.shape
        return (
            f"Dataset(system={self.system!r}, split={self.split!r}, n={n}, T={steps}, "
            f"d={d}, params={list(self.param_names)}, seed={self.seed})"
        )

    def save(self, stem: str | os.PathLike) -> tuple[Path, Path]:
        """Write `<stem>.npz` and `<stem>.json` atomically; return both paths."""
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "t": self.t, "y": self.y, "params": self.params, "y0": self.y0,
            "labels": self.labels,
            **{f"extra.{k}": v for k, v in self.extras.items()},
        }
        # Forecasting reads and predicts `y` itself: store it once.
        if self.inputs is not self.y:
            arrays["inputs"] = self.inputs
        if self.targets is not self.y:
            arrays["targets"] = self.targets
        npz, meta = stem.with_suffix(".npz"), stem.with_suffix(".json")
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        atomic_write(npz, lambda f: f.write(data))
        # The .json is written last and names the .npz's size and checksum, so a pair
        # torn by a crash, or a damaged .npz, is caught on load.
        text = json.dumps({"format": FORMAT_VERSION, **self.meta,
                           "npz": {"bytes": len(data), "sha256": sha256(data)}}, indent=2)
        atomic_write(meta, lambda f: f.write(text.encode()))
        return npz, meta

    @classmethod
    def load(cls, stem: str | os.PathLike) -> "Dataset":
        """Read a dataset written by `save` (give the stem, or either file's path)."""
        stem = Path(stem)
        if stem.suffix in (".npz", ".json"):
            stem = stem.with_suffix("")
        npz, meta_path = stem.with_suffix(".npz"), stem.with_suffix(".json")
        for path in (npz, meta_path):
            if not path.is_file():
                raise WarpPhysError(f"no dataset file {path}; generate it first")
        try:
            meta = read_json(meta_path, fix="delete it and its .npz to regenerate the dataset")
        except WarpPhysError as e:
            raise DamagedDataset(stem, f"{meta_path.name} is not valid JSON") from None
        raw = npz.read_bytes()
        check = meta.pop("npz", None)
        if check is not None and (len(raw) != check["bytes"] or sha256(raw) != check["sha256"]):
            raise DamagedDataset(stem, f"{npz.name} does not match its checksum")
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise DamagedDataset(stem, f"{npz.name}: {type(e).__name__}: {e}") from None
        if meta.pop("format", None) != FORMAT_VERSION:
            raise WarpPhysError(
                f"dataset {stem} has an unknown format; regenerate it with this version"
            )
        y = arrays["y"]
        return cls(
            t=arrays["t"], y=y,
            inputs=arrays.get("inputs", y), targets=arrays.get("targets", y),
            params=arrays["params"], y0=arrays["y0"], labels=arrays["labels"],
            extras={k[6:]: v for k, v in arrays.items() if k.startswith("extra.")},
            meta=meta,
        )

