import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np

from mlip_eqx.models.blocks.message_passing import message_coupling
from mlip_eqx.utils.precision_cache import cache_per_precision


def test_a_float64_call_after_a_float32_call_gets_float64_constants():
    calls = []

    @cache_per_precision(maxsize=4)
    def third(scale: float) -> np.ndarray:
        calls.append(scale)
        return np.asarray(jnp.asarray(scale) / 3, dtype=np.float64)

    with jax.enable_x64(False):
        low = third(1.0)
        assert third(1.0) is low  # cached within one precision
    with jax.enable_x64(True):
        high = third(1.0)
    assert abs(low - 1 / 3) > 1e-9  # float32 accuracy
    assert high == 1 / 3
    assert calls == [1.0, 1.0]


def test_message_couplings_are_float64_accurate_after_a_float32_model():
    # e3nn-jax computes these couplings in float32 while x64 is off: a plain
    # cache gave float64 models (converted mace-torch models) 6e-8 errors.
    args = (e3nn.Irreps("8x0e+8x1o+8x2e"), 3, e3nn.Irreps("0e+1o+2e+3o"))
    message_coupling.cache_clear()
    with jax.enable_x64(False):
        message_coupling(*args)
    with jax.enable_x64(True):
        after_float32 = message_coupling(*args)
    message_coupling.cache_clear()
    with jax.enable_x64(True):
        fresh = message_coupling(*args)
    assert after_float32 == fresh
