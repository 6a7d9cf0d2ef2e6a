"""Loss weights per config_type reach the graphs' weights."""

import logging

import numpy as np
import pytest

from mlip_eqx.data import ASEAtomsReader, ConfigTypeWeightsReader, GraphDatasetBuilder
from mlip_eqx.data.readers.config_type_weights import (
    ConfigTypeWeightsError,
    parse_config_type_weights,
)
from tests.data.molecule_data import molecule


def test_weights_multiply_each_structures_weight_by_its_config_type(caplog):
    rng = np.random.default_rng(0)
    config_types = ["MD", "NEB", None, "MD", "other"]
    atoms = [molecule(rng, [6, 8, 1, 1], kind) for kind in config_types]
    atoms[1].info["config_weight"] = 0.5
    reader = ConfigTypeWeightsReader(
        ASEAtomsReader(atoms), {"MD": 2.0, "NEB": 10.0, "TS": 3.0}
    )
    config = GraphDatasetBuilder.Config(graph_cutoff_angstrom=3.0, batch_size=2)
    builder = GraphDatasetBuilder(reader, config)
    with caplog.at_level(logging.INFO, logger="mlip_eqx"):
        builder.prepare_datasets()
    weights = [float(graph.weight[0]) for graph in builder.get_splits()[0].graphs]
    assert weights == [2.0, 5.0, 1.0, 2.0, 1.0]
    assert (
        "Structures per config_type (all splits; weight): MD: 2 (2), NEB: 1 (10), "
        "other: 1 (1), (none): 1 (1)" in caplog.text
    )
    assert "config_type weights of 'TS' match no structure" in caplog.text


def test_weights_are_parsed_and_checked():
    assert parse_config_type_weights('{"MD": 1, "NEB": 10.5}') == {
        "MD": 1.0,
        "NEB": 10.5,
    }
    with pytest.raises(ConfigTypeWeightsError, match="weight of 'MD' must be"):
        parse_config_type_weights('{"MD": "high"}')
    with pytest.raises(ConfigTypeWeightsError, match="expected a JSON object"):
        parse_config_type_weights("[1, 2]")
