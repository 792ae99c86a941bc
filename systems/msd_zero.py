"""Mass-spring-damper with a random initial state, (1, 0) + U(-0.5, 0.5)^2 (paper: MSD-Zero).

The physics and ranges are those of `msd`; only the initial state and the sizes differ.
"""

import warp_phys as wp


msd = wp.load_system("msd")
x, v = msd.state

system = msd.replace(
    name="msd-zero",
    description="mass-spring-damper, random initial state",
    initial_state={x: wp.Uniform(train=(0.5, 1.5)), v: wp.Uniform(train=(-0.5, 0.5))},
    sizes={"train": 8192, "val": 1024, "test": 2048},
    presets={
        # The quick settings from before the general preset clipped forecasts and slowed A.
        "quick": {"*": dict(final="none", clip_bound=38.0, lr=1e-4, a_lr_scale=1.0,
                            batch_size=64)},
        "paper": {"*": dict(final="clip", clip_bound=38.0, normalise="none")},
    },
)
