"""The pure training and evaluation steps, and their data-parallel wrapping.

A step runs on every device of a 1-D mesh (axis ``"data"``) through
``jax.jit(jax.shard_map(...))``. Batches arrive stacked along a leading axis whose
length is a multiple of the number of devices: each device receives ``k`` padded
batches (usually ``k = 1``), averages the gradients of its ``k`` batches, and the
gradients and metrics are then averaged over devices with ``jax.lax.pmean``. So a
stack of ``n`` batches gives the same update on one device as on ``n`` devices.
Parameters and optimizer state stay replicated; one device is the same code with a
mesh of size 1.

The pieces are public, so that a custom step can be composed from them. For
example, a step that also records the gradient norm of the energy term only::

    >>> import jax, optax
    >>> from mlip_eqx.training.training_step import (
    ...     loss_and_gradients, apply_gradients, shard_step)
    >>> from mlip_eqx.training.mesh import make_mesh
    >>> def my_step(state, batch, epoch, *, force_field, loss, optimizer):
    ...     gradients, metrics = loss_and_gradients(
    ...         state.params, force_field, loss, batch, epoch)
    ...     gradients = jax.lax.pmean(gradients, "data")
    ...     metrics = jax.lax.pmean(metrics, "data")
    ...     state, update_metrics = apply_gradients(
    ...         state, gradients, optimizer, ema_decay=0.99)
    ...     return state, metrics | update_metrics
    >>> step = shard_step(my_step, make_mesh(), force_field=force_field,
    ...                   loss=loss, optimizer=optimizer)
    >>> state, metrics = step(state, stacked_batch, 0)
"""

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec
from jaxtyping import Array, PyTree

from mlip_eqx.graph.graph import Graph
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.loss import Loss
from mlip_eqx.training.ema import ema_update
from mlip_eqx.training.mesh import (
    DATA_AXIS,
    batch_sharding,
    make_mesh,
    replicated_sharding,
)
from mlip_eqx.training.optimizer import get_learning_rate
from mlip_eqx.training.training_state import TrainingState
from mlip_eqx.utils.compiler_options import compiler_options

Metrics = dict[str, Array]
TrainStep = Callable[[TrainingState, Graph, int | Array], tuple[TrainingState, Metrics]]
EvalStep = Callable[[PyTree, Graph, int | Array], Metrics]


def loss_and_gradients(
    params: PyTree,
    force_field: ForceField,
    loss: Loss,
    batches: Graph,
    epoch: int | Array,
) -> tuple[PyTree, Metrics]:
    """Gradients and training metrics averaged over the stack of batches of one
    device.

    Runs inside a ``shard_map`` over the axis ``"data"``. The gradients are those of
    this device's batches only (the replicated parameters are marked as varying
    over the axis first, so that autodiff does not sum the gradient over devices);
    average them over devices with ``jax.lax.pmean(gradients, "data")``.

    Args:
        params: The trainable arrays (``force_field.params`` structure).
        force_field: Gives the architecture (its own parameters are not used).
        loss: The training loss.
        batches: ``k`` padded batches stacked along a leading axis.
        epoch: The epoch number, for the loss weight schedules.

    Returns:
        The mean gradient and mean metrics over the ``k`` batches.
    """

    def one_batch(batch: Graph) -> tuple[PyTree, Metrics]:
        def loss_value(trainable: PyTree) -> tuple[Array, Metrics]:
            prediction = force_field.with_params(trainable)(batch)
            return loss(prediction, batch, epoch)

        return jax.grad(loss_value, has_aux=True)(params)

    # The gradient of a device-invariant input would come back summed over devices.
    params = jax.lax.pcast(params, DATA_AXIS, to="varying")
    gradients, metrics = jax.lax.map(one_batch, batches)
    mean = functools.partial(jnp.mean, axis=0)
    return jax.tree.map(mean, gradients), jax.tree.map(mean, metrics)


def eval_metrics(
    params: PyTree,
    force_field: ForceField,
    loss: Loss,
    batches: Graph,
    epoch: int | Array,
) -> Metrics:
    """Loss and evaluation metrics averaged over a stack of batches."""

    def one_batch(batch: Graph) -> Metrics:
        prediction = force_field.with_params(params)(batch)
        return loss(prediction, batch, epoch, eval_metrics=True)[1]

    return jax.tree.map(
        functools.partial(jnp.mean, axis=0), jax.lax.map(one_batch, batches)
    )


def all_finite(tree: PyTree) -> Array:
    """Whether every entry of every array of ``tree`` is finite."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def apply_gradients(
    state: TrainingState,
    gradients: PyTree,
    optimizer: optax.GradientTransformation,
    ema_decay: float,
    num_gradient_accumulation_steps: int = 1,
) -> tuple[TrainingState, Metrics]:
    """One optimizer step, skipped entirely if the gradient is not finite.

    After every ``num_gradient_accumulation_steps`` accepted steps (the optimizer
    does the accumulation itself, e.g. with ``optax.MultiSteps``), the EMA is updated
    and ``num_steps`` advances.

    Args:
        state: The current training state.
        gradients: Gradients of the loss with respect to ``state.params``.
        optimizer: The optax optimizer the state was built for.
        ema_decay: Decay of the parameter EMA.
        num_gradient_accumulation_steps: Steps per parameter update.

    Returns:
        The new state and metrics: ``gradient_norm``, ``param_update_norm``,
        ``skipped_updates`` (1 if the step was skipped) and, if the optimizer
        records it, ``learning_rate``.
    """
    is_finite = all_finite(gradients)
    safe_gradients = jax.tree.map(
        lambda g: jnp.where(is_finite, g, jnp.zeros_like(g)), gradients
    )
    updates, new_optimizer_state = optimizer.update(
        safe_gradients, state.optimizer_state, state.params
    )
    new_params = optax.apply_updates(state.params, updates)

    def keep_old_if_skipped(new: PyTree, old: PyTree) -> PyTree:
        return jax.tree.map(lambda n, o: jnp.where(is_finite, n, o), new, old)

    params = keep_old_if_skipped(new_params, state.params)
    optimizer_state = keep_old_if_skipped(new_optimizer_state, state.optimizer_state)
    acc_steps = jnp.where(
        is_finite,
        (state.acc_steps + 1) % num_gradient_accumulation_steps,
        state.acc_steps,
    )
    is_update = is_finite & (acc_steps == 0)
    ema_state = keep_old_if_skipped(
        ema_update(state.ema_state, params, ema_decay), state.ema_state
    )
    ema_state = jax.tree.map(
        lambda n, o: jnp.where(is_update, n, o), ema_state, state.ema_state
    )
    key, _ = jax.random.split(jax.random.wrap_key_data(state.key))
    new_state = eqx.tree_at(
        lambda s: (
            s.params,
            s.optimizer_state,
            s.ema_state,
            s.num_steps,
            s.acc_steps,
            s.key,
        ),
        state,
        (
            params,
            optimizer_state,
            ema_state,
            state.num_steps + is_update.astype(state.num_steps.dtype),
            acc_steps.astype(state.acc_steps.dtype),
            jax.random.key_data(key),
        ),
    )
    metrics = {
        "gradient_norm": optax.tree.norm(gradients),
        "param_update_norm": jnp.where(is_finite, optax.tree.norm(updates), 0.0),
        "skipped_updates": 1.0 - is_finite.astype(jnp.float32),
    }
    learning_rate = get_learning_rate(new_optimizer_state)
    if learning_rate is not None:
        metrics["learning_rate"] = jnp.asarray(learning_rate)
    return new_state, metrics


def shard_step(
    step: Callable, mesh: Mesh, donate_state: bool = False, **static_arguments
) -> Callable:
    """Wraps ``step(state_or_params, batches, epoch, **static_arguments)`` in
    ``jax.jit(jax.shard_map(...))`` over ``mesh``.

    The first argument and the outputs are replicated; ``batches`` is split along
    its leading axis (a multiple of the number of devices); ``epoch`` is replicated.

    Args:
        step: The per-device step; it may use ``jax.lax.pmean(..., "data")``.
        mesh: A 1-D mesh with axis ``"data"`` (see :func:`make_mesh`).
        donate_state: Donate the first argument's buffers (it must not be reused).
        static_arguments: Closed-over keyword arguments (models, losses, optimizers).
    """
    replicated, split = PartitionSpec(), PartitionSpec(DATA_AXIS)
    per_device = jax.shard_map(
        functools.partial(step, **static_arguments),
        mesh=mesh,
        in_specs=(replicated, split, replicated),
        out_specs=replicated,
    )
    return jax.jit(
        per_device,
        in_shardings=(
            replicated_sharding(mesh),
            batch_sharding(mesh),
            replicated_sharding(mesh),
        ),
        out_shardings=replicated_sharding(mesh),
        donate_argnums=(0,) if donate_state else (),
        compiler_options=compiler_options(mesh.devices.flat[0].platform),
    )


def _train_step(
    state: TrainingState,
    batches: Graph,
    epoch: int | Array,
    *,
    force_field: ForceField,
    loss: Loss,
    optimizer: optax.GradientTransformation,
    ema_decay: float,
    num_gradient_accumulation_steps: int,
) -> tuple[TrainingState, Metrics]:
    gradients, metrics = loss_and_gradients(
        state.params, force_field, loss, batches, epoch
    )
    gradients = jax.lax.pmean(gradients, DATA_AXIS)
    metrics = jax.lax.pmean(metrics, DATA_AXIS)
    state, update_metrics = apply_gradients(
        state, gradients, optimizer, ema_decay, num_gradient_accumulation_steps
    )
    return state, metrics | update_metrics


def _eval_step(
    params: PyTree,
    batches: Graph,
    epoch: int | Array,
    *,
    force_field: ForceField,
    loss: Loss,
) -> Metrics:
    return jax.lax.pmean(
        eval_metrics(params, force_field, loss, batches, epoch), DATA_AXIS
    )


def make_train_step(
    force_field: ForceField,
    loss: Loss,
    optimizer: optax.GradientTransformation,
    mesh: Mesh | None = None,
    ema_decay: float = 0.99,
    num_gradient_accumulation_steps: int = 1,
) -> TrainStep:
    """The jitted, data-parallel ``train_step(state, batches, epoch)``.

    Args:
        force_field: Gives the architecture; parameters come from the state.
        loss: The training loss.
        optimizer: The optax optimizer (any).
        mesh: 1-D mesh with axis "data" (default: all local devices).
        ema_decay: Decay of the parameter EMA.
        num_gradient_accumulation_steps: Steps per parameter update; must match the
            optimizer's accumulation (e.g. ``OptimizerConfig``).

    Returns:
        ``train_step(state, batches, epoch) -> (new_state, metrics)``; ``batches``
        are padded batches stacked along a leading axis whose length is a multiple
        of the number of devices. The old state's buffers are donated.
    """
    if num_gradient_accumulation_steps < 1:
        raise ValueError(
            "num_gradient_accumulation_steps must be >= 1, got "
            f"{num_gradient_accumulation_steps}."
        )
    return shard_step(
        _train_step,
        mesh or make_mesh(),
        donate_state=True,
        force_field=_architecture(force_field),
        loss=loss,
        optimizer=optimizer,
        ema_decay=ema_decay,
        num_gradient_accumulation_steps=num_gradient_accumulation_steps,
    )


def make_eval_step(
    force_field: ForceField, loss: Loss, mesh: Mesh | None = None
) -> EvalStep:
    """The jitted, data-parallel ``eval_step(params, batches, epoch) -> metrics``."""
    return shard_step(
        _eval_step,
        mesh or make_mesh(),
        force_field=_architecture(force_field),
        loss=loss,
    )


def _architecture(force_field: ForceField) -> ForceField:
    """The force field without its trainable arrays (so that a jitted step does not
    embed them as constants)."""
    return eqx.filter(force_field, eqx.is_inexact_array, inverse=True)
