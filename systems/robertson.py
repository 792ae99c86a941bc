"""Robertson's chemical kinetics: three species, rate constants eleven orders apart (stiff).

The classic test of stiff solvers (Hairer and Wanner, Solving ODEs II, section IV.1), on
t in [0, 400] (ten times its usual interval), with the slow rate k1 drawn per trajectory. The
declaration names its implicit solver, so generation and grey-box models solve with
Kvaerno5; without it, generation finds the stiffness itself and warns
(`python benchmarks/stiff.py` measures all three).
"""

import diffrax
import sympy as sp

import warp_phys as wp


a, b, c = sp.symbols("a b c")
k1, k2, k3 = sp.symbols("k1 k2 k3", positive=True)

system = wp.System(
    name="robertson",
    description="stiff chemical kinetics A -> B, 2B -> B + C, B + C -> A + C (Kvaerno5)",
    state=[a, b, c],
    equations=[
        -k1 * a + k3 * b * c,
        k1 * a - k3 * b * c - k2 * b**2,
        k2 * b**2,
    ],
    parameters={
        k1: wp.Uniform(train=(0.03, 0.05), ood=(0.02, 0.06)),
        k2: 3e7,
        k3: 1e4,
    },
    initial_state={a: 1.0, b: 0.0, c: 0.0},
    t_span=(0.0, 400.0),
    steps=100,
    context=30,
    sizes={"train": 1024, "val": 256, "test": 256},
    solver=diffrax.Kvaerno5(),
)
