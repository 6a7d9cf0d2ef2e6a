"""Simulations with JAX-MD (the optional extra ``md``: ``pip install
'mlip_eqx[md]'``)."""

try:
    import jax_md  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        "mlip_eqx.simulation.jax_md needs jax-md, mlip_eqx's optional extra 'md': "
        "pip install 'mlip_eqx[md]' (or pip install 'jax-md>=0.2.29,<0.3')."
    ) from error

from mlip_eqx.simulation.jax_md.jax_md_simulation_engine import (  # noqa: E402
    JaxMDSimulationEngine,
    NeighborListSkinError,
)

__all__ = ["JaxMDSimulationEngine", "NeighborListSkinError"]
