"""What every benchmark records: the machine it ran on, and its JSON result file."""

import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import warp_phys as wp


RESULTS = Path(__file__).parent / "results"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ('' where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name")), "")
    except OSError:
        return ""


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpu": cpu_model(), "cpus": os.cpu_count(), "device": str(jax.devices()[0]),
            "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__,
            "warp_phys": wp.__version__}


def timings(f, *args, repeats: int = 5, calls: int = 1) -> list[float]:
    """Seconds per call of the jitted `f(*args)` after compilation, for each of `repeats`
    timings of `calls` back-to-back calls (several calls amortise dispatch for kernels of a
    few milliseconds)."""
    f = jax.jit(f)
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            out = f(*args)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - start) / calls)
    return times


def median_seconds(f, *args, repeats: int = 5, calls: int = 1) -> float:
    """The median of `timings`: what a call of `f` typically takes."""
    return float(np.median(timings(f, *args, repeats=repeats, calls=calls)))


def best_seconds(f, *args, repeats: int = 5, calls: int = 1) -> float:
    """The least of `timings`: what the machine can do, for a floor (a shared machine
    runs slower at times, never faster)."""
    return float(np.min(timings(f, *args, repeats=repeats, calls=calls)))


def as_columns(x):
    """x (B, D) held as the columns of a (D, B) array of its own (a real copy, so no
    transpose is left for XLA to fold into a product's layout)."""
    return jnp.asarray(np.asarray(x).T.copy())


def write_result(name: str, result: dict) -> Path:
    """Print `result` as JSON and write it to `benchmarks/results/<name>.json` atomically."""
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(out)
    return out
