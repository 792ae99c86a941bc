"""The products with A that one recurrence step makes, each timed alone.

A training step of the paper's MSD model multiplies by A (D = 4898) twice per time step:
forward `theta @ A.T` (contracting A's columns) and backward `g @ A` (contracting its
rows); `A @ columns` is the forward product with theta stored as the columns of a
(D, batch) array instead, `(A @ theta.T).T` the same written on theta (XLA folds the
transposes back into the product's layout), and `transition(A)` what the recurrence runs
(on a CPU, the columns form behind optimisation barriers, copies included). This times
the five forms at several batch sizes (a large
batch gives the rate flops can be done at) beside a plain sum over A (the rate A can be
read at), all in one run, so that `train_step.py`'s gap to its floors can be traced to
the kernel that causes it.

    python benchmarks/products.py
    python benchmarks/products.py --batches 8 64 1024 --repeats 20

Prints JSON and writes benchmarks/results/products-<backend>.json.
"""

import argparse

import jax
import jax.numpy as jnp
import jax.random as jr

from _common import as_columns, machine, median_seconds, write_result
from warp_phys._recurrence import transition


D = 4898


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 64, 2048])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    A = jr.normal(jr.PRNGKey(1), (D, D), jnp.float32)
    read = median_seconds(jnp.sum, A, repeats=args.repeats)
    rows = []
    for batch in args.batches:
        x = jr.normal(jr.PRNGKey(0), (batch, D), jnp.float32)
        forms = (("theta @ A.T", lambda x, A: x @ A.T, x), ("g @ A", lambda x, A: x @ A, x),
                 # theta held as the columns of a (D, batch) array, as an array of its own
                 ("A @ columns", lambda c, A: A @ c, as_columns(x)),
                 # the same written on theta itself: XLA folds both transposes away
                 ("(A @ theta.T).T", lambda x, A: (A @ x.T).T, x),
                 # what the recurrence runs on a CPU: the columns form behind barriers
                 ("transition(A)", lambda x, A: transition(A)(x), x))
        for form, f, operand in forms:
            s = median_seconds(f, operand, A, repeats=args.repeats)
            rows.append({"batch": batch, "form": form, "milliseconds": round(s * 1e3, 3),
                         "tflops": round(2 * batch * D * D / s / 1e12, 4),
                         "a_read_gb_per_s": round(A.nbytes / s / 1e9, 2)})
    result = {"benchmark": "products",
              "command": "python benchmarks/products.py --batches "
                         + " ".join(map(str, args.batches)) + f" --repeats {args.repeats}",
              "machine": machine(), "D": D, "dtype": "float32",
              "sum_over_A_gb_per_s": round(A.nbytes / read / 1e9, 2), "results": rows}
    write_result(f"products-{jax.default_backend()}", result)


if __name__ == "__main__":
    main()
