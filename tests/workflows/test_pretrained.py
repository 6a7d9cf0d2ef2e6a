"""Fine-tuning settings: what a pretrained model keeps is said, not silently
dropped."""

import dataclasses
import logging

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
