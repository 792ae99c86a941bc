import jax


# As in Equinox's own suite: float64 where the numerics need it, and two fake CPU devices
# so sharded code paths run on a CPU-only machine. Both must be set before JAX starts.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_num_cpu_devices", 2)
