"""Isolated atoms: their energies become the E0s; they are not training data."""

import logging

import ase
import ase.io
import numpy as np
import pytest

from mlip_eqx.data import ASEAtomsReader, ChemicalSystem, IsolatedAtomError
from mlip_eqx.data.isolated_atoms import isolated_atom_energies, split_isolated_atoms
from mlip_eqx.data.readers.file_readers import reader_for_files
from tests.data.molecule_data import (
    BINDING_PER_ATOM,
    ISOLATED,
    build,
    isolated_atom,
    molecule,
    molecules,
)


def test_isolated_atoms_in_the_training_data_give_the_e0s_and_are_not_trained_on():
    train = molecules()
    # mace-torch's mark, BOTNet's mark, and an unmarked non-periodic atom; an
    # isolated atom in the validation data is left out too.
    train[3:3] = [isolated_atom(1, config_type="IsolatedAtom")]
    train += [
        isolated_atom(6, config_type="isolated_atom"),
        isolated_atom(8, cell=np.eye(3) * 20, pbc=True),
    ]
    builder = build(train, validation=[*molecules(1, 3), isolated_atom(1)])
    info = builder.dataset_info
    assert info.atomic_energies_map == ISOLATED
    assert info.atomic_energies_source == "isolated atoms in train atoms"
    assert "from isolated atoms in train atoms" in str(info)
    train_set, validation_set, _ = builder.get_splits()
    assert len(train_set.graphs) == 12 and len(validation_set.graphs) == 3
    assert all(int(graph.n_node[0]) > 1 for graph in train_set.graphs)
    assert not any("atoms[3]" in source for source in train_set.sources)
    # "auto" energy scaling is MACE's with these E0s: the mean per-atom energy
    # after E0, and the RMS of the force components.
    energies = [a.info["REF_energy"] for a in train if len(a) > 1]
    sizes = [len(a) for a in train if len(a) > 1]
    e0_sums = [sum(ISOLATED[z] for z in a.numbers) for a in train if len(a) > 1]
    expected = np.mean((np.array(energies) - e0_sums) / sizes)
    assert info.scaling_mean == pytest.approx(expected, abs=1e-9)
    assert info.scaling_mean == pytest.approx(BINDING_PER_ATOM, abs=0.01)
    forces = np.concatenate([a.arrays["REF_forces"] for a in train if len(a) > 1])
    assert info.scaling_stdev == pytest.approx(np.sqrt(np.mean(forces**2)))


def test_isolated_atoms_from_a_separate_file(tmp_path):
    path = tmp_path / "iso_atoms.xyz"
    ase.io.write(path, [isolated_atom(z) for z in (8, 1, 6)], format="extxyz")
    isolated = reader_for_files([path], required_labels=("energy",)).load()[0]
    builder = build(molecules(), isolated_atoms=isolated)
    assert builder.dataset_info.atomic_energies_map == ISOLATED
    assert builder.dataset_info.atomic_energies_source == f"isolated atoms in {path}"
    assert sum(len(split.graphs) for split in builder.get_splits()) == 12


def test_a_one_atom_crystal_is_a_training_structure_unless_marked_isolated():
    bulk = isolated_atom(6, cell=np.eye(3) * 2.5, pbc=True)
    bulk.arrays["REF_forces"] = np.zeros((1, 3))
    kept, isolated = split_isolated_atoms(
        ASEAtomsReader([bulk]).load()[0], cutoff=3.0, split="train"
    )
    assert len(kept) == 1 and not isolated
    bulk.info["config_type"] = "IsolatedAtom"
    with pytest.raises(
        IsolatedAtomError,
        match=r"train atoms\[12\] has config_type='IsolatedAtom'.*periodic images",
    ):
        build([*molecules(), bulk])


def test_bad_isolated_atoms_are_errors_naming_them():
    marked_pair = molecule(np.random.default_rng(0), [1, 1], "IsolatedAtom")
    with pytest.raises(IsolatedAtomError, match=r"atoms\[12\].*but 2 atoms"):
        build([*molecules(), marked_pair])
    with pytest.raises(
        IsolatedAtomError,
        match=r"Two isolated-atom energies of H: -13.5 eV \(train atoms\[12\]\) "
        r"and -13.6 eV \(train atoms\[13\]\)",
    ):
        build([*molecules(), isolated_atom(1), isolated_atom(1, energy=-13.6)])
    not_isolated = ChemicalSystem(atomic_numbers=[1, 1], positions=np.eye(2, 3))
    with pytest.raises(IsolatedAtomError, match="not an isolated atom: 2 atoms"):
        build(molecules(), isolated_atoms=[not_isolated])
    no_energy = ChemicalSystem(atomic_numbers=[1], positions=[[0, 0, 0]], source="f")
    with pytest.raises(IsolatedAtomError, match="f: this isolated atom .H. has no"):
        isolated_atom_energies([no_energy])


def test_forces_on_an_isolated_atom_are_a_warning(caplog):
    atom = ChemicalSystem(
        atomic_numbers=[8],
        positions=[[0, 0, 0]],
        energy=-2035.0,
        forces=[[0.0, 0.2, 0.0]],
        source="iso.xyz, frame 2",
    )
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        assert isolated_atom_energies([atom]) == {8: -2035.0}
    assert "iso.xyz, frame 2: the isolated atom (O) has forces up to 0.2" in (
        caplog.text
    )


def test_an_element_without_isolated_atom_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"No reference energy \(E0\) for O, "):
        build(molecules(), isolated_atoms=[_system(1), _system(6)])


def test_a_given_dataset_info_keeps_its_e0s_and_drops_isolated_atoms(caplog):
    info = build(molecules()).dataset_info
    assert info.atomic_energies_source == "least squares"
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        builder = build([*molecules(), isolated_atom(1)], dataset_info=info)
    assert builder.dataset_info == info
    assert "The 1 isolated atoms (isolated atoms in train atoms) are not used" in (
        caplog.text
    )
    assert all(int(g.n_node[0]) > 1 for g in builder.get_splits()[0].graphs)


def _system(z):
    return ChemicalSystem(atomic_numbers=[z], positions=[[0, 0, 0]], energy=ISOLATED[z])
