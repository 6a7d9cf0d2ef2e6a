import jax
import jax.numpy as jnp
import numpy as np

from mlip_eqx.utils.compiler_options import (
    KEEP_XLA_DEFAULTS_VARIABLE,
    compiler_options,
)


def test_cpu_options_compile_and_do_not_change_results(monkeypatch):
    monkeypatch.delenv(KEEP_XLA_DEFAULTS_VARIABLE, raising=False)
    options = compiler_options("cpu")
    assert options == {"xla_cpu_experimental_ynn_fusion_type": ""}
    assert compiler_options("gpu") == {}

    def function(x):
        return jnp.sum(jnp.sin(x) @ x.T, axis=0)

    x = jnp.linspace(0.0, 1.0, 60).reshape(6, 10)
    np.testing.assert_allclose(
        jax.jit(function, compiler_options=options)(x), jax.jit(function)(x), rtol=1e-6
    )


def test_environment_variable_keeps_xla_defaults(monkeypatch):
    monkeypatch.setenv(KEEP_XLA_DEFAULTS_VARIABLE, "1")
    assert compiler_options("cpu") == {}
