import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mlip_eqx.training.optimizer import (
    get_default_mlip_optimizer,
    get_learning_rate,
    get_mlip_optimizer_chain_with_flexible_base_optimizer,
    learning_rate_schedule,
    weight_decay_mask,
)
from mlip_eqx.training.optimizer_config import OptimizerConfig
from mlip_eqx.utils.config import ConfigError


def test_defaults_are_those_of_the_original_library():
    config = OptimizerConfig()
    assert config.apply_weight_decay_mask is True
    assert config.weight_decay == 0.0 and config.grad_norm == 500
    assert config.num_gradient_accumulation_steps == 1
    assert config.init_learning_rate == config.peak_learning_rate == 0.01
    assert config.final_learning_rate == 0.01
    assert config.warmup_steps == 4000 and config.transition_steps == 360000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("weight_decay", -1.0),
        ("num_gradient_accumulation_steps", 0),
        ("peak_learning_rate", 0.0),
        ("warmup_steps", -5),
        ("grad_norm", "big"),
    ],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"OptimizerConfig.{field}"):
        OptimizerConfig(**{field: value})


def test_warmup_then_linear_schedule_values():
    config = OptimizerConfig(
        init_learning_rate=0.001,
        peak_learning_rate=0.01,
        final_learning_rate=0.002,
        warmup_steps=10,
        transition_steps=20,
    )
    schedule = learning_rate_schedule(config)
    assert float(schedule(0)) == pytest.approx(0.001)
    assert float(schedule(5)) == pytest.approx(0.0055)
    assert float(schedule(10)) == pytest.approx(0.01)
    assert float(schedule(20)) == pytest.approx(0.006)
    assert float(schedule(30)) == pytest.approx(0.002)
    assert float(schedule(1000)) == pytest.approx(0.002)


def test_learning_rate_is_visible_in_the_state_and_follows_the_schedule():
    config = OptimizerConfig(init_learning_rate=0.001, warmup_steps=4)
    optimizer = get_default_mlip_optimizer(config)
    params = {"w": jnp.ones(3)}
    state = optimizer.init(params)
    rates = []
    for _ in range(5):
        _, state = optimizer.update({"w": jnp.ones(3)}, state, params)
        rates.append(float(get_learning_rate(state)))
    np.testing.assert_allclose(
        rates, [0.001, 0.00325, 0.0055, 0.00775, 0.01], rtol=1e-5
    )
    assert get_learning_rate(optax.sgd(0.1).init(params)) is None


def test_weight_decay_mask_is_the_networks_declaration_or_everything():
    from tests.helpers.models import force_field

    params = force_field("mace-tiny", predict_stress=False).params
    mask = weight_decay_mask(params)
    expected = eqx.tree_at(
        lambda tree: tree.network, params, params.network.weight_decay_mask()
    )
    assert jax.tree.leaves(mask) == jax.tree.leaves(expected)
    assert any(jax.tree.leaves(mask)) and not all(jax.tree.leaves(mask))
    # Names do not matter any more: a plain PyTree is decayed everywhere.
    plain = {"linear_down": jnp.ones(2), "b": {"c": jnp.ones(1)}}
    assert jax.tree.leaves(weight_decay_mask(plain)) == [True, True]


def test_weight_decay_applies_only_to_masked_leaves():
    from tests.helpers.models import force_field

    config = OptimizerConfig(weight_decay=0.5, warmup_steps=0)
    optimizer = get_mlip_optimizer_chain_with_flexible_base_optimizer(optax.sgd, config)
    params = force_field("mace-tiny", predict_stress=False).params
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = optimizer.update(zero, optimizer.init(params), params)
    mask = weight_decay_mask(params)
    for update, param, decayed in zip(
        jax.tree.leaves(updates), jax.tree.leaves(params), jax.tree.leaves(mask)
    ):
        expected = -0.01 * 0.5 * np.asarray(param) if decayed else 0.0
        np.testing.assert_allclose(update, expected, rtol=1e-6, atol=1e-12)


def test_gradient_clipping_at_grad_norm():
    config = OptimizerConfig(
        grad_norm=1.0,
        warmup_steps=0,
        init_learning_rate=1.0,
        peak_learning_rate=1.0,
        final_learning_rate=1.0,
    )
    optimizer = get_mlip_optimizer_chain_with_flexible_base_optimizer(optax.sgd, config)
    params = {"w": jnp.zeros(2)}
    updates, _ = optimizer.update(
        {"w": jnp.array([30.0, 40.0])}, optimizer.init(params), params
    )
    np.testing.assert_allclose(updates["w"], [-0.6, -0.8], rtol=1e-6)


def test_weight_decay_mask_on_real_mace_parameters():
    from tests.helpers.models import force_field

    params = force_field("mace", predict_stress=False).params
    mask = weight_decay_mask(params)
    paths = jax.tree_util.tree_leaves_with_path(mask)
    marked = [jax.tree_util.keystr(p) for p, value in paths if value]
    unmarked = [jax.tree_util.keystr(p) for p, value in paths if not value]
    assert any("linear_down" in p for p in marked)
    assert any("symmetric_contraction" in p for p in marked)
    assert all("linear_down" in p or "symmetric_contraction" in p for p in marked)
    assert any("embedding" in p for p in unmarked)
