"""The paper's Lotka-Volterra repeat-copy memory task, built on `lotka-volterra` data.

Input: the trajectory's first L steps (L uniform in [32, 63]), then zeros. Target: that
segment repeated with 50 zero steps between repeats. The paper normalises the target to
[-1, 1] with the training targets' global min and max; the data here stay in raw units.
"""

import warp_phys as wp


system = wp.load_system("lotka-volterra").replace(
    name="lotka-volterra-copy",
    description="repeat-copy memory task on Lotka-Volterra trajectories",
    task=wp.RepeatCopy(segment=(32, 63), gap=50),
    presets={
        # The copy task reads its inputs throughout (forcing 1), scaled to [-1, 1].
        "quick": {"*": dict(final="none", clip_bound=38.0, lr=1e-4, a_lr_scale=1.0,
                            batch_size=64, forcing=1.0, normalise="minmax")},
        "paper": {"*": dict(init="learned", epochs=1500, forcing=1.0, normalise="minmax")},
    },
)
