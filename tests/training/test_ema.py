import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.training.ema import debiased_ema_params, ema_init, ema_update


def test_ema_and_bias_correction():
    decay = 0.9
    values = [1.0, 3.0, -2.0]
    state = ema_init({"w": jnp.zeros(2)})
    average = 0.0
    for step, value in enumerate(values, start=1):
        state = ema_update(state, {"w": jnp.full(2, value)}, decay)
        average = decay * average + (1 - decay) * value
        assert int(state.step) == step
        np.testing.assert_allclose(state.params_ema["w"], average, rtol=1e-6)
        debiased = debiased_ema_params(state, decay)["w"]
        np.testing.assert_allclose(debiased, average / (1 - decay**step), rtol=1e-6)


def test_debiased_average_of_a_constant_is_the_constant():
    state = ema_init({"w": jnp.zeros(3)})
    for _ in range(4):
        state = ema_update(state, {"w": jnp.full(3, 2.5)}, 0.99)
    assert float(debiased_ema_params(state, 0.99)["w"][0]) == pytest.approx(
        2.5, rel=1e-5
    )
