"""Hyperparameters of NequIP; defaults are those of the original mlip library."""

import dataclasses

import e3nn_jax as e3nn

from mlip_eqx.models.activations import ActivationName
from mlip_eqx.models.atomic_energies import (
    AtomicEnergiesChoice,
    check_atomic_numbers,
    with_float_energies,
)
from mlip_eqx.models.blocks.radial import RadialEnvelope
from mlip_eqx.utils.config import (
    Config,
    ConfigError,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    config_hash,
)


@dataclasses.dataclass(frozen=True)
class NequipConfig(Config):
    """Hyperparameters of :class:`~mlip_eqx.models.nequip.network.Nequip`.

    Attributes:
        num_layers: Number of NequIP layers (convolution, gate, self-connection).
        node_irreps: Irreps of the node features, each irrep at most once; must
            contain at least 2x0e (the readout halves the even scalars).
        l_max: Highest degree of the spherical harmonics of the edge directions.
        num_bessel: Number of Bessel functions of the radial basis.
        radial_net_nonlinearity: Activation of the radial MLP's hidden layers.
        radial_net_n_hidden: Width of the radial MLP's hidden layers.
        radial_net_n_layers: Number of hidden layers of the radial MLP.
        radial_envelope: "polynomial_envelope" or "soft_envelope".
        scalar_mlp_std: Variance times fan-in of the initial weights of the radial
            MLP's hidden layers (named as in the original library, where it is
            passed as the variance scale).
        atomic_energies: E0 per element: None or "average" for the dataset's,
            "zero" for none, or a {Z: eV} map covering the dataset's elements.
        avg_num_neighbors: Normalisation of the neighbour sum; None takes the
            dataset's.
        num_readout_heads: Number of readout heads: a structure's data set
            (``dataset_idx``) selects its head, as in the original library's
            0.2; 1: one head for every data set.
        label_zero_irreps: Whether each layer's irreps are planned, as in the
            original library's 0.1, from labels of its input that include irreps
            still identically zero (the first layer's input is labelled with
            every ``node_irreps``): they add radial MLP outputs and gates that do
            not change the function. False: from the irreps the input holds, as
            in the original library's 0.2 (fewer parameters).
        use_residual_connection: Whether each layer adds a species-dependent
            linear map of its input (the self-connection) before the gate (both
            versions of the original library: True; its 0.2 can turn it off).
        self_connection_fan_in_species: Whether the self-connection's output is
            also divided by sqrt(number of species), as the original library's
            0.1 computes it (a tensor product with the one-hot species, whose
            fan-in counts them); its 0.2 divides by sqrt(fan-in) only (False).
        gate_even_activation: Activation of the even scalars and even gates of
            the gate.
        gate_odd_activation: Activation of the odd scalars and odd gates (an odd
            function: the odd scalars change sign under inversion).
    """

    num_layers: PositiveInt = 2
    node_irreps: str = "128x0e + 128x0o + 64x1o + 64x1e + 4x2e + 4x2o"
    l_max: NonNegativeInt = 3
    num_bessel: PositiveInt = 8
    radial_net_nonlinearity: ActivationName = "swish"
    radial_net_n_hidden: PositiveInt = 64
    radial_net_n_layers: PositiveInt = 2
    radial_envelope: RadialEnvelope = "polynomial_envelope"
    scalar_mlp_std: PositiveFloat = 4.0
    atomic_energies: AtomicEnergiesChoice = dataclasses.field(
        default=None, metadata={"convert": with_float_energies}
    )
    avg_num_neighbors: PositiveFloat | None = None
    num_readout_heads: PositiveInt = 1
    label_zero_irreps: bool = True
    use_residual_connection: bool = True
    self_connection_fan_in_species: bool = True
    gate_even_activation: ActivationName = "swish"
    gate_odd_activation: ActivationName = "tanh"

    def __check_init__(self) -> None:
        name = type(self).__name__
        check_atomic_numbers(self.atomic_energies, f"{name}.atomic_energies")
        try:
            irreps = e3nn.Irreps(self.node_irreps)
        except (ValueError, AssertionError) as error:
            raise ConfigError(
                f"{name}.node_irreps: {self.node_irreps!r} is not an irreps string "
                f"({error})."
            ) from None
        listed = [str(ir) for _, ir in irreps]
        repeated = sorted({ir for ir in listed if listed.count(ir) > 1})
        if any(mul == 0 for mul, _ in irreps) or repeated:
            raise ConfigError(
                f"{name}.node_irreps: {self.node_irreps!r} must list each irrep "
                f"once with a multiplicity > 0 (repeated: {repeated})."
            )
        if irreps.count("0e") < 2:
            raise ConfigError(
                f"{name}.node_irreps: {self.node_irreps!r} needs at least 2x0e "
                "(the readout maps the even scalars to half as many)."
            )

    def __hash__(self) -> int:
        return config_hash(self)
