"""SimulationState: what a simulation recorded, snapshot by snapshot."""

import dataclasses

import numpy as np

# The fields that hold one entry per snapshot.
SNAPSHOT_FIELDS = (
    "positions",
    "forces",
    "velocities",
    "temperature",
    "kinetic_energy",
    "potential_energy",
    "cell",
    "snapshot_steps",
)

Recorded = np.ndarray | list[np.ndarray] | None


@dataclasses.dataclass
class SimulationState:
    """The snapshots of a simulation so far (numpy, host), in ASE's units.

    Snapshots are taken at step 0 and after every ``snapshot_interval`` steps. In
    a batched simulation (the JAX-MD engine with a list of structures), every
    field but ``step`` and ``compute_time_seconds`` is a list with one entry per
    structure; :meth:`system` gives the state of one of them.

    Attributes:
        atomic_numbers: Atomic numbers, [num_atoms].
        positions: Positions in Å, [num_snapshots, num_atoms, 3].
        forces: Forces in eV/Å, [num_snapshots, num_atoms, 3].
        velocities: Velocities in ASE's unit Å/(ASE time) = sqrt(eV/u), as
            ``atoms.get_velocities()``, [num_snapshots, num_atoms, 3]; None for
            minimisations.
        temperature: Instantaneous temperature in K (3 degrees of freedom per
            atom), [num_snapshots]; None for minimisations.
        kinetic_energy: Kinetic energy in eV, [num_snapshots]; None for
            minimisations.
        potential_energy: Potential energy in eV, [num_snapshots].
        cell: Lattice vectors as rows in Å (zeros without a cell),
            [num_snapshots, 3, 3].
        pbc: Periodicity along each lattice vector, [3].
        snapshot_steps: The step of every snapshot, [num_snapshots].
        step: Steps done so far.
        compute_time_seconds: Time spent simulating so far (compilation
            included, loggers excluded), in s.
    """

    atomic_numbers: Recorded = None
    positions: Recorded = None
    forces: Recorded = None
    velocities: Recorded = None
    temperature: Recorded = None
    kinetic_energy: Recorded = None
    potential_energy: Recorded = None
    cell: Recorded = None
    pbc: Recorded = None
    snapshot_steps: Recorded = None
    step: int = 0
    compute_time_seconds: float = 0.0

    @property
    def is_batched(self) -> bool:
        """Whether the fields hold one entry per structure of a batch."""
        return isinstance(self.atomic_numbers, list)

    def system(self, index: int) -> "SimulationState":
        """The state of the ``index``-th structure of a batched simulation (the
        state itself, for index 0 of an unbatched one).

        Raises:
            IndexError: There is no such structure.
        """
        if not self.is_batched:
            if index != 0:
                raise IndexError(
                    f"SimulationState.system({index}): the simulation has one system."
                )
            return self
        count = len(self.atomic_numbers)
        if not 0 <= index < count:
            raise IndexError(
                f"SimulationState.system({index}): the batch has {count} systems."
            )
        values = {
            field.name: getattr(self, field.name) for field in dataclasses.fields(self)
        }
        return SimulationState(
            **{
                name: value[index] if isinstance(value, list) else value
                for name, value in values.items()
            }
        )


def append_snapshots(
    state: SimulationState | None, snapshots: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The snapshot fields of ``state`` (one system) followed by ``snapshots``.

    Args:
        state: The state so far (None: none yet).
        snapshots: New values of some :data:`SNAPSHOT_FIELDS`, each with the
            snapshot axis first.

    Returns:
        The concatenated fields (only those in ``snapshots``).
    """
    joined = {}
    for name, new in snapshots.items():
        old = None if state is None else getattr(state, name)
        joined[name] = new if old is None else np.concatenate([old, new], axis=0)
    return joined
