"""Records of every LogCategory as the training loop logs them, and the series a
tracker should show for them."""

import jax.numpy as jnp
import numpy as np

from mlip_eqx.training.training_io_handler import LogCategory

# Values that float32 holds exactly (TensorBoard stores float32).
RECORDS = [
    (LogCategory.EVAL_METRICS, {"loss": 2.0, "mae_f": jnp.float32(0.5)}, 0),
    (LogCategory.BEST_MODEL, {"best_loss": 2.0, "best_epoch": 0}, 0),
    (
        LogCategory.TRAIN_METRICS,
        {"loss": np.float64(1.5), "learning_rate": 2**-10, "skipped": np.int32(1)},
        1,
    ),
    (LogCategory.EVAL_METRICS, {"loss": 1.25, "mae_f": 0.25}, 1),
    (LogCategory.BEST_MODEL, {"best_loss": 1.25, "best_epoch": 1}, 1),
    (LogCategory.TRAIN_METRICS, {"loss": 1.0, "learning_rate": 2**-11}, 2),
    (LogCategory.EVAL_METRICS, {"loss": 1.5, "mae_f": jnp.asarray([0.375])}, 2),
    (LogCategory.BEST_MODEL, {"best_loss": 1.25, "best_epoch": 1}, 2),
    (LogCategory.TEST_METRICS, {"loss": 1.125, "rmse_e": 0.0625, "note": "x"}, 2),
]

# Epoch 2 again, after restoring the checkpoint of epoch 1.
REPEATED_EPOCH = [
    (LogCategory.CLEANUP_AFTER_CKPT_RESTORATION, {}, 1),
    (LogCategory.TRAIN_METRICS, {"loss": 0.75, "learning_rate": 2**-11}, 2),
    (LogCategory.EVAL_METRICS, {"loss": 0.5, "mae_f": 0.125}, 2),
]

CONFIG = {"model": {"l_max": 2, "irreps": "8x0e"}, "learning_rate": 0.001}


def expected_series(records) -> dict[str, list[tuple[int, float]]]:
    """``{"train/loss": [(epoch, value), ...], ...}`` in logging order (numbers
    only; the test record's "note" is text)."""
    prefixes = {
        LogCategory.BEST_MODEL: "best_model",
        LogCategory.TRAIN_METRICS: "train",
        LogCategory.EVAL_METRICS: "validation",
        LogCategory.TEST_METRICS: "test",
    }
    series = {}
    for category, to_log, epoch in records:
        if category == LogCategory.CLEANUP_AFTER_CKPT_RESTORATION:
            continue
        for name, value in to_log.items():
            if isinstance(value, str):
                continue
            key = f"{prefixes[category]}/{name}"
            series.setdefault(key, []).append((epoch, float(np.asarray(value).item())))
    return series


def log_all(logger, records) -> None:
    for category, to_log, epoch in records:
        logger(category, to_log, epoch)
