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
# # Your own data: from a CSV of noisy, irregular measurements to WARP-Phys and its parameters
#
# A scientist has a CSV of pendulum runs: angle and angular velocity logged about every
# 0.05 s, whenever the logger fired (each run at times of its own), with sensor noise and
# with gaps where the logger missed a sample, and the length of each pendulum noted down. They know the law of a
# damped pendulum but not each run's length and damping. This notebook goes from that file
# to a fitted WARP-Phys model, its forecasts, and the parameters it infers from the first
# two seconds of each run, out of distribution included.
#
# The file is made here (section 1) so the notebook runs anywhere; with your own data,
# start at section 2. `WARP_PHYS_SMALL=1` shrinks every size so the notebook runs in
# seconds (the documentation build does this).

# %%
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import sympy as sp

import warp_phys as wp

SMALL = bool(os.environ.get("WARP_PHYS_SMALL"))
work = Path(tempfile.mkdtemp(prefix="warp-phys-measured-"))  # or any folder of yours

# %% [markdown]
# ## 1. A file of measurements
#
# Stand-in for a logger: a declaration with observation noise (`noise=`, a
# `wp.Gaussian` per state, drawn from a random stream of its own; the clean trajectories
# stay in `extras["clean"]`), 15% of the samples missed and every sample up to half a
# step early (`sampling=wp.Sampling(drop=0.15, jitter=0.5)`), written out in the long
# format `warp-phys` reads, one row per observation at its own time (a missed sample has
# no row), with the known length as a `p:` column and a `split` column that sets longer
# and shorter pendulums than any training run aside as `test-ood`.

# %%
theta, omega = sp.symbols("theta omega")
length, damping = sp.symbols("length damping", positive=True)
logger = wp.System(
    name="pendulum-runs", state=[theta, omega],
    equations=[omega, -(9.81 / length) * sp.sin(theta) - damping * omega],
    parameters={length: wp.Uniform(train=(0.75, 1.5), ood=(0.4, 2.5)),
                damping: wp.Uniform(train=(0.1, 0.3))},
    initial_state={theta: wp.Uniform(train=(-1.0, 1.0)), omega: 0.0},
    noise={theta: wp.Gaussian(std=0.02), omega: wp.Gaussian(std=0.05)},
    sampling=wp.Sampling(drop=0.15, jitter=0.5),
    t_span=(0.0, 5.0), steps=101, context=40,
)
sizes = {"train": 16, "val": 8, "test-id": 8, "test-ood": 8} if SMALL else {
    "train": 256, "val": 64, "test-id": 128, "test-ood": 128}
rows = []
for split, n in sizes.items():
    data = wp.generate(logger, split, n, seed=0, cache=False)
    for i in range(n):
        rows.append(pd.DataFrame({"trajectory": f"{split}-{i}", "t": data.extras["times"][i],
                                  "theta": data.y[i, :, 0], "omega": data.y[i, :, 1],
                                  "p:length": data.params[i, 0], "split": split}))
csv = work / "pendulum.csv"
pd.concat(rows).dropna(subset=["theta", "omega"]).to_csv(csv, index=False)
pd.read_csv(csv).head()

# %% [markdown]
# ## 2. Read it
#
# `wp.read_trajectories` checks the file (a missing column, times that go back or a split
# with no runs is one line naming the file, the line and the column), keeps each run's
# own sample times (they lie on no common grid: `extras["times"]`, which every model reads
# beside the states), and returns a `Dataset` per split. A run that missed samples is
# shorter; the samples after its last are missing values (models read the last value
# seen, losses and metrics skip them).

# %%
measured = wp.read_trajectories(csv)
for split, dataset in measured.items():
    print(f"{split:>9}: {len(dataset)} runs, at most {dataset.y.shape[1]} samples each, "
          f"{dataset.meta['missing'] // 2} padding samples, "
          f"lengths {dataset.params[:, 0].min():.2f}-{dataset.params[:, 0].max():.2f} m")
fig, ax = plt.subplots(figsize=(9, 3.2))
for split, colour in [("train", "tab:blue"), ("test-ood", "tab:red")]:
    ax.plot(measured[split].extras["times"][:3].T, measured[split].y[:3, :, 0].T, c=colour, lw=0.8)
ax.axvspan(0, measured["train"].extras["times"][0, 39], color="grey", alpha=0.2)
ax.set(xlabel="t (s)", ylabel="theta (rad)", title="measured angle: train (blue), test-ood (red)")
assert set(measured) == set(sizes) and measured["train"].param_names == ("length",)
assert wp.load_system(csv).timed  # each run keeps its own times

# %% [markdown]
# ## 3. The law you know
#
# A declaration whose state names are the file's columns. Its parameter ranges are the
# model's prior, wider than the training runs; the file's grid and sizes replace its
# own. `forcing=0` trains WARP-Phys fully autoregressively, as the msd preset does; the
# physics runs from each sample's own time to the next sample's.

# %%
law = work / "pendulum_law.py"
law.write_text('''
import sympy as sp
import warp_phys as wp

theta, omega = sp.symbols("theta omega")
length, damping = sp.symbols("length damping", positive=True)
system = wp.System(
    name="pendulum-law", state=[theta, omega],
    equations=[omega, -(9.81 / length) * sp.sin(theta) - damping * omega],
    parameters={length: wp.Uniform(train=(0.5, 2.0), ood=(0.25, 3.0)),
                damping: wp.Uniform(train=(0.05, 0.5), ood=(0.0, 1.0))},
    initial_state={theta: wp.Uniform(train=(-1.0, 1.0)), omega: 0.0},
    t_span=(0.0, 5.0), steps=100, context=40,
    presets={"quick": {wp.WARPPhysConfig: dict(forcing=0.0)}},
)
''')

# %% [markdown]
# ## 4. WARP-Phys on the file
#
# The same as `warp-phys fit pendulum.csv --law pendulum_law.py --model warp-phys`.

# %%
epochs = dict(epochs=2, batch_size=8) if SMALL else dict(epochs=40)
config = wp.make_config(str(csv), "quick", model="warp-phys", law=str(law), **epochs)
run = wp.fit(config, runs_dir=work / "runs", progress=not SMALL)
for split, m in run.metrics["splits"].items():
    print(f"{split}: forecast MSE {m['mse']:.4g} (naive {m['naive_mse']:.4g})")

# %% [markdown]
# ## 5. Forecasts and inferred parameters
#
# `wp.predict` (or `warp-phys predict RUN test-ood --out forecasts.csv`) forecasts each
# run from its context and, for a grey-box model, returns what it inferred of each run's
# parameters beside the noted-down ones.

# %%
forecasts, parameters = wp.predict(run, "test-ood")
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
one = forecasts[forecasts["trajectory"] == forecasts["trajectory"].iloc[0]]
axes[0].plot(one["t"], one["true:theta"], "k", lw=1, label="measured")
axes[0].plot(one["t"], one["theta"], "C1--", lw=1.2, label="WARP-Phys")
axes[0].axvspan(0, one["t"][one["part"] == "context"].max(), color="grey", alpha=0.2)
axes[0].set(xlabel="t (s)", ylabel="theta (rad)", title="a test-ood run")
axes[0].legend()
axes[1].scatter(parameters["true:length"], parameters["inferred:length"], s=10)
span = [parameters["true:length"].min(), parameters["true:length"].max()]
axes[1].plot(span, span, "k:", lw=1)
axes[1].set(xlabel="noted-down length (m)", ylabel="inferred length (m)",
            title="length inferred from the 2 s context")
fig.tight_layout()
assert {"inferred:length", "true:length", "inferred:damping"} <= set(parameters.columns)

# %% [markdown]
# How well this works at full size, against black-box WARP on the same kind of file
# (made by SciPy, with the same noise): [Your own data](../data.md).

# %%
shutil.rmtree(work)
assert not work.exists()
plt.show()
