"""What every benchmark records: the machine it ran on, and its JSON result file."""

import json
import os
import platform
from pathlib import Path

import jax

import warp_phys as wp


RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpus": os.cpu_count(), "device": str(jax.devices()[0]),
            "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__,
            "warp_phys": wp.__version__}


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
