"""The settings of graph construction and batching (GraphDatasetBuilder.Config)."""

import dataclasses
from typing import Literal

from mlip_eqx.data.graph_creation import DEFAULT_MIN_INTERATOMIC_DISTANCE
from mlip_eqx.utils.config import (
    Config,
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)


@dataclasses.dataclass(frozen=True)
class GraphDatasetBuilderConfig(Config):
    """Settings of graph construction and batching.

    Attributes:
        graph_cutoff_angstrom: Neighbour cutoff in Å.
        min_interatomic_distance_angstrom: A structure with two atoms closer than
            this (in Å; a periodic image of an atom, or of the atom itself, counts)
            is an error naming the structure and the atoms; 0 turns the check off.
        max_n_node: If set, a batch holds at most ``batch_size * max_n_node``
            atoms (a memory limit; batches of large structures then hold fewer
            structures), and a structure with more is an error naming it. None:
            no limit, every structure of every split fits.
        max_n_edge: If set, a batch holds at most ``2 * batch_size * max_n_edge``
            directed edges (``max_n_edge`` counts neighbour pairs, as in the
            original library). None: no limit.
        batch_size: Maximum number of structures per batch.
        max_batch_shapes: Largest number of padded batch shapes per split: the
            structures are bucketed by size, one shape per bucket, and the jitted
            steps compile once per shape (1: one shape for all structures).
        target_padding_efficiency: The fewest shapes whose node and edge padding
            efficiencies (real / padded) both reach this are used.
        num_batch_prefetch: Batches prepared ahead on a background thread (0: none).
        use_formation_energies: Subtract the fitted E0s from all energy labels (then
            the model should use zero atomic energies).
        avg_num_neighbors: Use this instead of computing it from the training set.
        avg_r_min_angstrom: Use this instead of computing it from the training set.
        validation_fraction: Fraction of the training structures held out for
            validation when the reader gives no validation data. The default 0
            holds out nothing (as the original library): the validation split is
            then empty (a warning says so), and evaluating it in the training
            loop is an error; give validation data or set e.g. 0.1.
        split_seed: Seed of that hold-out split.
        shuffle_seed: Seed of the per-epoch shuffling of the training set.
        strict_elements: If True, validation/test structures with elements absent
            from the training set raise an error; if False they are dropped with a
            warning.
        energy_scaling: "none" (scaling mean 0 eV, stdev 1 eV, as in the original
            library), "rms_forces" (mean per-atom energy after the E0s in use and
            the RMS of the force components, as MACE's rms_forces_scaling) or
            "auto": "rms_forces" when the E0s come from isolated atoms or are
            given, "none" when they are fitted by least squares.
    """

    graph_cutoff_angstrom: PositiveFloat = 5.0
    min_interatomic_distance_angstrom: NonNegativeFloat = (
        DEFAULT_MIN_INTERATOMIC_DISTANCE
    )
    max_n_node: PositiveInt | None = None
    max_n_edge: PositiveInt | None = None
    batch_size: PositiveInt = 16
    max_batch_shapes: PositiveInt = 6
    target_padding_efficiency: Fraction = 0.9
    num_batch_prefetch: NonNegativeInt = 1
    use_formation_energies: bool = False
    avg_num_neighbors: PositiveFloat | None = None
    avg_r_min_angstrom: PositiveFloat | None = None
    validation_fraction: Fraction = 0.0
    split_seed: int = 42
    shuffle_seed: int = 42
    strict_elements: bool = False
    energy_scaling: Literal["auto", "none", "rms_forces"] = "auto"
