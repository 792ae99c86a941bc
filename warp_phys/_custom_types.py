"""Array shape aliases used across warp-phys (one place, as in `diffrax/_custom_types.py`).

Dimension names: `n` trajectories in a batch, `T` time steps, `d` state dimension,
`P` free (sampled) parameters, `R` random quantities (free parameters plus random
initial-state components).
"""

import numpy as np
from jaxtyping import Float, Int

Times = Float[np.ndarray, " T"]
States = Float[np.ndarray, "n T d"]
Params = Float[np.ndarray, "n P"]
Draws = Float[np.ndarray, "n R"]
InitialStates = Float[np.ndarray, "n d"]
Labels = Int[np.ndarray, " n"]
