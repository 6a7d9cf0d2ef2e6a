"""The built-in demo data set: EMT-labelled, off-lattice fcc alloys of Cu, Ag, Au, Ni.

Each structure is an (n x n x n) repetition of the 4-atom conventional fcc cell with
its own random composition, a lattice constant from Vegard's law, a random symmetric
strain (so cells are triclinic in general), rattled positions and a short Langevin MD
run at a random temperature. The final frame is labelled with ASE's EMT calculator.
Everything is deterministic given one integer seed.
"""

import dataclasses
import logging
import os
import pathlib

import ase
import ase.io
import numpy as np
from ase import units
from ase.calculators.emt import EMT
from ase.data import atomic_numbers, reference_states
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta

from mlip_eqx.utils.files import atomic_write
from mlip_eqx.utils.progress import track

logger = logging.getLogger("mlip_eqx")

# Bump whenever the generated structures or labels change, so old caches are ignored.
GENERATOR_VERSION = 1

DEMO_ELEMENTS = ("Cu", "Ag", "Au", "Ni")
_DEMO_NUMBERS = np.array([atomic_numbers[symbol] for symbol in DEMO_ELEMENTS])
_LATTICE_CONSTANTS = np.array(
    [reference_states[number]["a"] for number in _DEMO_NUMBERS]
)  # Å, fcc conventional cell
_FCC_BASIS = np.array(
    [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]
)  # fractional coordinates of the 4-atom conventional cell

_MAX_STRAIN = 0.03  # dimensionless, per strain component
_RATTLE_STDEV = 0.05  # Å
_TEMPERATURE_RANGE_K = (300.0, 1500.0)
_MD_STEPS_RANGE = (5, 20)  # inclusive
_MD_TIMESTEP = 2.0 * units.fs
_MD_FRICTION = 0.01 / units.fs

_SPLIT_NAMES = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class DemoDataset:
    """Paths of a cached demo data set and the parameters that produced it.

    Each file is extxyz with ``REF_energy`` (eV), ``REF_forces`` (eV/Å) and
    ``REF_stress`` (eV/Å³, ASE sign convention, flat 9 values of the 3x3 matrix
    in row-major order) labels; see :func:`generate_demo_structures`.

    Attributes:
        train_path: The training split.
        validation_path: The validation split.
        test_path: The test split.
        num_structures: Number of structures over all three splits.
        seed: Seed of the structures and of the split.
        repeat: Each cell is (repeat x repeat x repeat) conventional fcc cells, so it
            holds 4 * repeat**3 atoms.
        validation_fraction: Fraction of the structures in the validation split.
        test_fraction: Fraction of the structures in the test split.
    """

    train_path: pathlib.Path
    validation_path: pathlib.Path
    test_path: pathlib.Path
    num_structures: int
    seed: int
    repeat: int
    validation_fraction: float
    test_fraction: float


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")


def _make_structure(repeat: int, rng: np.random.Generator, index: int) -> ase.Atoms:
    """Builds, perturbs, equilibrates briefly and labels one demo structure."""
    num_atoms = 4 * repeat**3
    fractions = rng.dirichlet(np.ones(len(DEMO_ELEMENTS)))
    element_indices = rng.choice(len(DEMO_ELEMENTS), size=num_atoms, p=fractions)
    # Structure i contains element i mod 4, so any 4 structures hold every element.
    required_element = index % len(DEMO_ELEMENTS)
    if not np.any(element_indices == required_element):
        element_indices[rng.integers(num_atoms)] = required_element
    lattice_constant = float(np.mean(_LATTICE_CONSTANTS[element_indices]))  # Vegard

    grid = np.stack(
        np.meshgrid(*(np.arange(repeat),) * 3, indexing="ij"), axis=-1
    ).reshape(-1, 1, 3)
    fractional_positions = (grid + _FCC_BASIS).reshape(-1, 3) / repeat
    cubic_cell = np.eye(3) * lattice_constant * repeat
    atoms = ase.Atoms(
        numbers=_DEMO_NUMBERS[element_indices],
        positions=fractional_positions @ cubic_cell,
        cell=cubic_cell,
        pbc=True,
    )

    strain = rng.uniform(-_MAX_STRAIN, _MAX_STRAIN, size=(3, 3))
    strain = 0.5 * (strain + strain.T)
    atoms.set_cell(cubic_cell @ (np.eye(3) + strain), scale_atoms=True)
    atoms.positions += rng.normal(scale=_RATTLE_STDEV, size=(num_atoms, 3))

    atoms.calc = EMT()
    temperature_k = float(rng.uniform(*_TEMPERATURE_RANGE_K))
    thermalize_momenta(atoms, temperature_K=temperature_k, rng=rng)
    dynamics = Langevin(
        atoms,
        timestep=_MD_TIMESTEP,
        temperature_K=temperature_k,
        friction=_MD_FRICTION,
        fixcm=False,
        rng=rng,
    )
    dynamics.run(int(rng.integers(_MD_STEPS_RANGE[0], _MD_STEPS_RANGE[1] + 1)))
    atoms.wrap()

    labelled = ase.Atoms(
        numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True
    )
    labelled.info["REF_energy"] = float(atoms.get_potential_energy())
    labelled.arrays["REF_forces"] = np.array(atoms.get_forces())
    labelled.info["REF_stress"] = np.array(atoms.get_stress(voigt=False)).reshape(9)
    return labelled


def generate_demo_structures(
    num_structures: int, seed: int = 0, repeat: int = 2
) -> list[ase.Atoms]:
    """Generates labelled, periodic Cu/Ag/Au/Ni fcc alloy structures with EMT.

    Structure i depends only on (seed, repeat, i), so a smaller request gives a
    prefix of a larger one. Any 4 or more structures contain all four elements.

    Args:
        num_structures: How many structures to generate (>= 1).
        seed: Integer seed (>= 0) of everything random.
        repeat: Each cell is (repeat x repeat x repeat) conventional fcc cells, i.e.
            4 * repeat**3 atoms (>= 1).

    Returns:
        Structures with ``pbc=True``, no calculator, and labels
        ``info["REF_energy"]`` (eV, float), ``arrays["REF_forces"]`` (eV/Å,
        [n_atoms, 3]) and ``info["REF_stress"]`` (eV/Å³, ASE sign convention, the
        3x3 matrix flattened row-major to 9 values).
    """
    _check_positive_int("num_structures", num_structures)
    _check_seed(seed)
    _check_positive_int("repeat", repeat)
    generators = np.random.default_rng(seed).spawn(num_structures)
    return [
        _make_structure(repeat, generators[index], index)
        for index in track(
            range(num_structures),
            f"Generating {num_structures} demo structures ({4 * repeat**3} atoms)",
        )
    ]


def _default_cache_dir() -> pathlib.Path:
    if os.environ.get("MLIP_EQX_CACHE_DIR"):
        return pathlib.Path(os.environ["MLIP_EQX_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return pathlib.Path(os.environ["XDG_CACHE_HOME"]) / "mlip_eqx"
    return pathlib.Path.home() / ".cache" / "mlip_eqx"


def _split_sizes(
    num_structures: int, validation_fraction: float, test_fraction: float
) -> tuple[int, int, int]:
    for name, fraction in (
        ("validation_fraction", validation_fraction),
        ("test_fraction", test_fraction),
    ):
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {fraction!r}.")
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            "validation_fraction + test_fraction must be < 1, got "
            f"{validation_fraction!r} + {test_fraction!r}."
        )
    num_validation = round(num_structures * validation_fraction)
    num_test = round(num_structures * test_fraction)
    num_train = num_structures - num_validation - num_test
    if min(num_train, num_validation, num_test) < 1:
        raise ValueError(
            f"num_structures={num_structures} is too small: with "
            f"validation_fraction={validation_fraction!r} and "
            f"test_fraction={test_fraction!r} the splits would have "
            f"{num_train}/{num_validation}/{num_test} structures; each needs >= 1."
        )
    return num_train, num_validation, num_test


def get_demo_dataset(
    num_structures: int = 300,
    seed: int = 0,
    repeat: int = 2,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    cache_dir: str | os.PathLike | None = None,
) -> DemoDataset:
    """Returns the demo data set as extxyz files, generating them once and caching.

    The cache folder is ``cache_dir`` if given, else ``$MLIP_EQX_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/mlip_eqx``, else ``~/.cache/mlip_eqx``; inside it, one
    sub-folder per set of parameters and generator version. Files are written
    atomically, so an interrupted run never leaves a file that is later read as
    valid. The split into train/validation/test is a random permutation from
    ``seed``; each split holds ``round(num_structures * fraction)`` structures
    (train takes the rest) and must not be empty.

    Args:
        num_structures: Number of structures over all splits (>= 3).
        seed: Integer seed (>= 0) of the structures and of the split.
        repeat: Each cell is (repeat x repeat x repeat) conventional fcc cells, i.e.
            4 * repeat**3 atoms (>= 1).
        validation_fraction: Fraction of structures for validation, in (0, 1).
        test_fraction: Fraction of structures for testing, in (0, 1); the two
            fractions sum to less than 1.
        cache_dir: Where to cache the files; see above for the default.

    Returns:
        The paths of the three extxyz files and the parameters.
    """
    _check_positive_int("num_structures", num_structures)
    _check_seed(seed)
    _check_positive_int("repeat", repeat)
    num_train, num_validation, _ = _split_sizes(
        num_structures, validation_fraction, test_fraction
    )

    root = pathlib.Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    folder = root / (
        f"demo-v{GENERATOR_VERSION}-structures{num_structures}-seed{seed}"
        f"-repeat{repeat}-validation{float(validation_fraction)!r}"
        f"-test{float(test_fraction)!r}"
    )
    paths = {name: folder / f"{name}.extxyz" for name in _SPLIT_NAMES}
    dataset = DemoDataset(
        train_path=paths["train"],
        validation_path=paths["validation"],
        test_path=paths["test"],
        num_structures=num_structures,
        seed=seed,
        repeat=repeat,
        validation_fraction=float(validation_fraction),
        test_fraction=float(test_fraction),
    )
    if all(path.is_file() for path in paths.values()):
        logger.info("Using the cached demo data set in %s.", folder)
        return dataset

    structures = generate_demo_structures(num_structures, seed=seed, repeat=repeat)
    order = np.random.default_rng(seed).permutation(num_structures)
    boundaries = (num_train, num_train + num_validation)
    folder.mkdir(parents=True, exist_ok=True)
    for name, indices in zip(_SPLIT_NAMES, np.split(order, boundaries), strict=True):
        with atomic_write(paths[name], "w") as file:
            ase.io.write(file, [structures[i] for i in np.sort(indices)], "extxyz")
    logger.info(
        "Wrote the demo data set (%d train, %d validation, %d test) to %s.",
        num_train,
        num_validation,
        num_structures - num_train - num_validation,
        folder,
    )
    return dataset
