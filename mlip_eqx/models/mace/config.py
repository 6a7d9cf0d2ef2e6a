"""Hyperparameters of MACE; defaults are those of the original mlip library."""

import dataclasses
from typing import Annotated, Literal

import e3nn_jax as e3nn
from beartype.vale import Is

from mlip_eqx.models.activations import ActivationName
from mlip_eqx.models.atomic_energies import check_atomic_numbers, with_float_energies
from mlip_eqx.models.blocks.pair_terms import DistanceTransform
from mlip_eqx.models.blocks.radial import RadialEnvelope
from mlip_eqx.utils.config import (
    Config,
    ConfigError,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    config_hash,
)

CorrelationOrder = Annotated[int, Is[lambda value: 1 <= value < 5]]


@dataclasses.dataclass(frozen=True)
class MaceConfig(Config):
    """Hyperparameters of :class:`~mlip_eqx.models.mace.network.Mace`.

    Attributes:
        num_layers: Number of MACE layers (message passing + product basis).
        num_channels: Number of channels of every irrep of the node features.
        l_max: Highest degree of the spherical harmonics of the edge directions and of
            the messages.
        node_symmetry: Highest degree kept in the node features after the product
            basis; None means ``l_max``. Must be <= ``l_max``.
        correlation: Highest body order of the symmetric contraction (1 to 4).
        readout_irreps: Irreps of the hidden layer of the last, non-linear readout
            and of the readout output (whose first irrep must be 0e).
        num_readout_heads: Number of readout heads: a structure's data set
            (``dataset_idx``) selects its head, as in the original library's
            0.2 (its 0.1 summed the heads); 1: one head for every data set.
        include_pseudotensors: Keep irreps of both parities in the messages; if
            False, only parity (-1)^l.
        num_bessel: Number of Bessel functions of the radial basis.
        polynomial_cutoff_power: Power p of the polynomial envelope (mace-torch's
            ``num_polynomial_cutoff``); only with ``radial_envelope`` =
            "polynomial_envelope" (and of the ZBL envelope).
        radial_mlp_hidden: Sizes of the hidden layers of the radial MLPs
            (mace-torch's ``radial_MLP``).
        activation: Activation of the radial MLP and of the non-linear readout.
        radial_envelope: "polynomial_envelope" or "soft_envelope".
        first_layer_residual: The first layer, like the later ones, adds a
            species-dependent linear map of its input (the embedding) to the
            product basis output, and has no species-dependent map after its
            interaction (mace-torch's ``RealAgnosticResidualInteractionBlock`` as
            first block, as ``ScaleShiftMACE`` models are often built); False:
            mlip's and mace-torch's ``RealAgnosticInteractionBlock``.
        symmetric_tensor_product_basis: Parametrise the symmetric contraction with
            the symmetric tensor basis (fewer weights, same function space) instead
            of the full reduced tensor basis.
        atomic_energies: E0 per element: None or "average" for the dataset's,
            "zero" for none, or a {Z: eV} map covering the dataset's elements.
        avg_num_neighbors: Normalisation of the neighbour sum; None takes the
            dataset's.
        avg_r_min: Typical shortest edge length in Å for the radial normalisation;
            None takes the dataset's.
        normalise_radial_embedding: True (mlip's MACE): the radial embedding is
            scaled so that its mean square over lengths in [avg_r_min, cutoff] is
            1 (e.g. x5.5 for 8 Bessel functions, cutoff 5 Å, avg_r_min 1 Å, which
            makes untrained forces about 40 times larger). False: mace-torch's
            unscaled embedding (that of converted mace-torch models; train with
            it to start from the same untrained model as mace-torch). With a
            ``distance_transform`` the embedding is never scaled (the scale is
            that of untransformed lengths).
        density_normalisation: Every interaction divides its neighbour sum by
            1 + a learned density of neighbours instead of avg_num_neighbors
            (mace-torch's ``RealAgnosticDensity(Residual)InteractionBlock``, as
            in MACE-MP-0b2, MPA-0 and OMAT-0).
        distance_transform: "none", or the species-dependent transform of the
            edge length that the Bessel basis takes: "agnesi" (mace-torch's
            ``AgnesiTransform``, as in MACE-MP-0b and later) or "soft"
            (``SoftTransform``); the envelope still takes the length.
        pair_repulsion: Add the ZBL pair repulsion to the readouts before the
            energy scaling (mace-torch's ``pair_repulsion``, scaled like its
            ``ScaleShiftMACE``); its envelope is the polynomial one of power
            ``polynomial_cutoff_power``, whatever ``radial_envelope``.
        num_species: Number of species slots; None takes the dataset's number of
            elements.
    """

    num_layers: PositiveInt = 2
    num_channels: PositiveInt = 128
    l_max: NonNegativeInt = 3
    node_symmetry: NonNegativeInt | None = None
    correlation: CorrelationOrder = 3
    readout_irreps: tuple[str, str] = ("16x0e", "0e")
    num_readout_heads: PositiveInt = 1
    include_pseudotensors: bool = False
    num_bessel: PositiveInt = 8
    polynomial_cutoff_power: PositiveInt = 5
    radial_mlp_hidden: tuple[PositiveInt, ...] = (64, 64, 64)
    activation: ActivationName = "silu"
    radial_envelope: RadialEnvelope = "polynomial_envelope"
    first_layer_residual: bool = False
    symmetric_tensor_product_basis: bool = False
    atomic_energies: Literal["average", "zero"] | dict[int, float] | None = (
        dataclasses.field(default=None, metadata={"convert": with_float_energies})
    )
    avg_num_neighbors: PositiveFloat | None = None
    avg_r_min: PositiveFloat | None = None
    normalise_radial_embedding: bool = True
    density_normalisation: bool = False
    distance_transform: DistanceTransform = "none"
    pair_repulsion: bool = False
    num_species: PositiveInt | None = None

    def __check_init__(self) -> None:
        name = type(self).__name__
        if self.node_symmetry is not None and self.node_symmetry > self.l_max:
            raise ConfigError(
                f"{name}.node_symmetry: invalid value {self.node_symmetry!r} "
                f"(expected at most l_max={self.l_max})."
            )
        if (
            self.polynomial_cutoff_power != 5
            and self.radial_envelope != "polynomial_envelope"
            and not self.pair_repulsion
        ):
            raise ConfigError(
                f"{name}.polynomial_cutoff_power: {self.polynomial_cutoff_power} "
                f"needs radial_envelope='polynomial_envelope' (not "
                f"{self.radial_envelope!r}) or pair_repulsion."
            )
        check_atomic_numbers(self.atomic_energies, f"{name}.atomic_energies")
        for irreps in self.readout_irreps:
            try:
                e3nn.Irreps(irreps)
            except (ValueError, AssertionError) as error:
                raise ConfigError(
                    f"{name}.readout_irreps: {irreps!r} is not an irreps string "
                    f"({error})."
                ) from None
        output = e3nn.Irreps(self.readout_irreps[1])
        if len(output) == 0 or output[0].ir != e3nn.Irrep("0e"):
            raise ConfigError(
                f"{name}.readout_irreps: the output irreps "
                f"{self.readout_irreps[1]!r} must start with 0e (the energy)."
            )

    def __hash__(self) -> int:
        return config_hash(self)

    @property
    def resolved_node_symmetry(self) -> int:
        """``node_symmetry``, or ``l_max`` when it is None."""
        return self.l_max if self.node_symmetry is None else self.node_symmetry
