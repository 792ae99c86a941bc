"""The law a scientist would write for `friction_pendulum.py`'s runs who knows gravity
and that each run has a length of its own, but not how the pendulum's friction depends on
its angular velocity: that term is unknown, for the models to learn.

    warp-phys fit examples/friction_pendulum.py --model warp-phys --law examples/friction_unknown.py
"""

import sympy as sp

import warp_phys as wp


theta, omega = sp.symbols("theta omega")
length = sp.Symbol("length", positive=True)
friction = wp.Unknown("friction", omega)

system = wp.System(
    name="friction-unknown",
    description="pendulum, g = 9.81, length per run, friction an unknown function of omega",
    state=[theta, omega],
    equations=[omega, -(9.81 / length) * sp.sin(theta) - friction],
    parameters={length: wp.Uniform(train=(0.5, 1.5), ood=(0.25, 2.5))},
    initial_state={theta: wp.Uniform(train=(-1.5, 1.5)), omega: 0.0},
    t_span=(0.0, 8.0), steps=160, context=50,
    presets={"quick": {wp.WARPPhysConfig: dict(forcing=0.0)}},
)
