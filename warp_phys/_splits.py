"""Where each split draws its trajectories from, and the random streams that do it."""

import numpy as np

from ._distributions import Box
from ._errors import WarpPhysError
from ._system import SPLITS, System


def split_rng(seed: int, split: str, stream: int = 0) -> np.random.Generator:
    """An independent generator for `(seed, split, stream)`: different splits never
    share draws, and the same arguments always give the same stream."""
    check_split(split)
    key = (SPLITS.index(split), stream)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def check_split(split: str, system: System | None = None) -> None:
    """Raise `WarpPhysError` for an unknown split, or one `system` cannot generate."""
    if split not in SPLITS:
        raise WarpPhysError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if system is not None and split not in system.splits and system.measured is not None:
        raise WarpPhysError(
            f"{system.measured.path} has no {split} trajectories; its splits are "
            f"{', '.join(system.splits)}")
    if system is not None and split not in system.splits:
        raise WarpPhysError(
            f"system {system.name!r} has no test-ood split: every OoD range equals its "
            "train range, so no trajectory is out of distribution; use test-id or "
            "test-paper, or give some distribution an ood=(low, high) range"
        )


def in_box(system: System, draws: np.ndarray, box: Box) -> np.ndarray:
    """Whether each row of `draws` (n, R) lies inside `box` ("train" or "ood") in every
    sampled quantity."""
    inside = np.ones(draws.shape[0], dtype=bool)
    for j, (_, dist) in enumerate(system.draws):
        inside &= dist.in_box(draws[:, j], box)
    return inside


def _draw_box(system: System, rng: np.random.Generator, n: int, box) -> np.ndarray:
    columns = [dist.sample(rng, n, box) for _, dist in system.draws]
    return np.stack(columns, axis=1) if columns else np.zeros((n, 0))


def sample_draws(system: System, split: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw `n` rows of the system's random quantities (`System.draws`) for `split`.

    `train`, `val`, `test-id` draw from the train box and `test-paper` from the OoD box;
    `test-ood` draws from the OoD box and keeps only rows outside the train box.
    """
    check_split(split, system)
    if split in ("train", "val", "test-id"):
        return _draw_box(system, rng, n, "train")
    if split == "test-paper":
        return _draw_box(system, rng, n, "ood")
    kept, count = [], 0
    for _ in range(1000):
        batch = _draw_box(system, rng, max(2 * n, 256), "ood")
        batch = batch[~in_box(system, batch, "train")]
        kept.append(batch)
        count += len(batch)
        if count >= n:
            return np.concatenate(kept)[:n]
    raise WarpPhysError(
        f"system {system.name!r}: fewer than 1 in 1000 draws from the OoD box fall outside "
        "the train box; widen the ood ranges"
    )
