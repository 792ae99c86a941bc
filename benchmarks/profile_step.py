"""Where one training step spends its time, op by op (CPU).

Runs a step compiled once ahead of time, once to warm up and once under
`jax.profiler.trace`: by default the paper's MSD step that `benchmarks/train_step.py`
times (`paper_step`: the step `warp-phys fit` compiles); with `--mode convolutional` (or
`recurrent-lv`) the lotka-volterra step `benchmarks/convolution.py` times. It sums the
trace's events per compiled XLA instruction and names each by the JAX operation it came
from (the instruction's `op_name` in the compiled HLO) and its shape. An instruction
inside the loop over time shows T - 1 calls. The instructions are also summed by kind
and by the JAX operation they came from (`by_operation`), since XLA makes one
instruction per copy of an operation (each block of a blocked product, for one).

XLA's CPU runtime leaves no event for some kernels (a dot it hands to Eigen, such as the
dA product), so their time appears as `untraced_seconds`: the step's wall time less the
time covered by any traced instruction.

    python benchmarks/profile_step.py --batch 64
    python benchmarks/profile_step.py --batch 256 --mode convolutional

Prints JSON and writes benchmarks/results/profile_step-<backend>-batch<B>.json (with
`-convolutional` or `-recurrent-lv` before `.json` for the lotka-volterra step).
"""

import argparse
import collections
import glob
import gzip
import itertools
import json
import re
import tempfile
import time

import jax
import jax.random as jr

from _common import machine, write_result
from convolution import lv_step
from train_step import D, T, paper_step

INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%(\S+) = (\S+?)(?:\{[^}]*\})? (?:.*?op_name="([^"]*)")?')


def labels(hlo: str) -> dict[str, tuple[str, str]]:
    """Instruction name -> (shape, op_name) for every instruction of the compiled HLO."""
    found = {}
    for line in hlo.splitlines():
        match = INSTRUCTION.match(line)
        if match:
            found[match[1]] = (match[2], match[3] or "")
    return found


def covered(intervals) -> float:
    """Total length of the union of (start, end) intervals."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--top", type=int, default=15, help="instructions to list")
    parser.add_argument("--mode", choices=["paper-msd", "convolutional", "recurrent-lv"],
                        default="paper-msd", help="which step to profile")
    args = parser.parse_args()
    if jax.default_backend() != "cpu":
        raise SystemExit("profile_step.py reads the CPU runtime's trace; run it on a CPU")

    if args.mode == "paper-msd":
        step, state, data = paper_step(args.batch)
        key = jr.PRNGKey(3)
        # One compiled executable both runs and names the instructions, so the names in
        # the trace are those of the HLO read here.
        step = step.lower(*state, *data, key, 0.25).compile()
        hlo = step.compiled.as_text()

        keys = (jr.fold_in(key, i) for i in itertools.count())

        def run(state):
            *state, loss = step(*state, *data, next(keys), 0.25)
            return state, loss
    else:
        step, state = lv_step(args.batch, args.mode.removesuffix("-lv"))
        hlo = step.as_text()

        def run(state):
            params, opt_state, loss = step(*state)
            return (params, opt_state, state[2]), loss

    state, loss = run(state)
    loss.block_until_ready()
    with tempfile.TemporaryDirectory() as directory:
        with jax.profiler.trace(directory):
            start = time.perf_counter()
            state, loss = run(state)
            loss.block_until_ready()
            wall = time.perf_counter() - start
        [path] = glob.glob(f"{directory}/plugins/profile/*/*.trace.json.gz")
        with gzip.open(path) as f:
            events = json.load(f)["traceEvents"]

    names = labels(hlo)
    events = [e for e in events if e.get("ph") == "X" and e["name"] in names]
    seconds, calls = collections.Counter(), collections.Counter()
    for event in events:
        seconds[event["name"]] += event["dur"] / 1e6
        calls[event["name"]] += 1
    traced = covered((e["ts"] / 1e6, (e["ts"] + e["dur"]) / 1e6) for e in events)
    # Instructions of one kind made by one JAX operation (the blocks of a blocked
    # product, say) summed together: XLA numbers each copy (`ynn_fusion.12`).
    grouped, members = collections.Counter(), collections.Counter()
    for name, total in seconds.items():
        group = (re.sub(r"\.\d+$", "", name), names[name][1])
        grouped[group] += total
        members[group] += 1
    result = {
        "benchmark": "profile_step",
        "command": f"python benchmarks/profile_step.py --batch {args.batch} --mode {args.mode}",
        "machine": machine(),
        "model": {"step": args.mode, "D_theta": D, "T": T, "batch": args.batch,
                  "dtype": "float32"},
        "wall_seconds": round(wall, 3),
        "traced_seconds": round(traced, 3),
        "untraced_seconds": round(wall - traced, 3),
        "instructions": [
            {"name": name, "seconds": round(total, 3), "calls": calls[name],
             "shape": names[name][0], "op_name": names[name][1]}
            for name, total in seconds.most_common(args.top)
        ],
        "by_operation": [
            {"kind": kind, "op_name": op_name, "seconds": round(total, 3),
             "instructions": members[kind, op_name]}
            for (kind, op_name), total in grouped.most_common(args.top)
        ],
    }
    suffix = "" if args.mode == "paper-msd" else f"-{args.mode}"
    write_result(f"profile_step-{jax.default_backend()}-batch{args.batch}{suffix}", result)


if __name__ == "__main__":
    main()
