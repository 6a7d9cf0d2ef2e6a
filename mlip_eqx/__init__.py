"""mlip_eqx: train machine-learned interatomic potentials in JAX with Equinox."""

__version__ = "0.1.0"
