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
)
