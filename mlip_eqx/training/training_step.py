"""The pure training and evaluation steps, and their data-parallel wrapping.

A step runs on every device of a 1-D mesh (axis ``"data"``) through
``jax.jit(jax.shard_map(...))``. Batches arrive stacked along a leading axis whose
length is a multiple of the number of devices: each device receives ``k`` padded
batches (usually ``k = 1``). Reductions are exact: the loss of a step is that of
all its structures, whatever the number of devices, batches or padding: each
device adds the error sums and the label counts of its batches
(:class:`~mlip_eqx.models.loss.Loss`), ``jax.lax.psum`` adds them over devices, and
the sums are divided by the counts of the whole step once. So the gradient is the
mean over the real structures of the step, a padding-only batch contributes
nothing, and ``n`` batches give the same update on one device as on ``n`` devices.
Metrics leave the step as sums and counts
(:mod:`~mlip_eqx.models.loss.reductions`), which the host divides once per epoch.
Parameters and optimizer state stay replicated; one device is the same code with
a mesh of size 1.

The pieces are public, so that a custom step can be composed from them. For
example, a step that also records the largest absolute gradient::

    >>> import jax, jax.numpy as jnp
    >>> from mlip_eqx.models.loss.reductions import Max
    >>> from mlip_eqx.training import (
    ...     apply_gradients, loss_and_gradients, make_mesh, shard_step)
    >>> def my_step(state, batches, epoch, *, architecture, loss, optimizer):
    ...     gradients, metrics = loss_and_gradients(
    ...         state.params, architecture, loss, batches, epoch)
    ...     leaves = jax.tree.leaves(gradients)
    ...     largest = jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in leaves]))
    ...     state, update_metrics = apply_gradients(state, gradients, optimizer)
    ...     return state, metrics | update_metrics | {"max_grad": Max(largest)}
    >>> _, architecture = force_field.partition()  # no parameters baked in
    >>> step = shard_step(my_step, make_mesh(), donate_state=True,
    ...                   architecture=architecture, loss=loss, optimizer=optimizer)
    >>> loop = TrainingLoop(..., train_step=step)
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
from mlip_eqx.models.loss.reductions import (
    Last,
    Mean,
    Metrics,
    Sum,
    metrics_over_batches,
    metrics_over_devices,
)
from mlip_eqx.models.loss.terms import safe_divide
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

TrainStep = Callable[[TrainingState, Graph, int | Array], tuple[TrainingState, Metrics]]
EvalStep = Callable[[PyTree, Graph, int | Array], Metrics]


def _sum_over_devices_of_batches(tree: PyTree) -> PyTree:
    """Sums a PyTree of stacked per-batch arrays over the batches and devices."""
    return jax.lax.psum(jax.tree.map(lambda x: jnp.sum(x, axis=0), tree), DATA_AXIS)


def loss_and_gradients(
    params: PyTree,
    force_field: ForceField,
    loss: Loss,
    batches: Graph,
    epoch: int | Array,
) -> tuple[PyTree, Metrics]:
    """Gradients and training metrics of the loss over every batch of every device.

    Runs inside a ``shard_map`` over the axis ``"data"``. The loss is that of all
    the step's structures (each term's error sum over every batch of every device,
    divided by its label count over all of them), so the result does not depend
    on how the structures are spread over batches and devices; it is the same on
    every device.

    Args:
        params: The trainable arrays (``force_field.params`` structure).
        force_field: Gives the architecture (its own parameters are not used).
        loss: The training loss.
        batches: ``k`` padded batches stacked along a leading axis.
        epoch: The epoch number, for the loss weight schedules.

    Returns:
        The gradient of the step's loss and its metrics, reduced over devices.
    """
    counts = _sum_over_devices_of_batches(jax.vmap(loss.term_counts)(batches))

    def one_batch(batch: Graph) -> tuple[PyTree, Metrics]:
        def share_of_loss(trainable: PyTree) -> tuple[Array, Metrics]:
            prediction = force_field.with_params(trainable)(batch)
            metrics = loss.metrics(prediction, batch, epoch)
            return jnp.sum(safe_divide(metrics["loss"].total, counts)), metrics

        return jax.grad(share_of_loss, has_aux=True)(params)

    # The gradient of a device-invariant input would come back summed over devices.
    params = jax.lax.pcast(params, DATA_AXIS, to="varying")
    gradients, metrics = jax.lax.map(one_batch, batches)
    metrics = metrics_over_devices(metrics_over_batches(metrics), DATA_AXIS)
    return _sum_over_devices_of_batches(gradients), metrics


def evaluation_metrics(
    params: PyTree,
    force_field: ForceField,
    loss: Loss,
    batches: Graph,
    epoch: int | Array,
) -> Metrics:
    """Loss and evaluation metrics of every batch of every device (inside a
    ``shard_map`` over ``"data"``), as sums and counts."""

    def one_batch(batch: Graph) -> Metrics:
        prediction = force_field.with_params(params)(batch)
        return loss.metrics(prediction, batch, epoch, eval_metrics=True)

    metrics = metrics_over_batches(jax.lax.map(one_batch, batches))
    return metrics_over_devices(metrics, DATA_AXIS)


def all_finite(tree: PyTree) -> Array:
    """Whether every entry of every array of ``tree`` is finite."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def completes_update(optimizer_state: PyTree) -> Array:
    """Whether the optimizer step that produced ``optimizer_state`` changed the
    parameters: False inside a gradient-accumulation cycle of ``optax.MultiSteps``
    (read from its state), True for optimizers that do not accumulate."""
    states = jax.tree.leaves(
        optimizer_state, is_leaf=lambda node: isinstance(node, optax.MultiStepsState)
    )
    for state in states:
        if isinstance(state, optax.MultiStepsState):
            return state.mini_step == 0
    return jnp.asarray(True)


def apply_gradients(
    state: TrainingState,
    gradients: PyTree,
    optimizer: optax.GradientTransformation,
    learning_rate: float | None = None,
) -> tuple[TrainingState, Metrics]:
    """One optimizer step, skipped entirely if the gradient is not finite.

    The optimizer's update is multiplied by the state's
    ``protocol.learning_rate_factor`` (the reductions on validation plateaus),
    which multiplies the learning rate of any optimizer whose last
    transformation scales by it (the MLIP optimizer and optax's, e.g.
    ``optax.adam``). When the step updates the parameters (always, unless the
    optimizer accumulates gradients with ``optax.MultiSteps`` and the cycle is
    not complete), the EMA (with the decay of ``state.ema_state``) is updated
    and ``num_steps`` advances.

    Args:
        state: The current training state.
        gradients: Gradients of the loss with respect to ``state.params``.
        optimizer: The optax optimizer the state was built for.
        learning_rate: A learning rate in place of the optimizer's own (its
            update is rescaled by ``learning_rate`` over the rate it recorded,
            see :func:`~mlip_eqx.training.optimizer.get_learning_rate`), e.g.
            the constant rate of a second training stage; None: the
            optimizer's.

    Returns:
        The new state and metrics: ``gradient_norm`` and ``param_update_norm``
        (means over steps), ``skipped_updates`` (the number of skipped steps)
        and, if the optimizer records it, ``learning_rate`` (of the last step,
        with the factor and the replacement applied).

    Raises:
        ValueError: If ``learning_rate`` is given for an optimizer that does not
            record its learning rate (raised when the step is traced).
    """
    is_finite = all_finite(gradients)
    safe_gradients = jax.tree.map(
        lambda g: jnp.where(is_finite, g, jnp.zeros_like(g)), gradients
    )
    updates, new_optimizer_state = optimizer.update(
        safe_gradients, state.optimizer_state, state.params
    )
    own_learning_rate = get_learning_rate(new_optimizer_state)
    scale = state.protocol.learning_rate_factor
    if learning_rate is not None:
        if own_learning_rate is None:
            raise ValueError(
                "apply_gradients: a replacement learning_rate needs an optimizer "
                "that records its own (optax.inject_hyperparams with a "
                "learning_rate, as get_default_mlip_optimizer)."
            )
        scale = scale * jnp.where(
            own_learning_rate > 0, learning_rate / own_learning_rate, 0.0
        )
        own_learning_rate = jnp.asarray(learning_rate, jnp.float32)
    updates = jax.tree.map(lambda update: update * scale.astype(update.dtype), updates)
    new_params = optax.apply_updates(state.params, updates)

    def keep_old_unless(condition: Array, new: PyTree, old: PyTree) -> PyTree:
        return jax.tree.map(lambda n, o: jnp.where(condition, n, o), new, old)

    params = keep_old_unless(is_finite, new_params, state.params)
    optimizer_state = keep_old_unless(
        is_finite, new_optimizer_state, state.optimizer_state
    )
    is_update = is_finite & completes_update(new_optimizer_state)
    ema_state = keep_old_unless(
        is_update, ema_update(state.ema_state, params), state.ema_state
    )
    key, _ = jax.random.split(jax.random.wrap_key_data(state.key))
    new_state = eqx.tree_at(
        lambda s: (s.params, s.optimizer_state, s.ema_state, s.num_steps, s.key),
        state,
        (
            params,
            optimizer_state,
            ema_state,
            state.num_steps + is_update.astype(state.num_steps.dtype),
            jax.random.key_data(key),
        ),
    )
    one = jnp.ones((), jnp.float32)
    metrics = {
        "gradient_norm": Mean(optax.tree.norm(gradients), one),
        "param_update_norm": Mean(
            jnp.where(is_finite, optax.tree.norm(updates), 0.0), one
        ),
        "skipped_updates": Sum(1.0 - is_finite.astype(jnp.float32)),
    }
    if own_learning_rate is not None:
        effective = own_learning_rate * state.protocol.learning_rate_factor
        metrics["learning_rate"] = Last(jnp.asarray(effective))
    return new_state, metrics


def shard_step(
    step: Callable, mesh: Mesh, donate_state: bool = False, **static_arguments
) -> Callable:
    """Wraps ``step(state_or_params, batches, epoch, **static_arguments)`` in
    ``jax.jit(jax.shard_map(...))`` over ``mesh``.

    The first argument and the outputs are replicated; ``batches`` is split along
    its leading axis (a multiple of the number of devices); ``epoch`` is replicated.

    Args:
        step: The per-device step; it may use collectives over ``"data"``, and must
            return values that are the same on every device (e.g. reduced with
            :func:`loss_and_gradients` or ``jax.lax.psum``).
        mesh: A 1-D mesh with axis ``"data"`` (see :func:`make_mesh`).
        donate_state: Donate the first argument's buffers (it must not be reused).
        static_arguments: Closed-over keyword arguments (architectures, losses,
            optimizers). Pass a force field's architecture
            (``force_field.partition()[1]``), not the force field: arrays closed
            over are compiled in as constants.
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
    architecture: ForceField,
    loss: Loss,
    optimizer: optax.GradientTransformation,
    learning_rate: float | None,
) -> tuple[TrainingState, Metrics]:
    gradients, metrics = loss_and_gradients(
        state.params, architecture, loss, batches, epoch
    )
    state, update_metrics = apply_gradients(state, gradients, optimizer, learning_rate)
    return state, metrics | update_metrics


def _eval_step(
    params: PyTree,
    batches: Graph,
    epoch: int | Array,
    *,
    architecture: ForceField,
    loss: Loss,
) -> Metrics:
    return evaluation_metrics(params, architecture, loss, batches, epoch)


def make_train_step(
    force_field: ForceField,
    loss: Loss,
    optimizer: optax.GradientTransformation,
    mesh: Mesh | None = None,
    learning_rate: float | None = None,
) -> TrainStep:
    """The jitted, data-parallel ``train_step(state, batches, epoch)``.

    Args:
        force_field: Gives the architecture; parameters come from the state.
        loss: The training loss.
        optimizer: The optax optimizer (any; gradient accumulation through
            ``optax.MultiSteps``).
        mesh: 1-D mesh with axis "data" (default: all local devices).
        learning_rate: A constant learning rate in place of the optimizer's
            schedule (see :func:`apply_gradients`); None: the optimizer's.

    Returns:
        ``train_step(state, batches, epoch) -> (new_state, metrics)``; ``batches``
        are padded batches stacked along a leading axis whose length is a multiple
        of the number of devices; the metrics are in reducible form (see
        :func:`~mlip_eqx.models.loss.reductions.reduce_metrics`). The old state's
        buffers are donated.
    """
    return shard_step(
        _train_step,
        mesh or make_mesh(),
        donate_state=True,
        architecture=force_field.partition()[1],
        loss=loss,
        optimizer=optimizer,
        learning_rate=learning_rate,
    )


def make_eval_step(
    force_field: ForceField, loss: Loss, mesh: Mesh | None = None
) -> EvalStep:
    """The jitted, data-parallel ``eval_step(params, batches, epoch) -> metrics``
    (metrics in reducible form)."""
    return shard_step(
        _eval_step,
        mesh or make_mesh(),
        architecture=force_field.partition()[1],
        loss=loss,
    )
