"""Reading a parameter tree of the original mlip library into one of our networks.

mlip (flax) stores a network's parameters as nested dicts of arrays,
``{"params": {"NequipBlock_0": {"Linear_0": {"w[0,0] 3x0e,16x0e": array}}}}``;
here a parameter is named by its path, ``"params/NequipBlock_0/Linear_0/w[0,0]
3x0e,16x0e"``. A map takes every mlip array once and sets every array of ours once;
anything else is an error that names the parameter.
"""

from collections.abc import Callable, Mapping

import e3nn_jax as e3nn
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def flatten_mlip_params(params: Mapping) -> dict[str, np.ndarray]:
    """mlip's nested parameter dict as ``{"params/Module_0/kernel": array}``.

    Args:
        params: Nested mappings (dicts or flax ``FrozenDict``) of arrays.

    Returns:
        The arrays by their "/"-joined paths, in the order of the mappings.
    """
    flat: dict[str, np.ndarray] = {}

    def visit(node, path: str) -> None:
        if isinstance(node, Mapping):
            for key, child in node.items():
                visit(child, f"{path}/{key}" if path else str(key))
        else:
            flat[path] = np.asarray(node)

    visit(params, "")
    return flat


class MlipParams:
    """mlip's arrays by path, remembering which a map has taken."""

    def __init__(self, params: Mapping):
        """Args:
        params: mlip's nested parameter dict.
        """
        self.arrays = flatten_mlip_params(params)
        self.taken: set[str] = set()

    def take(self, name: str) -> np.ndarray:
        """The array named ``name``.

        Raises:
            ValueError: If mlip's tree has no such parameter.
        """
        if name not in self.arrays:
            raise ValueError(f"mlip parameter {name!r} is missing")
        self.taken.add(name)
        return self.arrays[name]

    def names_under(self, module: str) -> list[str]:
        """The names of the parameters of ``module`` (a path prefix).

        Raises:
            ValueError: If the module has no parameter.
        """
        names = [name for name in self.arrays if name.startswith(module + "/")]
        if not names:
            raise ValueError(f"mlip module {module!r} is missing (no parameter)")
        return names

    def take_only(self, module: str) -> tuple[str, np.ndarray]:
        """The name and array of the one parameter of ``module``.

        Raises:
            ValueError: If the module has no parameter or several.
        """
        names = self.names_under(module)
        if len(names) != 1:
            raise ValueError(
                f"mlip module {module!r} has {len(names)} parameters "
                f"({', '.join(map(repr, names))}); expected one"
            )
        return names[0], self.take(names[0])

    def check_all_taken(self) -> None:
        """Raises ValueError naming the first parameter no array of ours took."""
        for name in self.arrays:
            if name not in self.taken:
                raise ValueError(
                    f"unexpected mlip parameter {name!r}: no array of "
                    "this network takes it"
                )


class Assignments:
    """Arrays of another library to set into a network, checked and set all at
    once."""

    def __init__(self, source: str = "mlip"):
        """Args:
        source: The other library's name, for the error messages.
        """
        self.entries: list[tuple[Callable, str, np.ndarray]] = []
        self.source = source

    def add(self, where: Callable, name: str, value: np.ndarray) -> None:
        """Sets ``where(network)`` to ``value``, the source's parameter ``name``."""
        self.entries.append((where, name, np.asarray(value)))

    def apply(self, network: eqx.Module) -> eqx.Module:
        """``network`` with every array set, in the dtype of ours.

        Raises:
            ValueError: If a shape differs (naming the mlip parameter), two mlip
                parameters set the same array of ours, or an array of ours gets
                none (naming our array).
        """
        olds, setters = [], {}
        for where, name, value in self.entries:
            old = where(network)
            if not eqx.is_array(old):
                raise ValueError(
                    f"{self.source} parameter {name!r} maps to no array of ours"
                )
            if value.shape != old.shape:
                raise ValueError(
                    f"{self.source} parameter {name!r} has shape {value.shape}; "
                    f"the array of ours it maps to has {old.shape}"
                )
            if id(old) in setters:
                raise ValueError(
                    f"{self.source} parameters {setters[id(old)]!r} and {name!r} "
                    "map to the same array"
                )
            setters[id(old)] = name
            olds.append(old)
        arrays = eqx.filter(network, eqx.is_array)
        for path, leaf in jax.tree_util.tree_flatten_with_path(arrays)[0]:
            if id(leaf) not in setters:
                raise ValueError(
                    f"no {self.source} parameter for our array "
                    f"{jax.tree_util.keystr(path)}"
                )
        values = [
            jnp.asarray(value, old.dtype)
            for (_, _, value), old in zip(self.entries, olds, strict=True)
        ]
        wheres = [where for where, _, _ in self.entries]
        return eqx.tree_at(lambda n: [where(n) for where in wheres], network, values)


def output_block(
    full: np.ndarray,
    irreps_out: e3nn.Irreps,
    i_out: int,
    irrep: str,
    row_order: Mapping[str, np.ndarray] | None,
    module: str,
) -> np.ndarray:
    """The columns of one output block ``irreps_out[i_out]`` (an ``irrep``) of
    ``full``, mlip's map [..., rows, all outputs of ``irrep``], with its rows
    reordered by ``row_order[irrep]`` (None: kept).

    Raises:
        ValueError: ``row_order`` is not a permutation of the block's rows.
    """
    start = sum(
        mul for k, (mul, ir) in enumerate(irreps_out) if str(ir) == irrep and k < i_out
    )
    block = full[..., start : start + irreps_out[i_out].mul]
    if row_order is not None:
        rows = row_order[irrep]
        if sorted(rows) != list(range(block.shape[-2])):
            raise ValueError(
                f"mlip's {module!r}: {block.shape[-2]} rows of "
                f"{irrep}, {len(rows)} of ours"
            )
        block = block[..., rows, :]
    return block


def layer_part(index: int, *names: str) -> Callable:
    """``network.layers[index].<names...>`` as a function of the network (where an
    assignment goes)."""

    def where(network: eqx.Module):
        module = network.layers[index]
        for name in names:
            module = getattr(module, name)
        return module

    return where
