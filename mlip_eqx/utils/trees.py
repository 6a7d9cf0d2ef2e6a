"""PyTree helpers shared by the model archive and the checkpoints."""

from typing import Any

import jax
from jaxtyping import PyTree


def flatten_with_key_paths(tree: PyTree) -> list[tuple[str, Any]]:
    """The leaves of ``tree`` with their key paths as text, in flattening order.

    Args:
        tree: Any PyTree (None is an empty subtree, as in ``jax.tree.leaves``).

    Returns:
        ``(jax.tree_util.keystr(path), leaf)`` for every leaf, e.g.
        ``(".network.embedding", array)``; ``jax.tree.structure(tree)`` unflattens
        the leaves again.
    """
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in leaves]
