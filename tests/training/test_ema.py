import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.training.ema import (
    EMAState,
    biased_to_debiased,
    debiased_ema_params,
    ema_init,
    ema_update,
)


def test_ema_and_bias_correction():
    decay = 0.9
    values = [1.0, 3.0, -2.0]
    state = ema_init({"w": jnp.zeros(2)}, decay)
    average = 0.0
    for step, value in enumerate(values, start=1):
        state = ema_update(state, {"w": jnp.full(2, value)})
        average = decay * average + (1 - decay) * value
        assert int(state.step) == step
        debiased = debiased_ema_params(state)["w"]
        np.testing.assert_allclose(debiased, average / (1 - decay**step), rtol=1e-6)


def test_debiased_average_of_a_constant_is_exactly_the_constant():
    # Frozen parameters keep their bits in the average (fine-tuning).
    constant = jnp.asarray(np.random.default_rng(0).normal(size=50), jnp.float32)
    state = ema_init({"w": jnp.zeros(50)}, 0.99)
    update = eqx.filter_jit(ema_update)
    for _ in range(200):
        state = update(state, {"w": constant})
    assert debiased_ema_params(state)["w"].tobytes() == constant.tobytes()


def test_checkpoints_of_the_plain_average_convert():
    decay, values = 0.9, [1.0, 3.0, -2.0]
    state = ema_init({"w": jnp.zeros(2)}, decay)
    average = 0.0
    for value in values:
        state = ema_update(state, {"w": jnp.full(2, value)})
        average = decay * average + (1 - decay) * value
    old_form = EMAState({"w": jnp.full(2, average)}, state.step, decay)
    np.testing.assert_allclose(
        biased_to_debiased(old_form).params_ema["w"], state.params_ema["w"], rtol=1e-6
    )


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_decay_outside_the_unit_interval_is_an_error(decay):
    with pytest.raises(ValueError, match="decay"):
        ema_init({"w": jnp.zeros(1)}, decay)


def test_float64_average_uses_the_exact_decay():
    # The weight is computed in the parameters' dtype: a float32 decay would
    # average float64 parameters with 0.99000000954 instead of 0.99.
    with jax.enable_x64(True):
        decay, values = 0.99, np.random.default_rng(1).normal(size=30)
        state = ema_init({"w": jnp.zeros(1, jnp.float64)}, decay)
        average = 0.0
        for value in values:
            state = ema_update(state, {"w": jnp.full(1, value, jnp.float64)})
            average = decay * average + (1 - decay) * value
        expected = average / (1 - decay ** len(values))
        assert state.params_ema["w"].dtype == jnp.float64
        np.testing.assert_allclose(state.params_ema["w"], expected, rtol=1e-13)
        old_form = EMAState({"w": jnp.full(1, average)}, state.step, decay)
        converted = biased_to_debiased(old_form).params_ema["w"]
        np.testing.assert_allclose(converted, expected, rtol=1e-13)
