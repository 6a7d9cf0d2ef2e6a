"""The order of the messages of mlip 0.2's e3j convolution (its
``O3MessagePassingBlock``, used by its NequIP and MACE) against ours.

mlip's convolution factors the sender multiplicities by their greatest common
divisor g (e3j's "trailing channels" layout, mlip's default): channel k of an
irrep of multiplicity m is sub-channel k mod (m / g) of group k // (m / g). The
messages of each output irrep are ordered group-major, then by path slot (sender
irrep, harmonic degree, sub-channel: the order in which e3j generates them, then
sorted stably by output irrep); the radial MLP's outputs are slot-major, group
minor. Ours are ordered per radial path and channel, so the two maps are permuted
(``E3jMessageOrder``).
"""

import math
from collections.abc import Iterable, Sequence

import e3nn_jax as e3nn
import numpy as np

from mlip_eqx.models.blocks.message_passing import MessageCoupling
from mlip_eqx.models.nequip.irreps import RadialPath, harmonic_irrep


class E3jMessageOrder:
    """Where mlip's convolution puts each (radial path, channel) of a layer: its
    radial MLP output column and its row of ``linear_out``'s input."""

    def __init__(
        self,
        sources: e3nn.Irreps,
        targets: e3nn.Irreps,
        paths: Sequence[RadialPath],
        l_max: int,
    ):
        """Args:
        sources: The sender irreps (with multiplicities) of the convolution.
        targets: The message irreps it keeps (its filter).
        paths: Our radial paths, in the order of our radial MLP's outputs.
        l_max: Highest degree of the harmonics.
        """
        self.groups = math.gcd(*(mul for mul, _ in sources))
        self.multiplicity = {ir: mul for mul, ir in sources}
        slots: dict[e3nn.Irrep, list[tuple[e3nn.Irrep, int, int]]] = {}
        for mul, source in sources:
            for degree in range(l_max + 1):
                for target in source * harmonic_irrep(degree):
                    if target in targets:
                        slots.setdefault(target, []).extend(
                            (source, degree, s) for s in range(mul // self.groups)
                        )
        self.slots = {target: {slot: t for t, slot in enumerate(slots[target])}
                      for target in slots}  # fmt: skip
        self.offsets, offset = {}, 0
        for target in sorted(slots):
            self.offsets[target] = offset
            offset += len(slots[target])
        self.paths = tuple(paths)

    def _slot(self, source: e3nn.Irrep, degree: int, target: e3nn.Irrep, k: int):
        """(group, slot among the target's messages) of channel ``k``."""
        group, sub = divmod(k, self.multiplicity[source] // self.groups)
        return group, self.slots[target][source, degree, sub]

    def radial_columns(self) -> np.ndarray:
        """mlip's column of the radial MLP for each of our columns (ours follow
        ``paths``, channel-minor)."""
        columns = []
        for path in self.paths:
            for k in range(path.num_channels):
                group, slot = self._slot(path.source, path.degree, path.target, k)
                columns.append((self.offsets[path.target] + slot) * self.groups + group)
        return np.asarray(columns)

    def linear_out_rows(
        self, couplings: Iterable[MessageCoupling]
    ) -> dict[str, np.ndarray]:
        """For each message irrep, mlip's input row of ``linear_out`` for each of
        ours (ours: coupling after coupling, path-major, channel-minor)."""
        rows: dict[str, list[int]] = {}
        for coupling in couplings:
            for target, (source, degree) in zip(
                coupling.path_irreps, coupling.path_sources
            ):
                num_slots = len(self.slots[target])
                for k in range(coupling.num_channels):
                    group, slot = self._slot(source, degree, target, k)
                    rows.setdefault(str(target), []).append(group * num_slots + slot)
        return {irrep: np.asarray(order) for irrep, order in rows.items()}


def coupling_paths(coupling: MessageCoupling) -> tuple[RadialPath, ...]:
    """The radial paths of one coupling (ours: one per message path), in the
    order of the radial MLP's outputs."""
    return tuple(
        RadialPath(source, degree, target, coupling.num_channels)
        for target, (source, degree) in zip(coupling.path_irreps, coupling.path_sources)
    )


def radial_output_kernel(
    kernel: np.ndarray, name: str, order: E3jMessageOrder, flip_odd: bool = False
) -> np.ndarray:
    """mlip's last radial MLP kernel ``name`` with its columns in our order.

    Args:
        kernel: [hidden, outputs].
        name: The mlip parameter, for the error messages.
        order: The layer's message order.
        flip_odd: Negate the columns of paths with harmonics of odd degree (for
            harmonics of the opposite edge direction).

    Raises:
        ValueError: If the kernel's outputs are not ours.
    """
    columns = order.radial_columns()
    if kernel.ndim != 2 or kernel.shape[1] != len(columns):
        raise ValueError(
            f"mlip parameter {name!r} has shape {kernel.shape}; "
            f"expected {len(columns)} outputs"
        )
    if sorted(columns) != list(range(len(columns))):
        raise ValueError(f"{name}: mlip's outputs and ours differ")
    kernel = kernel[:, columns]
    if flip_odd:
        degrees = np.repeat(
            [path.degree for path in order.paths],
            [path.num_channels for path in order.paths],
        )
        kernel = kernel * (-1.0) ** degrees
    return kernel
