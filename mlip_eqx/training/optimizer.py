"""The default MLIP optimizer (AMSGrad with clipping, warm-up and weight decay)."""

from collections.abc import Callable

import equinox as eqx
import jax
import optax
from jaxtyping import Array, PyTree

from mlip_eqx.models.force_field import ForceField
from mlip_eqx.training.optimizer_config import OptimizerConfig


def weight_decay_mask(params: ForceField | PyTree) -> PyTree[bool]:
    """True for the leaves that get weight decay.

    Args:
        params: The trainable parameters of a force field (``force_field.params``,
            or a PyTree of that structure such as its gradients), or those of any
            other model.

    Returns:
        A PyTree of bools with the structure of ``params``: for a force field, the
        mask that its network declares (its
        :meth:`~mlip_eqx.models.MLIPNetwork.weight_decay_mask`; for MACE, the
        down-projection and symmetric-contraction weights); for other PyTrees,
        True everywhere.
    """
    if isinstance(params, ForceField):
        return eqx.tree_at(
            lambda tree: tree.network, params, params.network.weight_decay_mask()
        )
    return jax.tree.map(lambda _: True, params)


def learning_rate_schedule(config: OptimizerConfig) -> optax.Schedule:
    """Linear warm-up from init to peak, then linear from peak to final."""
    return optax.join_schedules(
        schedules=[
            optax.linear_schedule(
                config.init_learning_rate,
                config.peak_learning_rate,
                config.warmup_steps,
            ),
            optax.linear_schedule(
                config.peak_learning_rate,
                config.final_learning_rate,
                config.transition_steps,
            ),
        ],
        boundaries=[config.warmup_steps],
    )


def get_mlip_optimizer_chain_with_flexible_base_optimizer(
    base_optimizer_factory_fun: Callable[[float | Array], optax.GradientTransformation],
    config: OptimizerConfig,
) -> optax.GradientTransformation:
    """The MLIP optimizer chain around any base optimizer.

    Weight decay (masked, see :func:`weight_decay_mask`), global-norm clipping, then
    the base optimizer with the learning-rate schedule of ``config``; gradients of
    ``num_gradient_accumulation_steps`` steps are averaged into one update (the
    schedule counts updates). The current learning rate is kept in the optimizer
    state (see :func:`get_learning_rate`).

    Args:
        base_optimizer_factory_fun: ``learning_rate -> optax optimizer``, e.g.
            ``optax.adam``.
        config: The optimizer settings.

    Returns:
        An optax GradientTransformation.
    """
    decay = optax.add_decayed_weights(
        config.weight_decay,
        mask=weight_decay_mask if config.apply_weight_decay_mask else None,
    )
    chain = optax.inject_hyperparams(
        lambda learning_rate: optax.chain(
            decay,
            optax.clip_by_global_norm(config.grad_norm),
            base_optimizer_factory_fun(learning_rate),
        )
    )(learning_rate=learning_rate_schedule(config))
    if config.num_gradient_accumulation_steps == 1:
        return chain
    return optax.MultiSteps(
        chain, every_k_schedule=config.num_gradient_accumulation_steps
    ).gradient_transformation()


def get_default_mlip_optimizer(
    config: OptimizerConfig | None = None,
) -> optax.GradientTransformation:
    """AMSGrad (b1 0.9, b2 0.999, eps 1e-8) in the MLIP chain.

    The chain is that of
    :func:`get_mlip_optimizer_chain_with_flexible_base_optimizer`: masked weight
    decay, gradient clipping at ``grad_norm``, a linear warm-up from init to peak
    learning rate and then a linear change to the final one, and gradient
    accumulation.

    Args:
        config: The settings (default: ``OptimizerConfig()``).
    """
    config = config or OptimizerConfig()
    return get_mlip_optimizer_chain_with_flexible_base_optimizer(
        lambda learning_rate: optax.amsgrad(
            learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0
        ),
        config,
    )


def get_learning_rate(optimizer_state: PyTree) -> Array | None:
    """The learning rate of the latest update, from an optimizer state, if recorded.

    Finds the first ``learning_rate`` hyperparameter injected with
    ``optax.inject_hyperparams`` (as in the MLIP optimizer); None for optimizers
    that do not record it.
    """
    injected = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)
    states = jax.tree.leaves(
        optimizer_state, is_leaf=lambda node: isinstance(node, injected)
    )
    for state in states:
        if isinstance(state, injected) and "learning_rate" in state.hyperparams:
            return state.hyperparams["learning_rate"]
    return None
