"""Real data no one here made: the multivariate UEA classification problems that ship
inside the `aeon` package (an optional extra: `pip install "warp-phys[uea]"`).

`uea:NAME` names one wherever a file of measurements is taken (`warp-phys fit
uea:JapaneseVowels`). Its `_TRAIN.ts` file gives the train split (15% of it, drawn with
seed 0, the val split) and its `_TEST.ts` file the test-id split; a series shorter than
the longest is padded at its end (missing values, which models skip). The class of each
series is its label; the classes are sorted by name.
"""

import hashlib
from pathlib import Path

import numpy as np

from ._errors import WarpPhysError


PREFIX = "uea:"
VAL_SHARE = 0.15


def is_uea(source) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def files(source: str) -> tuple[Path, Path]:
    """The `_TRAIN.ts` and `_TEST.ts` files of `uea:NAME` inside the installed aeon."""
    try:
        import aeon.datasets
    except ImportError:
        raise WarpPhysError(f"{source} needs the aeon package, which ships the UEA data: "
                            "pip install \"warp-phys[uea]\"") from None
    name, root = source[len(PREFIX):], Path(aeon.datasets.__file__).parent / "data"
    folder = root / name
    pair = folder / f"{name}_TRAIN.ts", folder / f"{name}_TEST.ts"
    if not all(p.is_file() for p in pair):
        shipped = sorted({p.parent.name for p in root.glob("*/*_TRAIN.ts")})
        raise WarpPhysError(f"aeon ships no classification problem {name!r}; it ships "
                            f"{', '.join(shipped)}")
    return pair


def sha256(source: str) -> str:
    digest = hashlib.sha256()
    for path in files(source):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read(source: str):
    """`(y (n, T, d) NaN-padded, labels (n,), classes, split (n,))` of `uea:NAME`."""
    from aeon.datasets import load_from_ts_file

    parts, labels = [], []
    for path in files(source):
        X, y = load_from_ts_file(str(path))
        parts.append([np.asarray(x, np.float64).T for x in X])  # each (T_i, d)
        labels.append(np.asarray(y).astype(str))
    series = parts[0] + parts[1]
    steps, d = max(len(s) for s in series), series[0].shape[1]
    y = np.full((len(series), steps, d), np.nan)
    for i, s in enumerate(series):
        y[i, : len(s)] = s
    names = np.concatenate(labels)
    classes = tuple(sorted(str(c) for c in set(names)))
    split = np.full(len(series), "test-id", dtype=object)
    n_train = len(parts[0])
    split[:n_train] = "train"
    val = np.random.default_rng(0).permutation(n_train)[: max(1, round(VAL_SHARE * n_train))]
    split[val] = "val"
    return y, np.array([classes.index(c) for c in names]), classes, split
