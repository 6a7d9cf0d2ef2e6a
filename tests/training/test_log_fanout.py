"""The fan-out of a run's records to the attached loggers."""

from mlip_eqx.training.log_fanout import LogCategory, LogFanOut


def test_every_logger_gets_every_record_in_the_order_of_attachment():
    log = LogFanOut()
    log(LogCategory.TRAIN_METRICS, {"loss": 2.0}, 1)  # no logger yet: dropped
    calls = []
    log.attach(lambda *record: calls.append(("first", *record)))
    log.attach(lambda *record: calls.append(("second", *record)))
    log(LogCategory.BEST_MODEL, {"best_loss": 0.5, "best_epoch": 3}, 3)
    log(LogCategory.CLEANUP_AFTER_CKPT_RESTORATION, {}, 3)
    assert calls == [
        ("first", LogCategory.BEST_MODEL, {"best_loss": 0.5, "best_epoch": 3}, 3),
        ("second", LogCategory.BEST_MODEL, {"best_loss": 0.5, "best_epoch": 3}, 3),
        ("first", LogCategory.CLEANUP_AFTER_CKPT_RESTORATION, {}, 3),
        ("second", LogCategory.CLEANUP_AFTER_CKPT_RESTORATION, {}, 3),
    ]
