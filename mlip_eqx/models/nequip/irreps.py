"""The irreps of each NequIP layer, planned before any array exists.

The original library (mlip 0.1) labels the node features of every layer with all
the irreps they may hold, although some are still identically zero: the first
layer's input is labelled with every ``node_irreps`` but only its even scalars are
nonzero, and odd scalars, for instance, first appear after three layers. Its
linear maps and self-connections act on the nonzero irreps only, but the radial
MLP has one output for every labelled tensor-product path, and the irreps a layer
produces are chosen from the labels. Both are reproduced here, so that the
function, the parameter layout and the parameter count are the original's; the
arrays hold only the nonzero irreps.
"""

import dataclasses

import e3nn_jax as e3nn

# The gates are even scalars: every layer's input has them (node_irreps must
# contain 0e), and 0e x Y_0 reaches them.
GATE_IRREP = e3nn.Irrep("0e")


@dataclasses.dataclass(frozen=True)
class RadialPath:
    """One tensor-product path of the original layout, weighted per channel by
    the radial MLP.

    Attributes:
        source: Irrep of the sender features.
        degree: Degree of the spherical harmonic.
        target: Irrep of the message.
        num_channels: Multiplicity of the source (one radial weight each).
    """

    source: e3nn.Irrep
    degree: int
    target: e3nn.Irrep
    num_channels: int


@dataclasses.dataclass(frozen=True)
class LayerIrreps:
    """The irreps of one NequIP layer.

    Attributes:
        labelled_in: Labels of the input features in the original library.
        nonzero_in: The input irreps that are not identically zero (those we hold).
        gate_in: Output of the linear map and self-connection: the scalars, one
            gate per non-scalar channel, the non-scalars (simplified).
        labelled_out: Labels of the output features (scalars, then non-scalars).
        nonzero_out: The output irreps that are not identically zero.
        radial_paths: The original tensor-product paths of ``labelled_in``, in the
            order of the radial MLP's outputs (source, harmonic, target).
    """

    labelled_in: e3nn.Irreps
    nonzero_in: e3nn.Irreps
    gate_in: e3nn.Irreps
    labelled_out: e3nn.Irreps
    nonzero_out: e3nn.Irreps
    radial_paths: tuple[RadialPath, ...]

    @property
    def num_radial_weights(self) -> int:
        """Number of outputs of the radial MLP."""
        return sum(path.num_channels for path in self.radial_paths)


def harmonic_irrep(degree: int) -> e3nn.Irrep:
    """The irrep of the spherical harmonics of a degree: parity (-1)^l."""
    return e3nn.Irrep(degree, (-1) ** degree)


def layer_irreps(
    node_irreps: e3nn.Irreps,
    labelled_in: e3nn.Irreps,
    nonzero_in: e3nn.Irreps,
    l_max: int,
) -> LayerIrreps:
    """Plans one layer from its input.

    Args:
        node_irreps: The config's node irreps (the targets of every layer).
        labelled_in: Labels of the input features (``node_irreps`` for the first
            layer, the previous layer's ``labelled_out`` after).
        nonzero_in: The input irreps that are not identically zero.
        l_max: Highest degree of the spherical harmonics.

    Returns:
        The layer's irreps.
    """
    reachable = {
        target
        for _, source in labelled_in
        for degree in range(l_max + 1)
        for target in source * harmonic_irrep(degree)
    }
    kept = [(mul, ir) for mul, ir in node_irreps if ir in reachable]
    scalars = e3nn.Irreps([(mul, ir) for mul, ir in kept if ir.l == 0])
    nonscalars = e3nn.Irreps([(mul, ir) for mul, ir in kept if ir.l > 0])
    gates = e3nn.Irreps([(mul, GATE_IRREP) for mul, _ in nonscalars])
    gate_in = (scalars + gates + nonscalars).simplify()
    radial_paths = tuple(
        RadialPath(source, degree, target, mul)
        for mul, source in labelled_in
        for degree in range(l_max + 1)
        for target in source * harmonic_irrep(degree)
        if target in gate_in
    )
    nonzero = {path.target for path in radial_paths if path.source in nonzero_in}
    nonzero |= {ir for _, ir in nonzero_in if ir in gate_in}
    labelled_out = scalars + nonscalars
    return LayerIrreps(
        labelled_in=labelled_in,
        nonzero_in=nonzero_in,
        gate_in=gate_in,
        labelled_out=labelled_out,
        nonzero_out=e3nn.Irreps([(m, ir) for m, ir in labelled_out if ir in nonzero]),
        radial_paths=radial_paths,
    )
