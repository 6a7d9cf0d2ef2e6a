"""TrainingState: everything that changes during training, as one PyTree."""

import logging

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jaxtyping import Array, Int, PyTree, UInt32

from mlip_eqx.models.force_field import ForceField
from mlip_eqx.training.best_model import BestModelRecord, init_best_model_record
from mlip_eqx.training.ema import EMAState, ema_init
from mlip_eqx.training.mesh import make_mesh, replicate
from mlip_eqx.training.protocol_state import ProtocolState, init_protocol_state

logger = logging.getLogger("mlip_eqx")


class TrainingState(eqx.Module):
    """The state that ``train_step`` consumes and returns.

    Attributes:
        params: The trainable arrays of the force field (``force_field.params``).
        optimizer_state: The optax optimizer state.
        ema_state: The moving average of the parameters.
        num_steps: Number of parameter updates applied (with gradient
            accumulation, one per completed ``optax.MultiSteps`` cycle).
        key: Raw random key data (``jax.random.key_data``), split at every step;
            stored raw so that checkpoints can hold it.
        best_model: The lowest validation loss so far and its epoch (kept by the
            training loop, saved with the checkpoints).
        protocol: The learning-rate factor, the plateau and early-stopping
            counts and the stage of the run (kept by the training loop, saved
            with the checkpoints).
        extras: Further user state (a PyTree), carried unchanged by the built-in
            steps, the training loop and the checkpoints.
    """

    params: PyTree
    optimizer_state: optax.OptState
    ema_state: EMAState
    num_steps: Int[Array, ""]
    key: UInt32[Array, " 2"]
    best_model: BestModelRecord
    protocol: ProtocolState
    extras: PyTree = eqx.field(default_factory=dict)


def count_parameters(params: PyTree) -> int:
    """Number of scalar parameters in a PyTree of arrays."""
    return sum(int(leaf.size) for leaf in jax.tree.leaves(params))


def init_training_state(
    force_field: ForceField,
    optimizer: optax.GradientTransformation,
    seed: int = 42,
    mesh: Mesh | None = None,
    ema_decay: float = 0.99,
    extras: PyTree | None = None,
) -> TrainingState:
    """A fresh training state for the force field's current parameters.

    Args:
        force_field: Gives the initial parameters (copied).
        optimizer: Any optax optimizer.
        seed: Seed of the state's random key.
        mesh: The device mesh of the steps (default: all local devices); the state
            is replicated on it.
        ema_decay: Decay of the parameter EMA (kept in the state's ``ema_state``).
        extras: Further user state (default: an empty dict).
    """
    # Copies: a train step donates the state, which must not delete the arrays
    # of the caller's force field.
    params = jax.tree.map(jnp.copy, force_field.params)
    logger.info("Number of parameters: %d", count_parameters(params))
    state = TrainingState(
        params=params,
        optimizer_state=optimizer.init(params),
        ema_state=ema_init(params, ema_decay),
        num_steps=jnp.zeros((), jnp.int32),
        key=jax.random.key_data(jax.random.key(seed)),
        best_model=init_best_model_record(),
        protocol=init_protocol_state(),
        extras={} if extras is None else extras,
    )
    return replicate(state, mesh or make_mesh())
