"""A pendulum with a nonlinear friction law, f(omega) = 0.3 omega + 0.1 omega^3, and a
length of its own per run: the complete declaration, which generates the data that
`friction_unknown.py` models with the friction written as an unknown term."""

import sympy as sp

import warp_phys as wp


theta, omega = sp.symbols("theta omega")
length = sp.Symbol("length", positive=True)

system = wp.System(
    name="friction-pendulum",
    description="pendulum with friction 0.3 omega + 0.1 omega^3, g = 9.81, length per run",
    state=[theta, omega],
    equations=[omega, -(9.81 / length) * sp.sin(theta) - (0.3 * omega + 0.1 * omega**3)],
    parameters={length: wp.Uniform(train=(0.5, 1.5), ood=(0.25, 2.5))},
    initial_state={theta: wp.Uniform(train=(-1.5, 1.5)), omega: 0.0},
    t_span=(0.0, 8.0), steps=160, context=50,
    sizes={"train": 1024, "val": 256, "test": 256},
)
