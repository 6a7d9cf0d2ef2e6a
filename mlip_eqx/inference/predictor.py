"""A force field's prediction as a jitted function of padded batches."""

import functools
from collections.abc import Callable
from typing import TypeVar

import equinox as eqx
import jax
from jaxtyping import Array, Float

from mlip_eqx.graph.graph import Graph
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.prediction import Prediction
from mlip_eqx.utils.compiler_options import compiler_options

Output = TypeVar("Output")


def make_predictor(force_field: ForceField) -> Callable[[Graph], Prediction]:
    """``graph -> force_field(graph)``, jitted, compiled once per padded batch shape.

    The parameters are an argument of the compiled code, not constants in it: all
    force fields with the same architecture (network class, config, DatasetInfo,
    ``predict_stress``), e.g. one model before and after training, share the
    compiled code of each batch shape for the whole session. It is compiled with
    mlip_eqx's compiler options.

    Args:
        force_field: The force field; its non-trainable leaves must be hashable
            (as those of every MLIPNetwork are).

    Returns:
        A function of a padded batch (numpy or jax leaves) to its Prediction.
    """
    return _jitted_method(ForceField.__call__, force_field)


def make_node_energies_predictor(
    force_field: ForceField,
) -> Callable[[Graph], Float[Array, " n_node"]]:
    """``graph -> force_field.node_energies(graph)`` (eV per atom), jitted and
    shared like :func:`make_predictor`.

    Args:
        force_field: The force field; its non-trainable leaves must be hashable.

    Returns:
        A function of a padded batch (numpy or jax leaves) to the energy of every
        node in eV (zero for padding nodes).
    """
    return _jitted_method(ForceField.node_energies, force_field)


def _jitted_method(
    method: Callable[[ForceField, Graph], Output], force_field: ForceField
) -> Callable[[Graph], Output]:
    """``graph -> method(force_field, graph)``, with the parameters as an argument
    of compiled code shared by all force fields of the same architecture."""
    params, static = force_field.partition()
    leaves, treedef = jax.tree.flatten(static)
    return functools.partial(_compiled_call(method, treedef, tuple(leaves)), params)


@functools.cache
def _compiled_call(
    method: Callable[[ForceField, Graph], Output],
    treedef: jax.tree_util.PyTreeDef,
    leaves: tuple,
) -> Callable[[ForceField, Graph], Output]:
    """The jitted ``method`` of force fields with this non-trainable part."""
    static = jax.tree.unflatten(treedef, leaves)

    def call(params: ForceField, graph: Graph) -> Output:
        return method(eqx.combine(params, static), graph)

    return jax.jit(call, compiler_options=compiler_options(jax.default_backend()))
