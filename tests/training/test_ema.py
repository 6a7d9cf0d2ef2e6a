import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.training.ema import debiased_ema_params, ema_init, ema_update


def test_ema_and_bias_correction():
    decay = 0.9
    values = [1.0, 3.0, -2.0]
    state = ema_init({"w": jnp.zeros(2)}, decay)
    average = 0.0
    for step, value in enumerate(values, start=1):
        state = ema_update(state, {"w": jnp.full(2, value)})
        average = decay * average + (1 - decay) * value
        assert int(state.step) == step
        np.testing.assert_allclose(state.params_ema["w"], average, rtol=1e-6)
        debiased = debiased_ema_params(state)["w"]
        np.testing.assert_allclose(debiased, average / (1 - decay**step), rtol=1e-6)


def test_debiased_average_of_a_constant_is_the_constant():
    state = ema_init({"w": jnp.zeros(3)}, 0.99)
    for _ in range(4):
        state = ema_update(state, {"w": jnp.full(3, 2.5)})
    assert float(debiased_ema_params(state)["w"][0]) == pytest.approx(2.5, rel=1e-5)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_decay_outside_the_unit_interval_is_an_error(decay):
    with pytest.raises(ValueError, match="decay"):
        ema_init({"w": jnp.zeros(1)}, decay)
