# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Quickstart: from a SymPy declaration to in- and out-of-distribution data
#
# warp-phys starts from one declaration of a dynamical system. From it you get a JAX
# vector field, a closed form when the system has one, and datasets whose test splits
# are truly out of distribution. This notebook declares a damped pendulum, generates
# its splits, and checks where the out-of-distribution trajectories lie.
#
# Run it as a notebook (`jupytext --to ipynb notebooks/01_quickstart.py`) or as a
# script. `WARP_PHYS_SMALL=1` shrinks every size so it runs in seconds (the test suite
# does this).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp

import warp_phys as wp


SMALL = bool(os.environ.get("WARP_PHYS_SMALL"))
N = 16 if SMALL else 512

# %% [markdown]
# ## 1. Declare the system
#
# State, equations (d/dt of each state), parameters and initial states. A number fixes a
# parameter; a distribution draws it per trajectory, from its `train` range for training
# data and from its wider `ood` range for out-of-distribution tests.

# %%
theta, omega = sp.symbols("theta omega")
g, length, damping = sp.symbols("g length damping", positive=True)

pendulum = wp.System(
    name="pendulum",
    state=[theta, omega],
    equations=[omega, -(g / length) * sp.sin(theta) - damping * omega],
    parameters={
        g: 9.81,
        length: wp.Uniform(train=(0.5, 1.5), ood=(0.25, 2.0)),
        damping: wp.Uniform(train=(0.0, 0.3), ood=(0.0, 0.6)),
    },
    initial_state={theta: wp.Uniform(train=(-1.0, 1.0)), omega: 0.0},
    t_span=(0.0, 5.0),
    steps=200,
    context=50,
)
pendulum

# %% [markdown]
# Mistakes are caught when the system is built, with a message that says what to fix:

# %%
try:
    pendulum.replace(context=300)
except wp.WarpPhysError as error:
    print(error)

# %% [markdown]
# ## 2. What the compiler made of it
#
# The pendulum is nonlinear (`sin(theta)`), so it will be integrated with Diffrax. The
# built-in mass-spring-damper is linear in its state: warp-phys finds its matrix M(p)
# and solves it exactly with a matrix exponential.

# %%
compiled = wp.compile_system(pendulum)
msd = wp.load_system("msd")
msd_compiled = wp.compile_system(msd)
print("pendulum linear:", compiled.is_linear, "| msd linear:", msd_compiled.is_linear)
print("msd M(m=0.03, k=10, c=0.1) =\n", np.asarray(msd_compiled.matrix(np.array([0.03, 10.0, 0.1]))))
assert msd_compiled.is_linear and not compiled.is_linear

# %% [markdown]
# ## 3. Generate the splits
#
# `train`, `val` and `test-id` come from the train box; `test-ood` from the OoD box but
# outside the train box; `test-paper` from the whole OoD box (the paper's protocol).

# %%
data = {split: wp.generate(pendulum, split, N, seed=0, cache=False) for split in pendulum.splits}
for split, d in data.items():
    print(f"{split:>10}: y {d.y.shape}, params {d.param_names}")

# %% [markdown]
# Every test-ood trajectory has a parameter or initial angle outside its training range:

# %%
draws = np.concatenate([data["test-ood"].params, data["test-ood"].y0[:, :1]], axis=1)
outside = ~wp.in_box(pendulum, draws, "train")
print(f"test-ood outside the train box: {outside.mean():.0%}")
assert outside.all()

# %%
fig, (ax_params, ax_traj) = plt.subplots(1, 2, figsize=(11, 4))
for split, colour in [("train", "tab:blue"), ("test-ood", "tab:red")]:
    p = data[split].params
    ax_params.scatter(p[:, 0], p[:, 1], s=8, c=colour, label=split)
ax_params.add_patch(plt.Rectangle((0.5, 0.0), 1.0, 0.3, fill=False, ls="--", label="train box"))
ax_params.set(xlabel="length", ylabel="damping", title="parameter draws")
ax_params.legend()
for split, colour in [("train", "tab:blue"), ("test-ood", "tab:red")]:
    d = data[split]
    ax_traj.plot(d.t, d.y[:3, :, 0].T, c=colour, lw=1)
ax_traj.axvspan(d.t[0], d.t[pendulum.context - 1], color="grey", alpha=0.2, label="context")
ax_traj.set(xlabel="t", ylabel="theta", title="trajectories (blue: train, red: test-ood)")
ax_traj.legend()
fig.tight_layout()

# %% [markdown]
# ## 4. Save and load
#
# Datasets are an `.npz` of arrays plus a `.json` of metadata (no pickle). `generate`
# caches them by declaration hash, size and seed unless `cache=False`.

# %%
import tempfile  # noqa: E402

with tempfile.TemporaryDirectory() as folder:
    data["train"].save(f"{folder}/pendulum-train")
    loaded = wp.Dataset.load(f"{folder}/pendulum-train")
np.testing.assert_array_equal(loaded.y, data["train"].y)
loaded
