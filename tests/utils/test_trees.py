import jax
import jax.numpy as jnp

from mlip_eqx.utils.trees import flatten_with_key_paths


def test_leaves_come_with_their_key_paths_in_flattening_order():
    tree = {"b": (jnp.ones(2), None), "a": [3.0, {"c": jnp.zeros(1)}]}
    keyed = flatten_with_key_paths(tree)
    assert [key for key, _ in keyed] == ["['a'][0]", "['a'][1]['c']", "['b'][0]"]
    assert [leaf for _, leaf in keyed] == jax.tree.leaves(tree)
    rebuilt = jax.tree.unflatten(jax.tree.structure(tree), [leaf for _, leaf in keyed])
    assert jax.tree.structure(rebuilt) == jax.tree.structure(tree)
