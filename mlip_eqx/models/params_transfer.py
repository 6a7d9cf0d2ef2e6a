"""Parameters of one force field carried into another: fine-tuning's start."""

import dataclasses
import re

import jax
import jax.numpy as jnp
from jaxtyping import PyTree

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.utils.trees import flatten_with_key_paths

# A readout head's index in a parameter path, e.g. ".layers[1].readouts[2].…".
_READOUT_HEAD = re.compile(r"(\.readouts\[)(\d+)(\])")


class ParameterTransferImpossibleError(ValueError):
    """The source and destination parameters differ in more than new blocks."""


def transfer_params(
    source_params: PyTree,
    destination_params: PyTree,
    scale_factor: float = 1.0,
    warm_start_heads: bool = True,
) -> PyTree:
    """The destination's parameters with every array the source shares copied in.

    Arrays are matched by their key path (e.g.
    ``.network.layers[0].interaction.linear_up.weights[0]``). An array of the
    destination that the source lacks is new: a new readout head
    (``.readouts[k]`` with k >= 1) starts as a copy of the source's head 0 (a
    warm start) unless ``scale_factor`` is 0 or ``warm_start_heads`` is False;
    any other new array (and a new head that is not warm-started) keeps the
    destination's initial values times ``scale_factor`` (0: zeros; e.g. 0.1:
    scaled random heads).

    Args:
        source_params: Trained parameters (``force_field.params``).
        destination_params: Parameters of the new model (its fresh
            ``force_field.params``), which may have more blocks.
        scale_factor: Scale of new arrays that are not warm-started heads.
        warm_start_heads: Whether new heads start as copies of head 0.

    Returns:
        A PyTree of the destination's structure, dtypes and shapes.

    Raises:
        ParameterTransferImpossibleError: (a ValueError) An array has different
            shapes in the two (naming its path and both shapes), or the source
            has arrays the destination lacks (naming them).
    """
    source = dict(flatten_with_key_paths(source_params))
    destination = flatten_with_key_paths(destination_params)
    destination_paths = {path for path, _ in destination}
    dropped = sorted(set(source) - destination_paths)
    if dropped:
        raise ParameterTransferImpossibleError(
            f"transfer_params: the destination has no place for {len(dropped)} "
            f"source array(s), e.g. {dropped[:3]}; the models differ in more "
            "than new blocks."
        )
    leaves = []
    for path, leaf in destination:
        origin = path if path in source else _READOUT_HEAD.sub(r"\g<1>0\3", path)
        is_warm_head = (
            warm_start_heads
            and origin != path
            and origin in source
            and scale_factor != 0.0
        )
        if path in source or is_warm_head:
            value = source[origin]
            if tuple(value.shape) != tuple(leaf.shape):
                raise ParameterTransferImpossibleError(
                    f"transfer_params: {origin} has shape {tuple(value.shape)} in "
                    f"the source but {path} has {tuple(leaf.shape)} in the "
                    "destination."
                )
            leaves.append(jnp.asarray(value, leaf.dtype))
        else:
            leaves.append(leaf * jnp.asarray(scale_factor, leaf.dtype))
    return jax.tree.unflatten(jax.tree.structure(destination_params), leaves)


def with_dataset_info(force_field: ForceField, dataset_info: DatasetInfo) -> ForceField:
    """The same force field (parameters, config) with another DatasetInfo, e.g.
    the pretrained one with reference energies refitted to new data.

    Raises:
        ValueError: The new DatasetInfo has other elements or another cutoff
            (the parameters would not fit or not mean the same).
    """
    _check_same_elements_and_cutoff(
        force_field.dataset_info, dataset_info, "with_dataset_info"
    )
    network = force_field.network
    rebuilt = ForceField(
        type(network)(network.config, dataset_info), force_field.predict_stress
    )
    return rebuilt.with_params(transfer_params(force_field.params, rebuilt.params))


def with_new_readout_head(
    force_field: ForceField, dataset_info: DatasetInfo, scale_factor: float = 1.0
) -> ForceField:
    """The force field with one readout head per data set of ``dataset_info``
    (which has more data sets than the force field's, e.g. from
    :meth:`DatasetInfo.with_new_dataset
    <mlip_eqx.data.dataset_info.DatasetInfo.with_new_dataset>`): its config's
    ``num_readout_heads`` raised to that number, the existing heads and every
    other array kept, and new heads warm-started from head 0 (see
    :func:`transfer_params`; ``scale_factor`` 0 starts them at zero).

    Raises:
        ValueError: The network does not declare ``has_readout_heads``, the new
            info has no more data sets, or other elements or another cutoff.
    """
    network = force_field.network
    config = network.config
    old_info = force_field.dataset_info
    if not network.has_readout_heads:
        raise ValueError(
            f"with_new_readout_head: {type(network).__name__} does not declare "
            "has_readout_heads; this network cannot have several heads."
        )
    if dataset_info.num_datasets <= old_info.num_datasets:
        raise ValueError(
            f"with_new_readout_head: the new DatasetInfo has "
            f"{dataset_info.num_datasets} data sets, no more than the model's "
            f"{old_info.num_datasets}."
        )
    _check_same_elements_and_cutoff(old_info, dataset_info, "with_new_readout_head")
    num_heads = max(config.num_readout_heads, dataset_info.num_datasets)
    new_config = dataclasses.replace(config, num_readout_heads=num_heads)
    rebuilt = ForceField(
        type(network)(new_config, dataset_info),
        force_field.predict_stress,
    )
    return rebuilt.with_params(
        transfer_params(force_field.params, rebuilt.params, scale_factor)
    )


def _check_same_elements_and_cutoff(
    old: DatasetInfo, new: DatasetInfo, caller: str
) -> None:
    """Raises ValueError if the infos differ in elements or cutoff (the
    parameters would not fit or not mean the same)."""
    if new.allowed_atomic_numbers != old.allowed_atomic_numbers:
        raise ValueError(
            f"{caller}: the elements differ: {new.allowed_atomic_numbers} instead "
            f"of the model's {old.allowed_atomic_numbers}."
        )
    if new.cutoff_distance_angstrom != old.cutoff_distance_angstrom:
        raise ValueError(
            f"{caller}: cutoff {new.cutoff_distance_angstrom} Å instead of the "
            f"model's {old.cutoff_distance_angstrom} Å."
        )
