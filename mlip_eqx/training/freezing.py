"""Training only part of a force field: optax masks over parameter paths.

A parameter's path is its key path in ``force_field.params`` as text, e.g.
``.network.layers[1].readouts[0].linear.weights[0]`` (see
:func:`mlip_eqx.utils.trees.flatten_with_key_paths`); a predicate on paths
says which arrays train. Frozen arrays get zero updates, so they stay
bit-identical, and weight decay, gradient clipping and the optimizer's moments
see only the trained ones.
"""

import re
from collections.abc import Callable

import jax
import optax
from jaxtyping import PyTree

from mlip_eqx.utils.trees import flatten_with_key_paths

PathPredicate = Callable[[str], bool]

_LAYER_INDEX = re.compile(r"\.layers\[(\d+)\]")
TRAINED, FROZEN = "trained", "frozen"


_READOUT_HEAD = re.compile(r"\.readouts\[(\d+)\]")


def readouts_only(path: str) -> bool:
    """Trains the readouts (paths with ``.readouts[``): every network's energy
    heads."""
    return ".readouts[" in path


def readout_heads(*heads: int) -> PathPredicate:
    """Trains the readout heads with these indices (``.readouts[k]``), e.g. a
    new fine-tuning head, and nothing else."""

    def predicate(path: str) -> bool:
        match = _READOUT_HEAD.search(path)
        return match is not None and int(match.group(1)) in heads

    return predicate


def count_layers(params: PyTree) -> int:
    """The number of message-passing layers of ``params`` (paths with
    ``.layers[i]``)."""
    indices = [
        int(match.group(1))
        for path, _ in flatten_with_key_paths(params)
        if (match := _LAYER_INDEX.search(path))
    ]
    return max(indices, default=-1) + 1


def last_layers(params: PyTree, num_layers: int) -> PathPredicate:
    """Trains the last ``num_layers`` message-passing layers of ``params``
    (paths with ``.layers[i]``) and every readout; the embedding and earlier
    layers freeze (mace-torch's ``--freeze``, counted from the end)."""
    if num_layers < 0:
        raise ValueError(f"last_layers: num_layers must be >= 0, got {num_layers}.")
    first_trained = count_layers(params) - num_layers

    def predicate(path: str) -> bool:
        match = _LAYER_INDEX.search(path)
        in_trained_layer = match is not None and int(match.group(1)) >= first_trained
        return in_trained_layer or readouts_only(path)

    return predicate


def trainable_labels(params: PyTree, trainable: PathPredicate) -> PyTree[str]:
    """``"trained"`` or ``"frozen"`` for every array of ``params``."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: TRAINED if trainable(jax.tree_util.keystr(path)) else FROZEN,
        params,
    )


def freeze_parameters(
    optimizer: optax.GradientTransformation,
    trainable: PathPredicate,
    params: PyTree,
) -> optax.GradientTransformation:
    """``optimizer`` for the arrays that ``trainable`` selects, zero updates for
    the others.

    Args:
        optimizer: Any optax optimizer (e.g. the default MLIP one).
        trainable: A predicate on parameter paths (e.g. :func:`readouts_only`,
            ``last_layers(params, 1)`` or ``lambda path: "embedding" not in
            path``).
        params: The parameters to be trained (``force_field.params``), checked
            to leave something to train.

    Returns:
        An optax GradientTransformation.

    Raises:
        ValueError: If ``trainable`` selects no array.
    """
    if TRAINED not in jax.tree.leaves(trainable_labels(params, trainable)):
        raise ValueError("freeze_parameters: no parameter is left to train.")
    return optax.multi_transform(
        {TRAINED: optimizer, FROZEN: optax.set_to_zero()},
        lambda tree: trainable_labels(tree, trainable),
    )
