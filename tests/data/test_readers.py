"""Tests of the chemical-system readers (extxyz, HDF5, in-memory ase.Atoms)."""

import os
import shutil
from pathlib import Path

import ase
import ase.io
import h5py
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_eqx.data.chemical_system import InvalidStructureError
from mlip_eqx.data.readers import (
    ASEAtomsReader,
    ChemicalSystemsReader,
    ChemicalSystemsReaderConfig,
    ExtxyzReader,
    Hdf5Reader,
    MissingLabelError,
)
from mlip_eqx.data.readers.file_readers import reader_for_files
from mlip_eqx.testing.structures import random_system
from mlip_eqx.utils.config import ConfigError
from tests.helpers.atoms import as_atoms

CUBIC_LATTICE = 'Lattice="4.0 0.0 0.0 0.0 5.0 0.0 0.0 0.0 6.0" pbc="T T T"'
FORCES_PROPERTIES = "Properties=species:S:1:pos:R:3:REF_forces:R:3"


def frame(comment: str, *atom_lines: str) -> str:
    """One extxyz frame with the given comment line and atom lines."""
    return f"{len(atom_lines)}\n{comment}\n" + "\n".join(atom_lines) + "\n"


def write_text(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def labelled_frame(energy: float, x: float = 0.0) -> str:
    """A periodic H2 frame with REF_energy and REF_forces labels."""
    return frame(
        f"{CUBIC_LATTICE} {FORCES_PROPERTIES} REF_energy={energy}",
        f"H {x} 0.0 0.0 0.1 0.2 0.3",
        f"H {x + 0.7} 0.0 0.0 -0.1 -0.2 -0.3",
    )


def read_train(path, **kwargs):
    """Reads ``path`` as the training set with ExtxyzReader; returns train systems."""
    reader_kwargs = {
        key: kwargs.pop(key)
        for key in ("energy_key", "forces_key", "stress_key", "weight_key")
        if key in kwargs
    }
    config = ChemicalSystemsReaderConfig(train_dataset_paths=path, **kwargs)
    train, validation, test = ExtxyzReader(config, **reader_kwargs).load()
    assert validation == [] and test == []
    return train


def test_config_normalises_paths_to_lists_of_str(tmp_path):
    config = ChemicalSystemsReaderConfig(
        train_dataset_paths=tmp_path / "a.xyz",
        valid_dataset_paths=("b.xyz", tmp_path / "c.xyz"),
    )
    assert config.train_dataset_paths == [str(tmp_path / "a.xyz")]
    assert config.valid_dataset_paths == ["b.xyz", str(tmp_path / "c.xyz")]
    assert config.test_dataset_paths == []
    assert config.required_labels == ("energy", "forces")
    assert ExtxyzReader.Config is ChemicalSystemsReaderConfig
    assert config.replace(test_num_to_load=3).train_dataset_paths == [
        str(tmp_path / "a.xyz")
    ]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"train_dataset_paths": []}, "train_dataset_paths"),
        ({"train_dataset_paths": 3}, "train_dataset_paths"),
        ({"train_dataset_paths": "a.xyz", "test_dataset_paths": ["b", 3]}, "test_"),
        ({"train_dataset_paths": "a.xyz", "train_num_to_load": 0}, "train_num"),
        ({"train_dataset_paths": "a.xyz", "valid_num_to_load": -2}, "valid_num"),
        ({"train_dataset_paths": "a.xyz", "required_labels": ("energi",)}, "energi"),
        (
            {"train_dataset_paths": "a.xyz", "required_labels": "energy"},
            "required_labels",
        ),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ChemicalSystemsReaderConfig(**kwargs)


def test_reader_base_is_abstract():
    with pytest.raises(TypeError):
        ChemicalSystemsReader()


def test_extxyz_ref_keys(tmp_path):
    path = write_text(
        tmp_path,
        "ref.extxyz",
        frame(
            f"{CUBIC_LATTICE} {FORCES_PROPERTIES} REF_energy=-3.5 "
            'REF_stress="0.1 0.2 0.3 0.4 0.5 0.6" config_weight=2.5',
            "H 0.0 0.0 0.0 1.0 2.0 3.0",
            "O 1.0 0.0 0.0 -1.0 -2.0 -3.0",
        ),
    )
    [system] = read_train(path, required_labels=("energy", "forces", "stress"))
    np.testing.assert_array_equal(system.atomic_numbers, [1, 8])
    np.testing.assert_allclose(system.positions, [[0, 0, 0], [1, 0, 0]])
    assert system.energy == -3.5
    np.testing.assert_allclose(system.forces, [[1, 2, 3], [-1, -2, -3]])
    # Voigt order xx yy zz yz xz xy.
    np.testing.assert_allclose(
        system.stress, [[0.1, 0.6, 0.5], [0.6, 0.2, 0.4], [0.5, 0.4, 0.3]]
    )
    np.testing.assert_allclose(system.cell, np.diag([4.0, 5.0, 6.0]))
    np.testing.assert_array_equal(system.pbc, [True, True, True])
    assert system.weight == 2.5
    assert system.source == f"{path}, frame 0"


def test_extxyz_ref_keys_take_precedence_over_plain_keys(tmp_path):
    path = write_text(
        tmp_path,
        "both.extxyz",
        frame(
            "Properties=species:S:1:pos:R:3:forces:R:3:REF_forces:R:3 "
            "energy=1.0 REF_energy=2.0",
            "H 0.0 0.0 0.0 1.0 1.0 1.0 5.0 5.0 5.0",
        ),
    )
    [system] = read_train(path)
    assert system.energy == 2.0
    np.testing.assert_allclose(system.forces, [[5.0, 5.0, 5.0]])


def test_extxyz_calculator_values_written_by_ase(tmp_path):
    rng = np.random.default_rng(0)
    atoms = ase.Atoms(
        "CuAu", positions=[[0, 0, 0], [1.2, 1.3, 1.4]], cell=[3, 3.5, 4], pbc=True
    )
    forces = rng.normal(size=(2, 3))
    stress_voigt = rng.normal(size=6)
    atoms.calc = SinglePointCalculator(
        atoms, energy=-7.25, forces=forces, stress=stress_voigt
    )
    path = str(tmp_path / "calc.extxyz")
    ase.io.write(path, [atoms, atoms], format="extxyz")
    systems = read_train(path, required_labels=("energy", "forces", "stress"))
    assert len(systems) == 2
    system = systems[1]
    assert system.source == f"{path}, frame 1"
    assert system.energy == pytest.approx(-7.25)
    np.testing.assert_allclose(system.forces, forces, rtol=1e-7)
    np.testing.assert_allclose(system.stress, atoms.get_stress(voigt=False), rtol=1e-7)
    np.testing.assert_allclose(system.cell, np.diag([3.0, 3.5, 4.0]))


def test_extxyz_explicit_keys(tmp_path):
    path = write_text(
        tmp_path,
        "explicit.extxyz",
        frame(
            f"{CUBIC_LATTICE} Properties=species:S:1:pos:R:3:dft_forces:R:3 "
            'dft_energy=-1.25 dft_stress="1 2 3 4 5 6 7 8 9" my_weight=0.5 '
            "REF_energy=99.0",
            "Li 0.0 0.0 0.0 0.5 0.25 0.125",
        ),
    )
    [system] = read_train(
        path,
        energy_key="dft_energy",
        forces_key="dft_forces",
        stress_key="dft_stress",
        weight_key="my_weight",
        required_labels=("energy", "forces", "stress"),
    )
    assert system.energy == -1.25
    np.testing.assert_allclose(system.forces, [[0.5, 0.25, 0.125]])
    np.testing.assert_allclose(system.stress, np.arange(1.0, 10.0).reshape(3, 3))
    assert system.weight == 0.5


def test_extxyz_explicit_key_named_like_a_calculator_property(tmp_path):
    # ase.io moves "energy" and "forces" into a SinglePointCalculator.
    path = write_text(
        tmp_path,
        "plain.extxyz",
        frame(
            "Properties=species:S:1:pos:R:3:forces:R:3 energy=-4.0 REF_energy=1.0",
            "H 0.0 0.0 0.0 0.1 0.2 0.3",
        ),
    )
    [system] = read_train(path, energy_key="energy", forces_key="forces")
    assert system.energy == -4.0
    np.testing.assert_allclose(system.forces, [[0.1, 0.2, 0.3]])


def test_extxyz_missing_explicit_key_names_file_frame_and_key(tmp_path):
    text = frame("dft_energy=1.0 Properties=species:S:1:pos:R:3", "H 0 0 0")
    text += frame("Properties=species:S:1:pos:R:3", "H 0 0 0")
    path = write_text(tmp_path, "partial.extxyz", text)
    with pytest.raises(
        MissingLabelError, match=r"partial\.extxyz, frame 1.*dft_energy"
    ):
        read_train(path, energy_key="dft_energy", required_labels=("energy",))
    with pytest.raises(MissingLabelError, match=r"frame 0: weight key 'w'"):
        read_train(path, weight_key="w", required_labels=())
    systems = read_train(path, energy_key="dft_energy", required_labels=())
    assert [system.energy for system in systems] == [1.0, None]


def test_extxyz_missing_forces(tmp_path):
    text = labelled_frame(-1.0)
    text += frame(f"{CUBIC_LATTICE} REF_energy=-2.0", "H 0 0 0", "H 0.7 0 0")
    path = write_text(tmp_path, "no_forces.extxyz", text)
    with pytest.raises(
        MissingLabelError, match=r"no_forces\.extxyz, frame 1: required label 'forces'"
    ):
        read_train(path)
    first, second = read_train(path, required_labels=("energy",))
    assert first.forces is not None
    assert second.forces is None
    assert second.energy == -2.0
    assert second.stress is None


def test_extxyz_required_stress_missing(tmp_path):
    path = write_text(tmp_path, "no_stress.extxyz", labelled_frame(-1.0))
    with pytest.raises(MissingLabelError, match=r"frame 0: required label 'stress'"):
        read_train(path, required_labels=("stress",))


def test_extxyz_plain_xyz_without_labels(tmp_path):
    path = write_text(
        tmp_path, "molecule.xyz", "3\n\nO 0.0 0.0 0.0\nH 0.96 0.0 0.0\nH 0 0.96 0\n"
    )
    [system] = read_train(path, required_labels=())
    np.testing.assert_array_equal(system.atomic_numbers, [8, 1, 1])
    assert system.energy is None and system.forces is None and system.stress is None
    np.testing.assert_array_equal(system.cell, np.zeros((3, 3)))
    np.testing.assert_array_equal(system.pbc, [False, False, False])
    assert system.weight == 1.0
    with pytest.raises(MissingLabelError, match=r"molecule\.xyz, frame 0.*'energy'"):
        read_train(path)


@pytest.mark.parametrize(
    "stress_text, expected",
    [
        ("1 2 3 4 5 6", [[1, 6, 5], [6, 2, 4], [5, 4, 3]]),
        ("1 2 3 4 5 6 7 8 9", [[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
    ],
)
def test_extxyz_stress_layouts(tmp_path, stress_text, expected):
    path = write_text(
        tmp_path,
        "stress.extxyz",
        frame(f'{CUBIC_LATTICE} REF_stress="{stress_text}"', "H 0 0 0"),
    )
    [system] = read_train(path, required_labels=("stress",))
    np.testing.assert_allclose(system.stress, expected)


def test_ase_atoms_stress_3x3_and_voigt_agree_with_ase():
    stress_matrix = np.array([[1.0, 0.4, 0.3], [0.4, 2.0, 0.2], [0.3, 0.2, 3.0]])
    matrix_atoms = ase.Atoms("H", cell=np.eye(3) * 3, pbc=True)
    matrix_atoms.info["REF_stress"] = stress_matrix
    voigt_atoms = ase.Atoms("H", cell=np.eye(3) * 3, pbc=True)
    voigt_atoms.calc = SinglePointCalculator(voigt_atoms, stress=stress_matrix)
    # ASE stores a 3x3 calculator stress as given; its Voigt view is the reference.
    voigt = voigt_atoms.get_stress()
    voigt_atoms.calc = SinglePointCalculator(voigt_atoms, stress=voigt)
    train, _, _ = ASEAtomsReader(
        [matrix_atoms, voigt_atoms], required_labels=("stress",)
    ).load()
    np.testing.assert_allclose(train[0].stress, stress_matrix)
    np.testing.assert_allclose(train[1].stress, stress_matrix)
    np.testing.assert_allclose(train[1].stress, voigt_atoms.get_stress(voigt=False))


def test_extxyz_wrong_size_stress_names_file_frame_and_key(tmp_path):
    text = frame(f'{CUBIC_LATTICE} REF_stress="1 2 3 4 5 6"', "H 0 0 0")
    text += frame(f'{CUBIC_LATTICE} REF_stress="1 2 3 4"', "H 0 0 0")
    path = write_text(tmp_path, "bad_stress.extxyz", text)
    with pytest.raises(
        InvalidStructureError,
        match=r"bad_stress\.extxyz, frame 1, info key 'REF_stress'.*shape \(4,\)",
    ):
        read_train(path, required_labels=())


def test_extxyz_weights(tmp_path):
    text = frame("config_weight=3.0 weight=9.0", "H 0 0 0")
    text += frame("weight=0.25", "H 0 0 0")
    text += frame("other=1", "H 0 0 0")
    path = write_text(tmp_path, "weights.extxyz", text)
    systems = read_train(path, required_labels=())
    assert [system.weight for system in systems] == [3.0, 0.25, 1.0]
    negative = write_text(tmp_path, "negative.extxyz", frame("weight=-1.0", "H 0 0 0"))
    with pytest.raises(InvalidStructureError, match=r"negative\.extxyz, frame 0"):
        read_train(negative, required_labels=())


def test_extxyz_triclinic_cell_and_mixed_pbc(tmp_path):
    atoms = ase.Atoms(
        "Si2",
        positions=[[0, 0, 0], [1, 1, 1]],
        cell=[[4, 0, 0], [1, 4, 0], [0.5, 0.5, 5]],
        pbc=[True, True, False],
    )
    path = str(tmp_path / "cell.extxyz")
    ase.io.write(path, atoms, format="extxyz")
    [system] = read_train(path, required_labels=())
    np.testing.assert_allclose(system.cell, atoms.cell.array)
    np.testing.assert_array_equal(system.pbc, [True, True, False])


def test_num_to_load_applies_per_path_and_paths_keep_order(tmp_path):
    first = write_text(
        tmp_path, "first.extxyz", "".join(labelled_frame(-i) for i in range(3))
    )
    second = write_text(
        tmp_path, "second.extxyz", "".join(labelled_frame(-10 - i) for i in range(2))
    )
    config = ChemicalSystemsReaderConfig(
        train_dataset_paths=[first, second],
        valid_dataset_paths=second,
        test_dataset_paths=[Path(first)],
        train_num_to_load=2,
        test_num_to_load=1,
    )
    train, validation, test = ExtxyzReader(config).load()
    assert [system.energy for system in train] == [0.0, -1.0, -10.0, -11.0]
    assert [system.source for system in train] == [
        f"{first}, frame 0",
        f"{first}, frame 1",
        f"{second}, frame 0",
        f"{second}, frame 1",
    ]
    assert [system.energy for system in validation] == [-10.0, -11.0]
    assert [system.energy for system in test] == [0.0]


def test_download_function_is_called_and_its_file_read(tmp_path):
    local = write_text(tmp_path, "local.extxyz", labelled_frame(-5.0))
    remote_files = {"remote://bucket/train.extxyz": local}
    calls = []

    def download(source, target):
        calls.append((source, target))
        assert not os.path.exists(target)
        shutil.copy(remote_files[source], target)

    config = ChemicalSystemsReaderConfig("remote://bucket/train.extxyz")
    [system], _, _ = ExtxyzReader(config, download).load()
    assert system.energy == -5.0
    assert system.source == "remote://bucket/train.extxyz, frame 0"
    [(source, target)] = calls
    assert source == "remote://bucket/train.extxyz"
    assert os.path.basename(target) == "train.extxyz"
    assert os.path.dirname(target) != str(tmp_path)
    assert not os.path.exists(target)  # the temporary copy is removed


def test_download_errors_name_the_remote_source(tmp_path):
    local = write_text(tmp_path, "unlabelled.xyz", frame("", "H 0 0 0"))

    def download(source, target):
        shutil.copy(local, target)

    config = ChemicalSystemsReaderConfig("remote://bucket/data.xyz")
    with pytest.raises(MissingLabelError, match=r"remote://bucket/data\.xyz, frame 0"):
        ExtxyzReader(config, download).load()

    def download_nothing(source, target):
        pass

    with pytest.raises(FileNotFoundError, match=r"remote://bucket/data\.xyz"):
        ExtxyzReader(config, download_nothing).load()


def test_missing_file(tmp_path):
    path = str(tmp_path / "absent.extxyz")
    with pytest.raises(FileNotFoundError, match=r"absent\.extxyz"):
        read_train(path)
    with pytest.raises(FileNotFoundError, match=r"absent\.h5"):
        Hdf5Reader(ChemicalSystemsReaderConfig(str(tmp_path / "absent.h5"))).load()


@pytest.mark.parametrize("text", ["", "  \n\n \t\n"], ids=["0-bytes", "whitespace"])
def test_empty_file(tmp_path, text):
    path = write_text(tmp_path, "empty.xyz", text)
    with pytest.raises(ValueError, match=r"empty\.xyz: the file contains no"):
        read_train(path)


@pytest.mark.parametrize(
    "bad_frame, match",
    [
        (frame(f"{CUBIC_LATTICE} REF_energy=1.0", "H nan 0 0"), "positions"),
        (frame(f"{CUBIC_LATTICE} REF_energy=1.0", "H inf 0 0"), "positions"),
        (frame(f"{CUBIC_LATTICE} REF_energy=nan", "H 0 0 0"), "energy"),
        (
            frame(
                f"{CUBIC_LATTICE} {FORCES_PROPERTIES} REF_energy=1.0",
                "H 0 0 0 0.0 inf 0.0",
            ),
            "forces",
        ),
        (frame('pbc="T T T" REF_energy=1.0', "H 0 0 0"), "pbc"),
        (
            frame('pbc="F F F" REF_energy=1.0 REF_stress="1 2 3 4 5 6"', "H 0 0 0"),
            "volume",
        ),
    ],
    ids=[
        "nan-position",
        "inf-position",
        "nan-energy",
        "inf-force",
        "pbc-zero-cell",
        "stress-no-cell",
    ],
)
def test_extxyz_invalid_frame_names_file_and_frame(tmp_path, bad_frame, match):
    good = frame(f"{CUBIC_LATTICE} REF_energy=1.0", "H 0 0 0")
    path = write_text(tmp_path, "bad.extxyz", good + bad_frame)
    with pytest.raises(InvalidStructureError, match=rf"bad\.extxyz, frame 1.*{match}"):
        read_train(path, required_labels=())


def test_extxyz_unknown_element_symbol(tmp_path):
    text = frame("", "H 0 0 0") + frame("", "H 0 0 0", "Xx 1 0 0")
    path = write_text(tmp_path, "unknown.xyz", text)
    with pytest.raises(
        InvalidStructureError,
        match=r"unknown\.xyz, frame 1: unknown element symbol 'Xx'",
    ):
        read_train(path, required_labels=())


@pytest.mark.parametrize(
    "text, match",
    [
        (
            frame("", "H 0 0 0") * 2 + "3\n\nH 0 0 0\n",
            "frame 2: cannot parse as extended XYZ",
        ),
        (
            "one\n\nH 0 0 0\n",
            "frame 0: line 1 should hold the number of atoms, got 'one'",
        ),
    ],
    ids=["truncated", "bad-header"],
)
def test_extxyz_unparsable_file(tmp_path, text, match):
    path = write_text(tmp_path, "broken.xyz", text)
    with pytest.raises(InvalidStructureError, match=rf"broken\.xyz, {match}"):
        read_train(path, required_labels=())


@pytest.mark.parametrize(
    "wrong_count, match",
    [
        (
            1,
            r"the atom count 1 on line 13 does not fit the file: where the next "
            r"frame should start \(line 16\) there is 'H 0.7 0 0', not a number",
        ),
        (
            3,
            r"the atom count 3 on line 13 does not fit the file: where the next "
            r"frame should start \(line 18\) there is 'pbc=\"F F F\" energy=-1.0'",
        ),
        (
            30,
            r"cannot parse as extended XYZ: XYZError: ase.io.extxyz: Frame has 2 "
            r"atoms, expected 30",
        ),
    ],
    ids=["too-small", "too-large", "too-large-last-frame"],
)
def test_extxyz_wrong_atom_count_names_the_frame(tmp_path, wrong_count, match):
    frames = [frame('pbc="F F F" energy=-1.0', "H 0 0 0", "H 0.7 0 0")] * 5
    bad_frame = 3 if wrong_count < 30 else 4
    frames[bad_frame] = frames[bad_frame].replace("2\n", f"{wrong_count}\n", 1)
    path = write_text(tmp_path, "count.xyz", "".join(frames))
    with pytest.raises(
        InvalidStructureError, match=rf"count\.xyz, frame {bad_frame}: {match}"
    ):
        read_train(path, required_labels=())


@pytest.mark.parametrize("where", ["positions", "cell"])
def test_extxyz_nan_geometry_is_named_not_a_missing_label(tmp_path, where):
    # Plain "energy" and "forces" keys go to ase's calculator, whose results ase
    # hides when the atoms hold NaN (NaN != NaN): the geometry must be blamed.
    lattice = 'Lattice="nan 0 0 0 4 0 0 0 4"' if where == "cell" else CUBIC_LATTICE
    x = "nan" if where == "positions" else "0.7"
    text = frame(
        f"{CUBIC_LATTICE} Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.0",
        "H 0 0 0 0 0 0",
        "H 0.7 0 0 0 0 0",
    ) + frame(
        f"{lattice} Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.0",
        "H 0 0 0 0 0 0",
        f"H {x} 0 0 0 0 0",
    )
    path = write_text(tmp_path, "nan.xyz", text)
    expected = "positions contains NaN or inf values \\(atoms 1\\)"
    if where == "cell":
        expected = "cell contains NaN or inf values"
    with pytest.raises(InvalidStructureError, match=rf"nan\.xyz, frame 1: {expected}"):
        read_train(path)


@pytest.mark.parametrize(
    "labels, match",
    [
        (
            "REF_energy=1e30",
            r"info key 'REF_energy': \|energy\| / n_atoms is 5e\+29 "
            r"eV per atom, beyond the limit of 1e\+07 eV per atom for a physical "
            r"energy label",
        ),
        (
            "energy=-3e7",
            r"calculator result 'energy': \|energy\| / n_atoms is "
            r"1\.5e\+07 eV per atom",
        ),
        (
            'REF_energy=0 REF_stress="1e30 0 0 0 0 0"',
            r"info key 'REF_stress': the "
            r"largest \|stress\| component is 1e\+30 eV/Å³, beyond the limit of "
            r"1e\+04 eV/Å³",
        ),
        (
            "REF_energy=0 big_forces",
            r"arrays key 'REF_forces': the largest "
            r"\|force\| component is 2e\+04 eV/Å",
        ),
    ],
    ids=["energy", "calculator-energy", "stress", "forces"],
)
def test_extxyz_absurd_labels_name_file_frame_and_key(tmp_path, labels, match):
    force = "2e4" if "big_forces" in labels else "0.1"
    text = labelled_frame(-1.0) + frame(
        f"{CUBIC_LATTICE} {FORCES_PROPERTIES} {labels}",
        f"H 0 0 0 {force} 0 0",
        "H 0.7 0 0 0 0 0",
    )
    path = write_text(tmp_path, "absurd.xyz", text)
    with pytest.raises(InvalidStructureError, match=rf"absurd\.xyz, frame 1, {match}"):
        read_train(path)
    # Large but physical labels (all-electron energies, strong forces) are kept.
    fine = labelled_frame(-1e6) + frame(
        f"{CUBIC_LATTICE} {FORCES_PROPERTIES} REF_energy=-1e6",
        "H 0 0 0 500.0 0 0",
        "H 0.7 0 0 -500.0 0 0",
    )
    assert len(read_train(write_text(tmp_path, "fine.xyz", fine))) == 2


def write_hdf5(path: Path, structures: dict[str, dict]) -> str:
    """Writes one group per structure: datasets, plus attributes under "attrs"."""
    with h5py.File(path, "w") as file:
        for name, contents in structures.items():
            group = file.create_group(name)
            for key, value in contents.items():
                if key == "attrs":
                    group.attrs.update(value)
                else:
                    group.create_dataset(key, data=value)
    return str(path)


def hdf5_structure(energy: float, **extra) -> dict:
    return {
        "positions": np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.1]]),
        "elements": np.array([6, 8]),
        "forces": np.array([[0.0, 0.0, 0.5], [0.0, 0.0, -0.5]]),
        "attrs": {"energy": energy, "n_atoms": 2},
        **extra,
    }


def test_hdf5_reader(tmp_path):
    path = write_hdf5(
        tmp_path / "data.h5",
        {
            "b_periodic": hdf5_structure(
                -2.0,
                stress=np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
                cell=np.diag([3.0, 4.0, 5.0]),
                pbc=np.array([True, True, True]),
                attrs={"energy": -2.0, "weight": 0.5},
                dipole=np.zeros(3),
            ),
            "a_molecule": hdf5_structure(-1.0),
            "c_molecule": hdf5_structure(-3.0),
        },
    )
    config = ChemicalSystemsReaderConfig(
        path, test_dataset_paths=path, test_num_to_load=2
    )
    train, validation, test = Hdf5Reader(config).load()
    assert [system.energy for system in train] == [-1.0, -2.0, -3.0]
    assert validation == []
    assert [system.energy for system in test] == [-1.0, -2.0]
    molecule, periodic = train[0], train[1]
    assert molecule.source == f"{path}, group 'a_molecule'"
    np.testing.assert_array_equal(molecule.atomic_numbers, [6, 8])
    np.testing.assert_allclose(molecule.positions[1], [0.0, 0.0, 1.1])
    np.testing.assert_allclose(molecule.forces[0], [0.0, 0.0, 0.5])
    assert molecule.stress is None
    np.testing.assert_array_equal(molecule.cell, np.zeros((3, 3)))
    np.testing.assert_array_equal(molecule.pbc, [False, False, False])
    assert molecule.weight == 1.0
    np.testing.assert_allclose(
        periodic.stress, [[1.0, 6.0, 5.0], [6.0, 2.0, 4.0], [5.0, 4.0, 3.0]]
    )
    np.testing.assert_allclose(periodic.cell, np.diag([3.0, 4.0, 5.0]))
    np.testing.assert_array_equal(periodic.pbc, [True, True, True])
    assert periodic.weight == 0.5


@pytest.mark.parametrize(
    "missing, error, match",
    [
        ("positions", InvalidStructureError, "dataset 'positions' is missing"),
        ("elements", InvalidStructureError, "dataset 'elements' is missing"),
        ("forces", MissingLabelError, "required label 'forces'"),
        ("attrs", MissingLabelError, "required label 'energy'"),
    ],
)
def test_hdf5_missing_dataset_names_file_group_and_key(tmp_path, missing, error, match):
    broken = hdf5_structure(-2.0)
    del broken[missing]
    path = write_hdf5(
        tmp_path / "broken.h5", {"good": hdf5_structure(-1.0), "missing": broken}
    )
    with pytest.raises(error, match=rf"broken\.h5, group 'missing': {match}"):
        Hdf5Reader(ChemicalSystemsReaderConfig(path)).load()


def test_hdf5_optional_labels_and_bad_values(tmp_path):
    unlabelled = hdf5_structure(0.0)
    del unlabelled["forces"], unlabelled["attrs"]
    path = write_hdf5(tmp_path / "unlabelled.h5", {"only": unlabelled})
    config = ChemicalSystemsReaderConfig(path, required_labels=())
    [system], _, _ = Hdf5Reader(config).load()
    assert system.energy is None and system.forces is None
    nan_path = write_hdf5(
        tmp_path / "nan.h5",
        {"s": hdf5_structure(-1.0, positions=np.full((2, 3), np.nan))},
    )
    with pytest.raises(InvalidStructureError, match=r"nan\.h5, group 's'.*positions"):
        Hdf5Reader(ChemicalSystemsReaderConfig(nan_path)).load()
    stress_path = write_hdf5(
        tmp_path / "stress.h5",
        {"s": hdf5_structure(-1.0, stress=np.ones(5), cell=np.eye(3))},
    )
    with pytest.raises(
        InvalidStructureError, match=r"stress\.h5, group 's', dataset 'stress'"
    ):
        Hdf5Reader(ChemicalSystemsReaderConfig(stress_path)).load()


def test_hdf5_absurd_energy_names_file_group_and_attribute(tmp_path):
    path = write_hdf5(tmp_path / "absurd.h5", {"s": hdf5_structure(1e30)})
    with pytest.raises(
        InvalidStructureError,
        match=r"absurd\.h5, group 's', attribute 'energy': \|energy\| / n_atoms",
    ):
        Hdf5Reader(ChemicalSystemsReaderConfig(path)).load()


def test_hdf5_unreadable_data_names_file_group_and_key(tmp_path):
    # A dataset whose data lies in an external file that is gone: h5py lists it
    # but raises a bare OSError when it is read, as for a corrupt file.
    external = tmp_path / "positions.bin"
    external.write_bytes(np.zeros((2, 3)).tobytes())
    path = write_hdf5(tmp_path / "corrupt.h5", {"s": hdf5_structure(-1.0)})
    with h5py.File(path, "a") as file:
        del file["s/positions"]
        file["s"].create_dataset(
            "positions", shape=(2, 3), dtype="f8", external=[(str(external), 0, 48)]
        )
    external.unlink()
    with pytest.raises(
        InvalidStructureError,
        match=r"corrupt\.h5, group 's', dataset 'positions': cannot read the HDF5 "
        r"data, the file may be corrupt or truncated \(OSError: ",
    ):
        Hdf5Reader(ChemicalSystemsReaderConfig(path)).load()


def test_hdf5_empty_and_not_hdf5(tmp_path):
    empty = write_hdf5(tmp_path / "empty.h5", {})
    with pytest.raises(ValueError, match=r"empty\.h5: the file contains no"):
        Hdf5Reader(ChemicalSystemsReaderConfig(empty)).load()
    text = write_text(tmp_path, "text.h5", "not hdf5")
    with pytest.raises(ValueError, match=r"text\.h5: cannot open as HDF5"):
        Hdf5Reader(ChemicalSystemsReaderConfig(text)).load()
    for content in ("", " \n\n\t "):
        blank = write_text(tmp_path, "blank.h5", content)
        with pytest.raises(
            ValueError,
            match=r"blank\.h5: the file is empty \(or only whitespace\): it contains "
            "no structures",
        ):
            Hdf5Reader(ChemicalSystemsReaderConfig(blank)).load()


def test_hdf5_forces_of_the_wrong_shape_name_file_group_and_field(tmp_path):
    path = write_hdf5(
        tmp_path / "shape.h5",
        {
            "good": hdf5_structure(-1.0),
            "s": hdf5_structure(-1.0, forces=np.ones((3, 3))),
        },
    )
    with pytest.raises(
        InvalidStructureError,
        match=r"shape\.h5, group 's': forces must have shape \(2, 3\), got \(3, 3\)",
    ):
        Hdf5Reader(ChemicalSystemsReaderConfig(path)).load()


def test_extxyz_forces_row_of_the_wrong_length_names_file_and_frame(tmp_path):
    good = frame(f"{CUBIC_LATTICE} {FORCES_PROPERTIES} REF_energy=1.0", "H 0 0 0 0 0 0")
    bad = frame(
        f"{CUBIC_LATTICE} {FORCES_PROPERTIES} REF_energy=1.0",
        "H 0 0 0 0 0 0",
        "H 0 0 1 0 0",
    )
    path = write_text(tmp_path, "short.extxyz", good + bad)
    with pytest.raises(InvalidStructureError, match=r"short\.extxyz, frame 1: "):
        read_train(path)


def test_ase_atoms_forces_of_the_wrong_length_name_the_structure_and_field():
    atoms = ase.Atoms("H2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((3, 3)))
    with pytest.raises(
        InvalidStructureError,
        match=r"train atoms\[0\]: forces must have shape \(2, 3\), got \(3, 3\)",
    ):
        ASEAtomsReader([atoms]).load()


def test_hdf5_download(tmp_path):
    local = write_hdf5(tmp_path / "local.h5", {"s": hdf5_structure(-4.0)})
    calls = []

    def download(source, target):
        calls.append(source)
        shutil.copy(local, target)

    config = ChemicalSystemsReaderConfig("remote://x/data.h5")
    [system], _, _ = Hdf5Reader(config, download).load()
    assert calls == ["remote://x/data.h5"]
    assert system.energy == -4.0
    assert system.source == "remote://x/data.h5, group 's'"


def make_atoms(energy: float) -> ase.Atoms:
    atoms = ase.Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]])
    atoms.calc = SinglePointCalculator(
        atoms, energy=energy, forces=np.full((2, 3), energy)
    )
    return atoms


def test_ase_atoms_reader_splits_and_sources():
    info_atoms = ase.Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]])
    info_atoms.info["REF_energy"] = -9.0
    info_atoms.info["weight"] = 2.0
    info_atoms.arrays["REF_forces"] = np.ones((2, 3))
    reader = ASEAtomsReader(
        [make_atoms(-1.0), info_atoms], [make_atoms(-2.0)], test_atoms=None
    )
    train, validation, test = reader.load()
    assert [system.energy for system in train] == [-1.0, -9.0]
    assert [system.source for system in train] == ["train atoms[0]", "train atoms[1]"]
    np.testing.assert_allclose(train[0].forces, np.full((2, 3), -1.0))
    np.testing.assert_allclose(train[1].forces, np.ones((2, 3)))
    assert train[1].weight == 2.0
    assert [system.source for system in validation] == ["validation atoms[0]"]
    assert test == []


def test_ase_atoms_reader_keys_and_errors():
    atoms = ase.Atoms("H", cell=np.eye(3) * 2, pbc=True)
    atoms.info["e"] = 1.5
    atoms.info["s"] = [1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(
        InvalidStructureError, match=r"test atoms\[0\], info key 's'.*shape \(7,\)"
    ):
        ASEAtomsReader(
            [make_atoms(0.0)],
            test_atoms=[atoms],
            energy_key="e",
            stress_key="s",
            required_labels=(),
        ).load()
    # A one-atom structure needs no forces (they are zero); two atoms do.
    [one_atom], _, _ = ASEAtomsReader([atoms], energy_key="e").load()
    assert one_atom.energy == 1.5 and one_atom.forces is None
    two_atoms = atoms + ase.Atoms("H", positions=[[1.0, 0, 0]])
    with pytest.raises(
        MissingLabelError,
        match=r"train atoms\[0\]: required label 'forces'.*The structure has info "
        r"keys 'e', 's'; arrays keys 'numbers', 'positions'; calculator results none",
    ):
        ASEAtomsReader([two_atoms], energy_key="e").load()
    forces_atoms = atoms.copy()
    forces_atoms.arrays["REF_forces"] = np.zeros((1, 3))
    with pytest.raises(
        MissingLabelError, match=r"validation atoms\[1\]: required label 'energy'"
    ):
        ASEAtomsReader(
            [forces_atoms], [forces_atoms, make_atoms(0.0)], energy_key="e"
        ).load()
    [system], _, _ = ASEAtomsReader([atoms], energy_key="e", required_labels=()).load()
    assert system.energy == 1.5 and system.forces is None
    with pytest.raises(ValueError, match="train_atoms must not be empty"):
        ASEAtomsReader([])
    # "train_atoms" when the jaxtyping hook catches it, "train atoms[1]" otherwise.
    with pytest.raises(TypeError, match=r"train.atoms"):
        ASEAtomsReader([atoms, "H2"])
    with pytest.raises(ValueError, match="unknown label"):
        ASEAtomsReader([atoms], required_labels=("charges",))


def test_ase_atoms_reader_ignores_stale_calculator_results():
    atoms = make_atoms(-1.0)
    atoms.positions[1, 0] = 0.9  # the stored results belong to other positions
    with pytest.raises(MissingLabelError, match=r"train atoms\[0\].*'energy'"):
        ASEAtomsReader([atoms]).load()


def labelled_atoms(system):
    atoms = as_atoms(system)
    atoms.info["REF_energy"] = -1.0
    atoms.arrays["REF_forces"] = np.zeros((len(atoms), 3))
    return atoms


def test_replay_reader_adds_weighted_pretraining_structures_to_train_only():
    from mlip_eqx.data import ReplayReader

    rng = np.random.default_rng(5)
    new = [random_system(rng, 4) for _ in range(10)]
    new_validation = [random_system(rng, 4) for _ in range(3)]
    old = [random_system(rng, 6) for _ in range(8)]
    reader = ReplayReader(
        ASEAtomsReader(
            [labelled_atoms(s) for s in new],
            [labelled_atoms(s) for s in new_validation],
        ),
        ASEAtomsReader([labelled_atoms(s) for s in old]),
        replay_fraction=0.5,
        replay_weight=0.25,
        seed=1,
    )
    train, validation, test = reader.load()
    assert len(train) == 15 and len(validation) == 3 and not test
    assert [s.num_atoms for s in train] == [4] * 10 + [6] * 5
    assert all(s.weight == 1.0 for s in train[:10])
    assert all(s.weight == 0.25 for s in train[10:])
    replayed = {tuple(s.positions.ravel()) for s in train[10:]}
    assert replayed <= {tuple(s.positions.ravel()) for s in old}
    assert len(replayed) == 5  # drawn without repetition
    # All of the replay set at most; the draw is seeded.
    assert len(ReplayReader(reader.reader, reader.replay_reader, 5.0).load()[0]) == 18
    again = [tuple(s.positions.ravel()) for s in reader.load()[0][10:]]
    assert set(again) == replayed
    with pytest.raises(ValueError, match="replay_fraction must be > 0"):
        ReplayReader(reader.reader, reader.replay_reader, 0.0)


def test_dataset_index_and_replay_readers_assign_data_sets():
    from mlip_eqx.data import DatasetIndexReader, ReplayReader

    rng = np.random.default_rng(6)
    new = ASEAtomsReader(
        [labelled_atoms(random_system(rng, 4)) for _ in range(4)],
        [labelled_atoms(random_system(rng, 4)) for _ in range(2)],
    )
    old = ASEAtomsReader([labelled_atoms(random_system(rng, 6)) for _ in range(4)])
    reader = ReplayReader(DatasetIndexReader(new, 2), old, 0.5, replay_dataset_idx=1)
    train, validation, _ = reader.load()
    assert [s.dataset_idx for s in train] == [2] * 4 + [1] * 2
    assert [s.dataset_idx for s in validation] == [2, 2]
    with pytest.raises(ValueError, match="dataset_idx must be >= 0"):
        DatasetIndexReader(new, -1)
    with pytest.raises(ValueError, match="replay_dataset_idx must be >= 0"):
        ReplayReader(new, old, 0.5, replay_dataset_idx=-1)


def test_label_keys_reach_the_file_readers_and_a_missing_key_lists_the_frames(
    tmp_path,
):
    atoms = ase.Atoms("CO", positions=[[0, 0, 0], [0, 0, 1.1]])
    atoms.info["DFT_energy"] = -5.0
    atoms.info["config_type"] = "MD"
    atoms.arrays["DFT_forces"] = np.array([[0, 0, 0.5], [0, 0, -0.5]])
    path = tmp_path / "keys.xyz"
    ase.io.write(path, [atoms, atoms], format="extxyz")
    [system, _], _, _ = reader_for_files(
        [path], energy_key="DFT_energy", forces_key="DFT_forces"
    ).load()
    assert system.energy == -5.0 and system.forces[0, 2] == 0.5
    assert system.config_type == "MD"
    with pytest.raises(
        MissingLabelError,
        match=r"keys\.xyz, frame 0: required label 'energy' is missing \(looked for "
        r"info key\(s\) 'REF_energy'.*The structure has info keys 'DFT_energy', "
        r"'config_type'; arrays keys 'DFT_forces', 'numbers', 'positions'",
    ):
        reader_for_files([path], energy_key="REF_energy").load()
    h5_path = write_hdf5(
        tmp_path / "keys.h5",
        {
            "a": {
                **hdf5_structure(0.0),
                "attrs": {"E": -5.0, "config_type": "NEB"},
                "F": np.zeros((2, 3)),
            }
        },
    )
    [h5_system], _, _ = reader_for_files(
        [h5_path], energy_key="E", forces_key="F"
    ).load()
    assert h5_system.energy == -5.0 and not h5_system.forces.any()
    assert h5_system.config_type == "NEB"
    with pytest.raises(
        MissingLabelError,
        match=r"group 'a': required label 'stress' is missing \(dataset 'S'\)\. The "
        r"group has attributes 'E', 'config_type'; datasets 'F', 'elements', "
        r"'forces', 'positions'",
    ):
        reader_for_files(
            [h5_path],
            required_labels=("energy", "stress"),
            energy_key="E",
            stress_key="S",
        ).load()
