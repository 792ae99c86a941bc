"""Sine waves with a random phase, declared by their closed form (paper: SINE).

Train and test share one phase range: this task measures data efficiency (train on
1, 10, 100, 1000 or 10000 sequences), not out-of-distribution generalisation.
"""

import sympy as sp

import warp_phys as wp


t = sp.Symbol("t")
x = sp.Symbol("x")
phase = sp.Symbol("phase")

system = wp.System(
    name="sine",
    description="sin(2 pi t + phase), 16 steps, closed form",
    state=[x],
    solution=[sp.sin(2 * sp.pi * t + phase)],
    parameters={phase: wp.Uniform(train=(-float(sp.pi) / 6, float(sp.pi) / 6))},
    t_span=(0.0, 1.0),
    steps=16,
    context=1,
    sizes={"train": 10000, "val": 1000, "test": 1000},
)
