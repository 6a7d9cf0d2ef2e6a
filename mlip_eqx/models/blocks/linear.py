"""Equivariant linear maps between irreps, optionally one per species."""

import e3nn_jax as e3nn
import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from mlip_eqx.models.initialisers import normal


class EquivariantLinear(eqx.Module):
    """Linear map mixing the channels of equal irreps (e3nn's ``FunctionalLinear``
    with "path" normalisation): weights ~ N(0, 1), each output is divided by the
    square root of its fan-in.

    With ``num_species`` set, every species has its own weights (indexed by each
    node's species), with the same fan-in scaling (as mlip 0.2; mlip 0.1 further
    divided by sqrt(num_species)).

    Attributes:
        weights: One [mul_in, mul_out] (or [num_species, mul_in, mul_out]) array per
            pair of equal input and output irreps.
        irreps_in: Input irreps (regrouped).
        irreps_out: Output irreps.
        num_species: Number of weight sets, or None for shared weights.
    """

    weights: tuple[Float[Array, "..."], ...]
    irreps_in: e3nn.Irreps = eqx.field(static=True)
    irreps_out: e3nn.Irreps = eqx.field(static=True)
    num_species: int | None = eqx.field(static=True)
    _paths: tuple[tuple[int, int, float], ...] = eqx.field(static=True)

    def __init__(
        self,
        irreps_in: e3nn.Irreps,
        irreps_out: e3nn.Irreps,
        *,
        dtype: DTypeLike,
        key: jax.Array,
        num_species: int | None = None,
        force_irreps_out: bool = False,
    ):
        """Args:
        irreps_in: Input irreps.
        irreps_out: Output irreps; those absent from the input are dropped unless
            ``force_irreps_out`` (then they are zero).
        dtype: Dtype of the weights.
        key: Random key.
        num_species: Number of species for species-dependent weights.
        force_irreps_out: Keep output irreps that no input reaches.
        """
        self.irreps_in = e3nn.Irreps(irreps_in).regroup()
        irreps_out = e3nn.Irreps(irreps_out)
        if not force_irreps_out:
            irreps_out = irreps_out.filter(keep=self.irreps_in).simplify()
        self.irreps_out = irreps_out
        self.num_species = num_species
        linear = e3nn.FunctionalLinear(
            self.irreps_in,
            self.irreps_out,
            path_normalization="path",
            gradient_normalization="path",
        )
        self._paths = tuple(
            (ins.i_in, ins.i_out, ins.path_weight) for ins in linear.instructions
        )
        keys = jax.random.split(key, max(len(linear.instructions), 1))
        prefix = () if num_species is None else (num_species,)
        self.weights = tuple(
            normal(k, prefix + ins.path_shape, dtype, ins.weight_std)
            for k, ins in zip(keys, linear.instructions)
        )

    def __call__(
        self,
        features: e3nn.IrrepsArray,
        node_species: Int[Array, " n_node"] | None = None,
    ) -> e3nn.IrrepsArray:
        """Maps features [n, irreps_in] to [n, irreps_out].

        Args:
            features: Input, with irreps equal to ``irreps_in`` after regrouping.
            node_species: Species of each row; required iff ``num_species`` is set.
        """
        if features.irreps.regroup() != self.irreps_in:
            raise ValueError(
                f"EquivariantLinear expects irreps {self.irreps_in}, "
                f"got {features.irreps}."
            )
        if (node_species is None) != (self.num_species is None):
            raise ValueError("node_species must be given iff num_species is set.")
        features = features.regroup()
        leading = features.shape[:-1]
        outputs: list[Array | None] = [None] * len(self.irreps_out)
        for (i_in, i_out, path_weight), weight in zip(self._paths, self.weights):
            chunk = features.chunks[i_in]
            if chunk is None:
                continue
            if node_species is None:
                path = jnp.einsum("uw,...ui->...wi", weight, chunk)
            else:
                path = jnp.einsum("nuw,nui->nwi", weight[node_species], chunk)
            path = path_weight * path
            outputs[i_out] = path if outputs[i_out] is None else outputs[i_out] + path
        return e3nn.from_chunks(self.irreps_out, outputs, leading, features.dtype)
