"""make_predictor: the jitted prediction, compiled once per padded batch shape."""

import jax
import numpy as np

from mlip_eqx.inference import make_predictor
from mlip_eqx.testing import physics
from mlip_eqx.testing.structures import random_system
from tests.helpers.compilations import compilations, logging_compilations
from tests.helpers.models import force_field

SIZES = {"n_node": 24, "n_edge": 512, "n_graph": 4}


def test_predictions_equal_the_force_field_and_compile_once_per_shape(caplog):
    with jax.enable_x64(True):
        check_predictions_and_compilations(caplog)


def check_predictions_and_compilations(caplog) -> None:
    ff = force_field("mace-tiny")
    rng = np.random.default_rng(0)
    first = physics.make_batch(ff, [random_system(rng, 5)], **SIZES)
    second = physics.make_batch(ff, [random_system(rng, 3)] * 2, **SIZES)
    larger = physics.make_batch(ff, [random_system(rng, 4)], **{**SIZES, "n_node": 32})
    retrained = ff.with_params(jax.tree.map(lambda leaf: 1.5 * leaf, ff.params))
    # Also compiles the small eager computations of tracing the network once.
    expected = [
        physics.predict_graph(model, batch)
        for model, batch in [
            (ff, first),
            (ff, second),
            (retrained, first),
            (ff, larger),
        ]
    ]
    with logging_compilations(caplog):
        predictions = [make_predictor(ff)(first), make_predictor(ff)(second)]
        assert compilations(caplog.records) == 1
        # Other parameters reuse the compiled code: they are not constants in it.
        predictions.append(make_predictor(retrained)(first))
        assert compilations(caplog.records) == 1
        predictions.append(make_predictor(ff)(larger))
        assert compilations(caplog.records) == 2
    physics.assert_trees_close(predictions, expected, rtol=1e-10, atol=1e-10)
    assert not np.allclose(predictions[0].energy[0], predictions[2].energy[0])
