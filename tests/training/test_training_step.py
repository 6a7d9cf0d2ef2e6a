import dataclasses
import doctest
import textwrap

import jax
import numpy as np
import optax
import pytest

from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.graph import batch_graphs, stack_graphs
from mlip_eqx.models import ForceField
from mlip_eqx.models.loss import MSELoss
from mlip_eqx.models.loss.reductions import reduce_metrics
from mlip_eqx.testing.structures import random_system
from mlip_eqx.training import training_step as training_step_module
from mlip_eqx.training.ema import debiased_ema_params
from mlip_eqx.training.optimizer import (
    get_default_mlip_optimizer,
    get_mlip_optimizer_chain_with_flexible_base_optimizer,
)
from mlip_eqx.training.optimizer_config import OptimizerConfig
from mlip_eqx.training.training_state import init_training_state
from mlip_eqx.training.training_step import make_eval_step, make_train_step
from tests.helpers.models import DATASET_INFO
from tests.helpers.pair_network import PairNetwork
from tests.helpers.subprocesses import run_script

TABLE = species_table(DATASET_INFO.allowed_atomic_numbers)
N_NODE, N_EDGE, N_GRAPH = 33, 3000, 5


def make_batches(seed, count, structures_per_batch=None):
    """``count`` padded batches of 2-4 (or ``structures_per_batch``) random
    labelled structures each."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        size = structures_per_batch or rng.integers(2, 5)
        systems = [random_system(rng, int(rng.integers(3, 9))) for _ in range(size)]
        graphs = [
            graph_from_chemical_system(s, DATASET_INFO.cutoff_distance_angstrom, TABLE)
            for s in systems
        ]
        batches.append(batch_graphs(graphs, N_NODE, N_EDGE, N_GRAPH))
    return batches


@pytest.fixture(scope="module")
def force_field():
    network = PairNetwork(PairNetwork.Config(), DATASET_INFO, key=jax.random.key(3))
    return ForceField(network, predict_stress=True)


def sgd_config(steps):
    return OptimizerConfig(
        num_gradient_accumulation_steps=steps,
        warmup_steps=0,
        init_learning_rate=0.05,
        peak_learning_rate=0.05,
        final_learning_rate=0.05,
    )


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(tree)])


def test_step_updates_state_metrics_and_keeps_the_callers_force_field(force_field):
    optimizer = get_default_mlip_optimizer(OptimizerConfig(warmup_steps=0))
    before = flat(force_field.params)
    state = init_training_state(force_field, optimizer, ema_decay=0.9)
    train_step = make_train_step(force_field, MSELoss(), optimizer)
    batch = stack_graphs(make_batches(0, 1))
    state, metrics = train_step(state, batch, 0)
    metrics = reduce_metrics([metrics])
    assert set(metrics) >= {
        "loss",
        "gradient_norm",
        "param_update_norm",
        "skipped_updates",
        "learning_rate",
    }
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert int(state.num_steps) == 1 and int(state.ema_state.step) == 1
    # The donated state held copies: the caller's force field is intact.
    np.testing.assert_array_equal(flat(force_field.params), before)
    assert not np.allclose(flat(state.params), before)
    # After one EMA step the debiased average equals the parameters.
    np.testing.assert_allclose(
        flat(debiased_ema_params(state.ema_state)), flat(state.params), rtol=1e-5
    )
    eval_step = make_eval_step(force_field, MSELoss())
    eval_metrics = reduce_metrics([eval_step(state.params, batch, 0)])
    assert {"loss", "mae_e", "rmse_e", "mae_f", "rmse_f"} <= set(eval_metrics)


def test_non_finite_gradients_skip_the_update(force_field):
    optimizer = get_default_mlip_optimizer(OptimizerConfig(warmup_steps=0))
    train_step = make_train_step(force_field, MSELoss(), optimizer)
    state = init_training_state(force_field, optimizer)
    good = make_batches(1, 1)[0]
    state, _ = train_step(state, stack_graphs([good]), 0)
    before = jax.tree.map(np.asarray, state)
    broken = dataclasses.replace(good, positions=good.positions.copy())
    broken.positions[0, 0] = np.nan
    state, metrics = train_step(state, stack_graphs([broken]), 0)
    assert metrics["skipped_updates"].result() == 1.0
    assert int(state.num_steps) == 1
    for new, old in zip(jax.tree.leaves(state.params), jax.tree.leaves(before.params)):
        np.testing.assert_array_equal(np.asarray(new), old)
    for new, old in zip(
        jax.tree.leaves(state.optimizer_state), jax.tree.leaves(before.optimizer_state)
    ):
        np.testing.assert_array_equal(np.asarray(new), old)
    state, metrics = train_step(state, stack_graphs([good]), 0)
    assert metrics["skipped_updates"].result() == 0.0 and int(state.num_steps) == 2


def test_accumulation_of_k_steps_equals_one_step_on_the_k_batches(force_field):
    # optax.MultiSteps averages the k steps' gradients, each a mean over its own
    # structures: equal to one step on all of them for equal structure counts.
    k = 3
    batches = make_batches(2, k, structures_per_batch=3)
    loss = MSELoss()
    accumulating = get_mlip_optimizer_chain_with_flexible_base_optimizer(
        optax.sgd, sgd_config(k)
    )
    step = make_train_step(force_field, loss, accumulating)
    state = init_training_state(force_field, accumulating)
    for index, batch in enumerate(batches):
        state, _ = step(state, stack_graphs([batch]), 0)
        # The update count comes from the MultiSteps state: one per k steps.
        assert int(state.num_steps) == (1 if index == k - 1 else 0)
        assert int(state.ema_state.step) == (1 if index == k - 1 else 0)

    plain = get_mlip_optimizer_chain_with_flexible_base_optimizer(
        optax.sgd, sgd_config(1)
    )
    together_state = init_training_state(force_field, plain)
    together_step = make_train_step(force_field, loss, plain)
    together_state, _ = together_step(together_state, stack_graphs(batches), 0)
    np.testing.assert_allclose(
        flat(state.params), flat(together_state.params), rtol=1e-5, atol=1e-7
    )


def test_custom_step_docstring_example_runs(force_field):
    optimizer = get_default_mlip_optimizer()
    names = {
        "force_field": force_field,
        "loss": MSELoss(),
        "optimizer": optimizer,
        "state": init_training_state(force_field, optimizer),
        "stacked_batch": stack_graphs(make_batches(3, 1)),
    }
    finder = doctest.DocTestFinder()
    [test] = [t for t in finder.find(training_step_module, globs=names) if t.examples]
    # The example ends by handing the step to a TrainingLoop (tested with real
    # data in test_training_loop); here the step itself runs.
    test.examples = [e for e in test.examples if "TrainingLoop(" not in e.source]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(test, out=lambda text: None, clear_globs=False)
    assert result.attempted >= 5 and result.failed == 0
    step = test.globs["step"]
    state, metrics = step(names["state"], names["stacked_batch"], 0)
    assert int(state.num_steps) == 1
    values = reduce_metrics([metrics])
    assert values["max_grad"] > 0 and "gradient_norm" in values


ONE_VERSUS_FOUR = textwrap.dedent(
    """
    import os, sys
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = flags + " --xla_force_host_platform_device_count=4"
    sys.path.insert(0, os.getcwd())
    import jax, numpy as np, optax
    from mlip_eqx.graph import stack_graphs
    from mlip_eqx.models import ForceField
    from mlip_eqx.models.loss import MSELoss
    from mlip_eqx.training.mesh import make_mesh
    from mlip_eqx.training.optimizer import (
        get_default_mlip_optimizer,
        get_mlip_optimizer_chain_with_flexible_base_optimizer,
    )
    from mlip_eqx.training.optimizer_config import OptimizerConfig
    from mlip_eqx.training.training_state import init_training_state
    from mlip_eqx.training.training_step import make_train_step, make_eval_step
    from mlip_eqx.graph import batch_graphs
    from mlip_eqx.models.loss.reductions import reduce_metrics
    from tests.helpers.models import DATASET_INFO
    from tests.helpers.pair_network import PairNetwork
    from tests.training.test_training_step import (
        make_batches, flat, N_NODE, N_EDGE, N_GRAPH)

    assert len(jax.devices()) == 4

    def compare(x64):
        network = PairNetwork(
            PairNetwork.Config(), DATASET_INFO, key=jax.random.key(3))
        force_field = ForceField(network, predict_stress=True)
        config = OptimizerConfig(warmup_steps=0)
        # AMSGrad (moment states to keep replicated) with the exact float64
        # comparison, plain SGD in float32: one compilation pair per device
        # count.
        if x64:
            name, optimizer = "amsgrad", get_default_mlip_optimizer(config)
        else:
            name, optimizer = "sgd", (
                get_mlip_optimizer_chain_with_flexible_base_optimizer(
                    optax.sgd, config))
        padding = batch_graphs([], N_NODE, N_EDGE, N_GRAPH)
        last = make_batches(13, 1)[0]
        results = {}
        for devices in (1, 4):
            mesh = make_mesh(jax.devices()[:devices])
            state = init_training_state(force_field, optimizer, mesh=mesh)
            step = make_train_step(force_field, MSELoss(), optimizer, mesh=mesh)
            evaluate = make_eval_step(force_field, MSELoss(), mesh=mesh)
            for seed in (10, 11):
                state, metrics = step(state, stack_graphs(make_batches(seed, 4)), 0)
            # The last group of an epoch: one real batch, on 4 devices
            # completed with padding-only batches, which must not scale the
            # update down.
            group = [last] + [padding] * (devices - 1)
            state, last_metrics = step(state, stack_graphs(group), 0)
            eval_metrics = reduce_metrics(
                [evaluate(state.params, stack_graphs(make_batches(12, 4)), 0),
                 evaluate(state.params, stack_graphs(group), 0)]
            )
            results[devices] = (
                flat(state.params),
                metrics["loss"].result(),
                last_metrics["loss"].result(),
                eval_metrics["mae_f"],
                eval_metrics["rmse_e"],
                eval_metrics["loss"],
            )
        one, four = results[1], results[4]
        assert one[0].dtype == (np.float64 if x64 else np.float32)
        assert not np.allclose(one[0], flat(force_field.params))
        np.testing.assert_allclose(one[0], four[0], rtol=1e-10 if x64 else 1e-5)
        np.testing.assert_allclose(one[1:], four[1:], rtol=1e-10 if x64 else 1e-5)
        print(name, "SAME")

    compare(x64=False)
    with jax.enable_x64(True):
        compare(x64=True)
    """
)


def test_one_device_and_four_devices_give_the_same_update():
    """In float32 (SGD) and float64 (AMSGrad), in one process with 4 CPU
    devices."""
    output = run_script(ONE_VERSUS_FOUR)
    assert "sgd SAME" in output and "amsgrad SAME" in output, output
