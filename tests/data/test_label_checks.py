"""Labels checked as a whole: zero weights stop, implausible units warn."""

import dataclasses
import logging

import numpy as np
import pytest

from mlip_eqx.data.label_checks import check_training_labels
from mlip_eqx.testing.structures import random_system


def systems(count: int = 4) -> list:
    rng = np.random.default_rng(0)
    return [random_system(rng, 5) for _ in range(count)]


def test_labels_in_ev_pass_silently(caplog):
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        check_training_labels(systems())
    assert not caplog.text


def test_zero_weights_stop_and_other_units_warn(caplog):
    unweighted = [dataclasses.replace(s, weight=0.0) for s in systems()]
    with pytest.raises(ValueError, match="All 4 training structures have weight 0"):
        check_training_labels(unweighted)
    in_mev = [dataclasses.replace(s, forces=s.forces * 1000.0) for s in systems()]
    in_gpa = [  # a largest component of 50 GPa, given as 50
        dataclasses.replace(s, stress=s.stress / np.abs(s.stress).max() * 50.0)
        for s in systems()
        if s.stress is not None
    ]
    assert in_gpa  # random periodic systems carry stress
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        check_training_labels(in_mev)
        check_training_labels(in_gpa)
    assert "meV/Å or kcal/mol/Å" in caplog.text
    assert "in GPa or kbar" in caplog.text
