"""A law with one term unknown: black-box WARP against the hybrid WARP-Phys on a system
that is not in the repository's built-ins, and the learned term against the true one.

    python benchmarks/unknown_term.py             # examples/friction_pendulum.py, quick preset

The data come from `examples/friction_pendulum.py` (friction 0.3 omega + 0.1 omega^3,
length per run); the hybrid model's law is `examples/friction_unknown.py`, whose friction
is `wp.Unknown("friction", omega)`. WARP-Phys refines the length on each context
(`--refine`, in training too). The recovered term is compared with the truth on the
samples where the training data go. Writes benchmarks/results/unknown_term-<system>.json.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

import warp_phys as wp
from _common import machine, write_result
from warp_phys._recover import recover_term

EXAMPLES = Path(__file__).parents[1] / "examples"


def truth(omega):
    return 0.3 * omega + 0.1 * omega**3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--refine", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args()
    data, law = str(EXAMPLES / "friction_pendulum.py"), str(EXAMPLES / "friction_unknown.py")
    result = {"command": "python benchmarks/unknown_term.py" + (
        f" --epochs {args.epochs}" if args.epochs != 12 else ""), "models": {}}
    configs = {
        "warp": wp.make_config(data, "quick", model="warp", epochs=args.epochs, seed=args.seed),
        "warp-phys-hybrid": wp.make_config(data, "quick", model="warp-phys", law=law,
                                           epochs=args.epochs, refine=args.refine,
                                           refine_training=True, seed=args.seed),
    }
    for name, config in configs.items():
        start = time.perf_counter()
        run = wp.fit(config, runs_dir=args.runs, progress=False)
        metrics = json.loads((run.path / "metrics.json").read_text())
        result["models"][name] = {
            "run": str(run.path), "seconds": time.perf_counter() - start,
            "seconds_per_epoch": metrics["seconds_per_epoch"],
            "mse": {s: v["mse"] for s, v in metrics["splits"].items()},
            "parameters": metrics.get("parameters"), "refine": metrics.get("refine")}
        print(name, result["models"][name]["mse"], flush=True)
        if name == "warp-phys-hybrid":
            model = run.load_model()
            term = recover_term(run.system, model.root.terms, model.root.shared,
                                run.data(["train"])["train"])
            omega = term.samples[0][:, 0]
            true = truth(omega)
            rms = lambda v: float(np.sqrt(np.mean(v**2)))  # noqa: E731
            result["term"] = {
                "recovered": str(term.expression), "ranges": term.ranges,
                "expression_vs_network": term.relative_error,
                "network_vs_truth": rms(term.samples[1] - true) / rms(true),
                "expression_vs_truth": rms(np.asarray(
                    [float(term.expression.subs(term.inputs[0], w)) for w in omega]) - true) / rms(true),
                "truth": "0.3*omega + 0.1*omega**3"}
    ood = {n: m["mse"]["test-ood"] for n, m in result["models"].items()}
    result["ood_ratio_warp_over_hybrid"] = ood["warp"] / ood["warp-phys-hybrid"]
    result["machine"] = machine()
    write_result("unknown_term-friction-pendulum", result)


if __name__ == "__main__":
    main()
