"""How much of a WARP-Phys model's forecast error is inference error: its forecasts against
forecasts by the same physics with the parameters fitted to each sequence's context.

    python benchmarks/context_fit.py runs/msd/warp-phys/<timestamp>

For every test split: the run's own forecast MSE (the model as `warp-phys evaluate`
scores it), then the MSE when the physical parameters are instead fitted to the context
by Levenberg-Marquardt (least squares on the root's one-step forecasts inside the context,
starting from what the model inferred, held constant over the forecast window), and the
median relative error of the identifiable quantities (the varying entries of M(p) for a
linear system, the unknowns otherwise) for both. The fit uses the data itself and no
learning: it is a reference for what the declared physics allows, not a model.

Writes benchmarks/results/context_fit-<system>-<model>-e<epochs>-seed<seed>.json.
"""

import argparse
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import warp_phys as wp
from _common import machine, write_result
from warp_phys._evaluate import trajectory_errors
from warp_phys._greybox import encode, identified


# jax.scipy.linalg.expm differentiated under vmap hung (all XLA CPU workers idle) at 256
# sequences per call on the 2-core development CPU (jax 0.10.2), never at 64.
CHUNK = 32


def fit_and_forecast(root, u0, xs, context: int, steps: int, iterations: int):
    """Levenberg-Marquardt on the unknowns `u` of one sequence `xs` (model units, (T, d)),
    then the forecast of steps `context..T-1` under the fitted parameters. Returns
    (fitted p, forecasts)."""
    taus = jnp.arange(steps) / (steps - 1)
    # Forward mode is ~15x faster here, but a Diffrax solve has a custom VJP and no JVP.
    jacobian = jax.jacfwd if root.flow.forward_mode else jax.jacrev

    def one_step(p, k, x):  # the root's output at step k: its forecast of step k + 1
        return root.predict(p, taus[k + 1], x, xs[0])

    def residuals(u):
        p = root.transform(u)
        ks = jnp.arange(context - 1)
        return (jax.vmap(lambda k: one_step(p, k, xs[k]))(ks) - xs[1:context]).ravel()

    def iterate(carry, _):
        u, damping = carry
        r = residuals(u)
        jac = jacobian(residuals)(u)
        h, g = jac.T @ jac, jac.T @ r
        step = jnp.linalg.solve(h + damping * (jnp.diag(jnp.diag(h)) + 1e-9 * jnp.eye(len(u))), g)
        trial = u - step
        better = jnp.sum(residuals(trial) ** 2) < jnp.sum(r**2)
        return (jnp.where(better, trial, u), jnp.where(better, damping / 3, damping * 4)), None

    (u, _), _ = jax.lax.scan(iterate, (u0, jnp.asarray(1e-2, u0.dtype)), None, length=iterations)
    p = root.transform(u)

    def rollout(x, k):
        y = one_step(p, k, x)
        return y, y

    _, forecasts = jax.lax.scan(rollout, xs[context - 1], jnp.arange(context - 1, steps - 1))
    return p, forecasts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    try:
        run = wp.Run.open(args.run)
    except wp.WarpPhysError as error:
        parser.exit(2, f"context_fit.py: {error}\n")
    if not run.config.model.grey_box:
        parser.exit(2, f"context_fit.py: {args.run} is a {run.config.model.name} run; it needs a "
                       "warp-phys run\n")
    model = run.load_model()
    root = model.root
    if root.classes:
        parser.exit(2, "context_fit.py: a classifier has no forecast to compare\n")
    system = run.system
    splits = [s for s in system.splits if s.startswith("test")]
    data = run.data(["train", *splits])
    trained = identified(root, data.pop("train").params)
    low, high = trained.min(axis=0), trained.max(axis=0)
    solve = eqx.filter_jit(eqx.filter_vmap(
        fit_and_forecast, in_axes=(None, 0, 0, None, None, None)))
    result = {"run": str(args.run), "system": system.name, "iterations": args.iterations,
              "command": f"python benchmarks/context_fit.py {args.run}",
              "run_config": run.config.to_json(), "splits": {}}
    for split, dataset in data.items():
        x = run.normaliser(dataset.inputs).astype(np.float32)
        context, steps = dataset.context, x.shape[1]
        start = time.perf_counter()
        inferred = wp.inferred_parameters(model, x, context)
        u0 = jax.vmap(lambda p: encode(root, p))(jnp.asarray(inferred))
        u0 = jnp.clip(u0, -5 * root.reach, 5 * root.reach)  # arctanh at the bound
        fitted, forecasts = [], []
        for i in range(0, len(x), CHUNK):
            p, f = solve(root, u0[i : i + CHUNK], jnp.asarray(x[i : i + CHUNK]), context, steps,
                         args.iterations)
            fitted.append(np.asarray(p))
            forecasts.append(np.asarray(f))
        fitted, forecasts = np.concatenate(fitted), np.concatenate(forecasts)
        seconds = time.perf_counter() - start
        truth = dataset.targets[:, context:]
        fitted_err = np.mean((run.normaliser.inverse(forecasts.astype(np.float64)) - truth) ** 2,
                             axis=(1, 2))
        model_err = trajectory_errors(model, dataset, run.normaliser, run.task)
        true_q = identified(root, dataset.params)
        varying = np.ptp(true_q, axis=0) > 0

        def median_relative(q):
            return float(np.median(np.abs(q[:, varying] / true_q[:, varying] - 1)))

        outside = np.any((true_q < low) | (true_q > high), axis=1)
        result["splits"][split] = {
            "n": len(x),
            # Sequences whose identifiable quantities lie outside the range the training
            # split spans, and their share of the model's summed error.
            "n_outside_training_range": int(outside.sum()),
            "model_error_share_outside": float(model_err[outside].sum() / model_err.sum()),
            "model_mse": float(np.mean(model_err)),
            "fitted_mse": float(np.mean(fitted_err)),
            "fitted_max_mse": float(np.max(fitted_err)),
            "model_median_relative_error": median_relative(identified(root, inferred)),
            "fitted_median_relative_error": median_relative(identified(root, fitted)),
            "fit_seconds": seconds,
        }
    result["machine"] = machine()
    config = run.config
    write_result(f"context_fit-{system.name}-{config.model.name}-e{config.training.epochs}-seed{config.seed}",
                 result)


if __name__ == "__main__":
    main()
