"""Mass-spring-damper with a random initial state, (1, 0) + U(-0.5, 0.5)^2 (paper: MSD-Zero)."""

import sympy as sp

import warp_phys as wp


x, v = sp.symbols("x v")
m, k, c = sp.symbols("m k c", positive=True)

system = wp.System(
    name="msd-zero",
    description="mass-spring-damper, random initial state",
    state=[x, v],
    equations=[v, -(k * x + c * v) / m],
    parameters={
        m: wp.Uniform(train=(0.02, 0.04), ood=(0.01, 0.05)),
        k: wp.Uniform(train=(4.0, 16.0), ood=(2.0, 18.0)),
        c: wp.Uniform(train=(0.01, 0.2), ood=(0.01, 0.3)),
    },
    initial_state={x: wp.Uniform(train=(0.5, 1.5)), v: wp.Uniform(train=(-0.5, 0.5))},
    t_span=(0.0, 1.0),
    steps=256,
    context=100,
    sizes={"train": 8192, "val": 1024, "test": 2048},
    units={x: "m", v: "m/s", m: "kg", k: "N/m", c: "N s/m"},
)
