"""The law of benchmarks/measured.py's pendulum: what a scientist would write down for
measurements of a damped pendulum driven by a measured torque u (per unit inertia), with
the length and damping unknown per run."""

import sympy as sp

import warp_phys as wp


theta, omega, u = sp.symbols("theta omega u")
length = sp.Symbol("length", positive=True)
damping = sp.Symbol("damping", positive=True)

system = wp.System(
    name="pendulum-law",
    description="damped driven pendulum, g = 9.81, length and damping per run",
    state=[theta, omega],
    equations=[omega, -(9.81 / length) * sp.sin(theta) - damping * omega + u],
    controls={u: None},  # the file's u:u column
    parameters={
        # The ranges a grey-box model searches (its prior), wider than the training runs'.
        length: wp.Uniform(train=(0.5, 2.0), ood=(0.25, 3.0)),
        damping: wp.Uniform(train=(0.05, 0.5), ood=(0.0, 1.0)),
    },
    initial_state={theta: wp.Uniform(train=(-1.0, 1.0)), omega: 0.0},
    t_span=(0.0, 5.0), steps=100, context=40,
    # As msd's: trained fully autoregressively, so training sees the feedback loop through
    # the inferred parameters.
    presets={"quick": {wp.WARPPhysConfig: dict(forcing=0.0)}},
)
