"""A force field's prediction as a jitted function of padded batches."""

import functools
from collections.abc import Callable

import equinox as eqx
import jax

from mlip_eqx.graph.graph import Graph
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.prediction import Prediction
from mlip_eqx.utils.compiler_options import compiler_options


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
    params, static = force_field.partition()
    leaves, treedef = jax.tree.flatten(static)
    return functools.partial(_compiled_call(treedef, tuple(leaves)), params)


@functools.cache
def _compiled_call(
    treedef: jax.tree_util.PyTreeDef, leaves: tuple
) -> Callable[[ForceField, Graph], Prediction]:
    """The jitted call of force fields with this non-trainable part."""
    static = jax.tree.unflatten(treedef, leaves)

    def call(params: ForceField, graph: Graph) -> Prediction:
        return eqx.combine(params, static)(graph)

    return jax.jit(call, compiler_options=compiler_options(jax.default_backend()))
