import os

import ase.io
import numpy as np
import pytest
from ase.calculators.emt import EMT

from mlip_eqx.data import demo
from mlip_eqx.data.demo import DemoDataset, generate_demo_structures, get_demo_dataset

NUM_STRUCTURES = 12


def _read(path: os.PathLike) -> list:
    return ase.io.read(path, index=":", format="extxyz")


def _fingerprint(atoms) -> float:
    """Identifies a structure; extxyz stores the energy with full precision."""
    return atoms.info["REF_energy"]


@pytest.fixture(scope="module")
def structures():
    return generate_demo_structures(NUM_STRUCTURES, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> DemoDataset:
    return get_demo_dataset(
        num_structures=NUM_STRUCTURES,
        seed=3,
        cache_dir=tmp_path_factory.mktemp("cache"),
    )


def test_same_seed_gives_identical_structures(structures):
    again = generate_demo_structures(NUM_STRUCTURES, seed=3)
    for first, second in zip(structures, again, strict=True):
        np.testing.assert_array_equal(first.numbers, second.numbers)
        np.testing.assert_array_equal(first.positions, second.positions)
        np.testing.assert_array_equal(first.cell[:], second.cell[:])
        assert first.info["REF_energy"] == second.info["REF_energy"]
        np.testing.assert_array_equal(
            first.arrays["REF_forces"], second.arrays["REF_forces"]
        )
        np.testing.assert_array_equal(
            first.info["REF_stress"], second.info["REF_stress"]
        )


def test_structure_depends_only_on_seed_and_index(structures):
    prefix = generate_demo_structures(2, seed=3)
    for first, second in zip(prefix, structures[:2], strict=True):
        np.testing.assert_array_equal(first.positions, second.positions)


def test_different_seed_gives_different_structures(structures):
    other = generate_demo_structures(2, seed=4)
    for first, second in zip(structures[:2], other, strict=True):
        assert not np.allclose(first.cell[:], second.cell[:])
        assert first.info["REF_energy"] != second.info["REF_energy"]


def test_structures_are_periodic_labelled_and_without_calculator(structures):
    for atoms in structures:
        assert len(atoms) == 32
        assert atoms.pbc.all()
        assert atoms.calc is None
        assert isinstance(atoms.info["REF_energy"], float)
        assert atoms.arrays["REF_forces"].shape == (32, 3)
        assert atoms.info["REF_stress"].shape == (9,)
        stress = atoms.info["REF_stress"].reshape(3, 3)
        np.testing.assert_allclose(stress, stress.T, atol=1e-12)


def test_repeat_sets_the_number_of_atoms():
    (atoms,) = generate_demo_structures(1, seed=0, repeat=1)
    assert len(atoms) == 4
    assert np.isfinite(atoms.info["REF_energy"])


def test_structures_are_varied_and_off_lattice(structures):
    all_forces = np.concatenate([atoms.arrays["REF_forces"] for atoms in structures])
    assert np.abs(all_forces).max() > 0.1
    off_diagonal = ~np.eye(3, dtype=bool)
    assert all(np.abs(atoms.cell[:][off_diagonal]).max() > 1e-3 for atoms in structures)
    lengths = np.array([atoms.cell.lengths() for atoms in structures])
    assert np.ptp(lengths) > 0.1
    numbers = np.concatenate([atoms.numbers for atoms in structures])
    assert set(numbers.tolist()) == {28, 29, 47, 79}
    compositions = {
        tuple(np.bincount(atoms.numbers, minlength=80)) for atoms in structures
    }
    assert len(compositions) == len(structures)


def test_stored_labels_match_emt(dataset):
    for path in (dataset.train_path, dataset.validation_path, dataset.test_path):
        for atoms in _read(path)[:2]:
            reference = atoms.copy()
            reference.calc = EMT()
            np.testing.assert_allclose(
                reference.get_potential_energy(), atoms.info["REF_energy"], atol=1e-5
            )
            np.testing.assert_allclose(
                reference.get_forces(), atoms.arrays["REF_forces"], atol=1e-5
            )
            np.testing.assert_allclose(
                reference.get_stress(voigt=False).reshape(9),
                atoms.info["REF_stress"],
                atol=1e-7,
            )


def test_splits_partition_the_structures(dataset, structures):
    splits = [
        _read(path)
        for path in (dataset.train_path, dataset.validation_path, dataset.test_path)
    ]
    assert [len(split) for split in splits] == [10, 1, 1]
    fingerprints = [{_fingerprint(atoms) for atoms in split} for split in splits]
    assert sum(len(f) for f in fingerprints) == NUM_STRUCTURES
    assert set.union(*fingerprints) == {_fingerprint(atoms) for atoms in structures}
    assert dataset.num_structures == NUM_STRUCTURES
    assert dataset.seed == 3
    assert dataset.repeat == 2


def test_split_is_a_deterministic_shuffle(tmp_path):
    kwargs = dict(num_structures=8, validation_fraction=0.25, test_fraction=0.25)
    first = get_demo_dataset(cache_dir=tmp_path / "first", **kwargs)
    second = get_demo_dataset(cache_dir=tmp_path / "second", **kwargs)
    for path, other in zip(
        (first.train_path, first.validation_path, first.test_path),
        (second.train_path, second.validation_path, second.test_path),
        strict=True,
    ):
        assert path != other
        assert path.read_text() == other.read_text()
    in_order = [_fingerprint(atoms) for atoms in generate_demo_structures(8)]
    held_out = [_read(first.validation_path), _read(first.test_path)]
    held_out_indices = {in_order.index(_fingerprint(a)) for a in sum(held_out, [])}
    assert held_out_indices != {4, 5, 6, 7}


def test_second_call_reads_the_cache(dataset, monkeypatch):
    mtimes = [
        os.stat(path).st_mtime_ns
        for path in (dataset.train_path, dataset.validation_path, dataset.test_path)
    ]

    def fail(*args, **kwargs):
        raise AssertionError("the cached data set was regenerated")

    monkeypatch.setattr(demo, "generate_demo_structures", fail)
    again = get_demo_dataset(
        num_structures=NUM_STRUCTURES,
        seed=3,
        cache_dir=dataset.train_path.parent.parent,
    )
    assert again == dataset
    assert mtimes == [
        os.stat(path).st_mtime_ns
        for path in (again.train_path, again.validation_path, again.test_path)
    ]


def test_different_parameters_use_different_cache_folders(dataset):
    other = get_demo_dataset(
        num_structures=NUM_STRUCTURES,
        seed=3,
        test_fraction=0.2,
        cache_dir=dataset.train_path.parent.parent,
    )
    assert other.train_path.parent != dataset.train_path.parent
    assert len(_read(other.test_path)) == 2


def test_interrupted_write_leaves_no_cached_file(tmp_path, monkeypatch):
    real_replace = os.replace
    calls = []

    def replace_then_die(source, destination):
        calls.append(destination)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(source, destination)

    monkeypatch.setattr(demo.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        get_demo_dataset(num_structures=6, cache_dir=tmp_path)
    monkeypatch.setattr(demo.os, "replace", real_replace)
    (folder,) = tmp_path.iterdir()
    assert [path.name for path in folder.iterdir()] == ["train.extxyz"]

    # A process killed outright leaves its temporary file behind.
    (folder / ".validation.extxyz.abc123.tmp").write_text("half a fil")
    generated = []
    real_generate = demo.generate_demo_structures

    def counting_generate(*args, **kwargs):
        generated.append(args)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(demo, "generate_demo_structures", counting_generate)
    dataset = get_demo_dataset(num_structures=6, cache_dir=tmp_path)
    assert len(generated) == 1
    sizes = [
        len(_read(path))
        for path in (dataset.train_path, dataset.validation_path, dataset.test_path)
    ]
    assert sizes == [4, 1, 1]


def test_cache_dir_defaults_follow_the_environment(tmp_path, monkeypatch):
    kwargs = dict(num_structures=3, validation_fraction=0.3, test_fraction=0.3)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MLIP_EQX_CACHE_DIR", str(tmp_path / "env"))
    assert get_demo_dataset(**kwargs).train_path.is_relative_to(tmp_path / "env")
    monkeypatch.delenv("MLIP_EQX_CACHE_DIR")
    assert get_demo_dataset(**kwargs).train_path.is_relative_to(
        tmp_path / "xdg" / "mlip_eqx"
    )
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert get_demo_dataset(**kwargs).train_path.is_relative_to(
        tmp_path / "home" / ".cache" / "mlip_eqx"
    )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(num_structures=0), "num_structures"),
        (dict(num_structures=2), "num_structures"),
        (dict(seed=-1), "seed"),
        (dict(repeat=0), "repeat"),
        (dict(validation_fraction=0.0), "validation_fraction"),
        (dict(validation_fraction=1.5), "validation_fraction"),
        (dict(test_fraction=-0.1), "test_fraction"),
        (dict(validation_fraction=0.6, test_fraction=0.5), "validation_fraction"),
    ],
)
def test_bad_arguments_raise(kwargs, name, tmp_path):
    with pytest.raises(ValueError, match=name):
        get_demo_dataset(cache_dir=tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(num_structures=0), "num_structures"),
        (dict(num_structures=1, seed=-3), "seed"),
        (dict(num_structures=1, repeat=0), "repeat"),
    ],
)
def test_generate_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        generate_demo_structures(**kwargs)
