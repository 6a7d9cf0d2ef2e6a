"""Host memory is reused from one CPU step to the next (Linux with glibc)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from mlip_eqx.utils.host_memory import KEEP_DEFAULTS_VARIABLE, _glibc_mallopt

# A jitted function with two 64 MiB temporary buffers (kept apart by the barrier):
# prints the median of the minor page faults of 10 calls after a warm-up, and the
# JAX setting. The median, because the reused heap still grows by a whole buffer
# in one of the first calls now and then (where a small block was placed above
# the freed ones), then stays: the steady state is what a training loop sees.
PAGE_FAULTS_PER_CALL = textwrap.dedent(
    """
    import json, resource, statistics
    import mlip_eqx
    import jax, jax.numpy as jnp

    def temporaries(x):
        sines, cosines = jax.lax.optimization_barrier((jnp.sin(x), jnp.cos(x)))
        return jnp.sum(sines * cosines)

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    step = jax.jit(temporaries)
    x = jnp.linspace(0.0, 1.0, 2**24, dtype=jnp.float32)
    for _ in range(3):
        step(x).block_until_ready()
    per_call = []
    for _ in range(10):
        before = faults()
        step(x).block_until_ready()
        per_call.append(faults() - before)
    print(json.dumps({
        "faults_per_call": statistics.median(per_call),
        "async_dispatch": jax.config.values["jax_cpu_enable_async_dispatch"],
    }))
    """
)


def run_calls(keep_defaults: bool) -> dict:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in (KEEP_DEFAULTS_VARIABLE, "XLA_FLAGS", "GLIBC_TUNABLES")
    }
    if keep_defaults:
        environment[KEEP_DEFAULTS_VARIABLE] = "1"
    result = subprocess.run(
        [sys.executable, "-c", PAGE_FAULTS_PER_CALL],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
        timeout=300,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(_glibc_mallopt() is None, reason="needs Linux with glibc")
def test_temporary_buffers_are_reused_between_calls():
    # 2 x 64 MiB are 32,768 pages of 4 KiB: glibc's defaults fault on all of
    # them in every call, the reused heap on none.
    defaults = run_calls(keep_defaults=True)
    reused = run_calls(keep_defaults=False)
    assert defaults["async_dispatch"] is True
    assert defaults["faults_per_call"] > 30000
    assert reused["async_dispatch"] is False
    assert reused["faults_per_call"] < 100
