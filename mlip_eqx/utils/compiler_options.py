"""XLA compiler options that mlip_eqx passes to its own jitted functions."""

import os

# On CPU, XLA (jaxlib 0.10) hands dots, reductions and elementwise ops to YNNPACK
# by default. For a training step (reductions over 3-35 components or 32 channels of
# ~10^4 edges in the first and second derivatives of the messages) XLA's own fused
# loops are faster: an empty list turns YNNPACK fusions off for our jitted steps
# (see benchmarks/README.md for the measured difference).
_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}

KEEP_XLA_DEFAULTS_VARIABLE = "MLIP_EQX_KEEP_XLA_DEFAULTS"
"""Set this environment variable to 1 to compile with XLA's default options."""


def compiler_options(platform: str) -> dict[str, str]:
    """Options for ``jax.jit(..., compiler_options=...)`` on ``platform``."""
    if os.environ.get(KEEP_XLA_DEFAULTS_VARIABLE, "0") == "1":
        return {}
    return dict(_CPU_OPTIONS) if platform == "cpu" else {}
