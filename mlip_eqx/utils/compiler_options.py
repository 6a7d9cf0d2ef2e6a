"""XLA compiler options that mlip_eqx passes to its own jitted functions."""

# On CPU, XLA (jaxlib 0.10) hands dots, reductions and elementwise ops to YNNPACK
# by default. For a training step (reductions over 3-35 components or 32 channels of
# ~10^4 edges in the first and second derivatives of the messages) XLA's own fused
# loops are faster: an empty list turns YNNPACK fusions off for our jitted steps
# (MACE train step 818 -> 368 ms on 2 cores; see benchmarks/README.md).
_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def compiler_options(platform: str) -> dict[str, str]:
    """Options for ``jax.jit(..., compiler_options=...)`` on ``platform``."""
    return dict(_CPU_OPTIONS) if platform == "cpu" else {}
