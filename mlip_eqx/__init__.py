"""mlip_eqx: train machine-learned interatomic potentials in JAX with Equinox."""

from mlip_eqx.utils.host_memory import reuse_host_memory

__version__ = "0.1.0"

# Before any JAX computation: one CPU step's memory serves the next (see
# mlip_eqx.utils.host_memory; MLIP_EQX_KEEP_HOST_MEMORY_DEFAULTS=1 turns it off).
reuse_host_memory()
