import sys

import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.training.trackers import (
    MlflowLogger,
    TensorBoardLogger,
    WandbLogger,
    tracker_scalars,
)
from mlip_eqx.training.training_io_handler import LogCategory


def test_scalars_are_named_by_set_and_keep_library_units():
    record = {
        "loss": np.float64(1.5),
        "mae_f": jnp.float32(0.25),  # eV/Å, as in the record
        "skipped_updates": np.int32(2),
        "per_head": jnp.asarray([1.0, 2.0]),
        "note": "text",
    }
    assert tracker_scalars(LogCategory.EVAL_METRICS, record) == {
        "validation/loss": 1.5,
        "validation/mae_f": 0.25,
        "validation/skipped_updates": 2.0,
    }
    assert tracker_scalars(LogCategory.BEST_MODEL, {"best_epoch": 3}) == {
        "best_model/best_epoch": 3.0
    }


@pytest.mark.parametrize(
    "make_logger, module, extra",
    [
        (lambda directory: TensorBoardLogger(directory), "tensorboardX", "tensorboard"),
        (lambda directory: WandbLogger(directory=directory), "wandb", "wandb"),
        (lambda directory: MlflowLogger(directory), "mlflow", "mlflow"),
    ],
)
def test_missing_library_names_the_extra(
    make_logger, module, extra, monkeypatch, tmp_path
):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(ImportError, match=rf"pip install 'mlip_eqx\[{extra}\]'"):
        make_logger(tmp_path)
