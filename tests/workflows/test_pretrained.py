"""Fine-tuning settings: what a pretrained model keeps is said, not silently
dropped; the labels its data needs."""

import dataclasses
import logging

import ase.build
import ase.io
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_eqx.data.readers.labels import MissingLabelError
from mlip_eqx.workflows.datasets import job_reader, required_labels
from mlip_eqx.workflows.pretrained import pretrained_settings
from mlip_eqx.workflows.train_settings import default_train_settings
from tests.helpers.models import force_field


def test_architecture_settings_a_pretrained_model_ignores_are_named(caplog):
    pretrained = force_field("mace-tiny")
    defaults = default_train_settings()
    settings = dataclasses.replace(
        defaults,
        model=dataclasses.replace(defaults.model, num_channels=64),
        graph_dataset=dataclasses.replace(
            defaults.graph_dataset, graph_cutoff_angstrom=3.0
        ),
        fine_tuning=dataclasses.replace(defaults.fine_tuning, init_from="model.zip"),
    )
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        tuned = pretrained_settings(settings, pretrained)
    assert tuned.model == pretrained.config
    assert tuned.predict_stress  # the pretrained model predicts stress
    assert tuned.graph_dataset.graph_cutoff_angstrom == pretrained.cutoff_distance
    assert "model.num_channels=64" in caplog.text
    assert "graph_dataset.graph_cutoff_angstrom=3.0" in caplog.text
    caplog.clear()
    untouched = dataclasses.replace(settings, model=defaults.model)
    untouched = dataclasses.replace(untouched, graph_dataset=defaults.graph_dataset)
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        pretrained_settings(untouched, pretrained)
    assert "ignored" not in caplog.text


def test_a_model_that_predicts_stress_needs_stress_labels_only_to_train_on_them(
    tmp_path,
):
    """Fine-tuning a foundation model (which predicts stress) on energies and
    forces alone: stress labels are required only with a stress weight."""
    frames = random_frames(tmp_path / "no_stress.xyz")
    defaults = default_train_settings()
    settings = dataclasses.replace(
        defaults,
        predict_stress=True,
        data=dataclasses.replace(
            defaults.data, train=(frames,), valid=(frames,), test=(frames,)
        ),
    )
    assert required_labels(settings) == ("energy", "forces")
    train, _, _ = job_reader(settings).load()
    assert all(system.stress is None for system in train)
    weighted = dataclasses.replace(
        settings, loss=dataclasses.replace(settings.loss, stress_weight=1.0)
    )
    assert required_labels(weighted) == ("energy", "forces", "stress")
    with pytest.raises(MissingLabelError, match=r"frame 0: required label 'stress'"):
        job_reader(weighted).load()


def random_frames(path):
    """Two Cu/Ag cells labelled with energies and forces only."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(2):
        atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.numbers[0] = 47
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        atoms.calc = SinglePointCalculator(
            atoms, energy=-1.0, forces=rng.normal(size=atoms.positions.shape)
        )
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")
    return str(path)
