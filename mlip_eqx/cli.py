"""The ``mlip-eqx`` command: ``mlip-eqx train`` trains MACE (demo data by default).

Settings come from flags, or from a JSON config file whose keys are the flag names
with underscores (flags given on the command line win). Everything is written to the
output directory: checkpoints (``model/``), ``dataset_info.json``, ``model.zip``,
``metrics.jsonl``, ``config.json`` (the settings used) and PNG plots.
"""

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from rich.logging import RichHandler

logger = logging.getLogger("mlip_eqx")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Settings of ``mlip-eqx train`` (units: Å, eV)."""

    output_dir: str = "mlip_eqx_run"
    train: tuple[str, ...] = ()
    valid: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    demo_structures: int = 300
    epochs: int = 12
    batch_size: int = 8
    cutoff: float = 5.0
    num_channels: int = 32
    l_max: int = 2
    correlation: int = 3
    num_layers: int = 2
    predict_stress: bool = False
    loss: str = "mse"
    energy_weight: float = 1.0
    forces_weight: float = 25.0
    stress_weight: float = 0.0
    learning_rate: float = 0.01
    warmup_steps: int = 0
    ema_decay: float = 0.99
    seed: int = 42
    resume: bool = False
    plots: bool = True


_SEQUENCE_FIELDS = ("train", "valid", "test")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlip-eqx", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train a MACE force field",
        description="Train MACE on the built-in demo data or on extxyz/HDF5 files.",
    )
    defaults = TrainSettings()
    train.add_argument("--config", type=Path, help="JSON file of settings")
    for field in dataclasses.fields(TrainSettings):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if field.name in _SEQUENCE_FIELDS:
            train.add_argument(
                flag,
                nargs="+",
                default=None,
                help=f"{field.name} data files (extxyz or HDF5)",
            )
        elif isinstance(default, bool):
            train.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"default: {default}",
            )
        else:
            train.add_argument(
                flag, type=type(default), default=None, help=f"default: {default}"
            )
    return parser


def _settings(arguments: argparse.Namespace) -> TrainSettings:
    """Defaults, then the config file, then the flags given."""
    values: dict = {}
    if arguments.config is not None:
        try:
            values = json.loads(arguments.config.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise SystemExit(
                f"Cannot read the config file {arguments.config}: {error}"
            ) from error
        names = {field.name for field in dataclasses.fields(TrainSettings)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SystemExit(
                f"{arguments.config}: unknown settings {unknown}; "
                f"known: {sorted(names)}"
            )
    for field in dataclasses.fields(TrainSettings):
        given = getattr(arguments, field.name)
        if given is not None:
            values[field.name] = given
    for name in _SEQUENCE_FIELDS:
        if name in values:
            values[name] = tuple(values[name])
    return TrainSettings(**values)


def _reader(settings: TrainSettings):
    from mlip_eqx.data import ExtxyzReader, Hdf5Reader
    from mlip_eqx.data.demo import get_demo_dataset

    if not settings.train:
        demo = get_demo_dataset(num_structures=settings.demo_structures)
        paths = (
            (str(demo.train_path),),
            (str(demo.validation_path),),
            (str(demo.test_path),),
        )
    else:
        paths = settings.train, settings.valid, settings.test
    all_paths = [p for split in paths for p in split]
    is_hdf5 = [Path(p).suffix.lower() in (".h5", ".hdf5") for p in all_paths]
    if any(is_hdf5) and not all(is_hdf5):
        raise SystemExit("Use either extxyz or HDF5 files, not both.")
    reader_class = Hdf5Reader if all(is_hdf5) else ExtxyzReader
    labels = (
        ("energy", "forces", "stress")
        if settings.predict_stress
        else ("energy", "forces")
    )
    return reader_class(
        reader_class.Config(
            train_dataset_paths=list(paths[0]),
            valid_dataset_paths=list(paths[1]) or None,
            test_dataset_paths=list(paths[2]) or None,
            required_labels=labels,
        )
    )


def train(settings: TrainSettings) -> dict[str, float]:
    """Runs the training job; returns the test metrics (or validation if no test)."""
    import optax

    from mlip_eqx.data import GraphDatasetBuilder
    from mlip_eqx.inference import predict_dataset
    from mlip_eqx.models import ForceField, Mace
    from mlip_eqx.models.loss import HuberLoss, MSELoss
    from mlip_eqx.models.model_io import save_model_to_zip
    from mlip_eqx.training import (
        OptimizerConfig,
        TrainingIOHandler,
        TrainingLoop,
        get_default_mlip_optimizer,
    )
    from mlip_eqx.training.training_loggers import (
        JsonLinesLogger,
        log_metrics_to_table,
    )

    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.json").write_text(
        json.dumps(dataclasses.asdict(settings), indent=2)
    )
    builder = GraphDatasetBuilder(
        _reader(settings),
        GraphDatasetBuilder.Config(
            graph_cutoff_angstrom=settings.cutoff, batch_size=settings.batch_size
        ),
    )
    builder.prepare_datasets()
    train_set, validation_set, test_set = builder.get_splits()
    logger.info(
        "Structures: %d train, %d validation, %d test.",
        len(train_set.graphs),
        len(validation_set.graphs),
        len(test_set.graphs),
    )
    mace = Mace(
        Mace.Config(
            num_channels=settings.num_channels,
            l_max=settings.l_max,
            correlation=settings.correlation,
            num_layers=settings.num_layers,
        ),
        builder.dataset_info,
    )
    force_field = ForceField.from_mlip_network(
        mace, predict_stress=settings.predict_stress, seed=settings.seed
    )
    loss_class = {"mse": MSELoss, "huber": HuberLoss}.get(settings.loss)
    if loss_class is None:
        raise SystemExit(f"--loss must be 'mse' or 'huber', got {settings.loss!r}.")
    loss = loss_class(
        optax.constant_schedule(settings.energy_weight),
        optax.constant_schedule(settings.forces_weight),
        optax.constant_schedule(settings.stress_weight),
    )
    optimizer = get_default_mlip_optimizer(
        OptimizerConfig(
            init_learning_rate=settings.learning_rate,
            peak_learning_rate=settings.learning_rate,
            final_learning_rate=settings.learning_rate,
            warmup_steps=settings.warmup_steps,
        )
    )
    io_handler = TrainingIOHandler(
        TrainingIOHandler.Config(
            local_model_output_dir=output_dir,
            ema_decay=settings.ema_decay,
            restore_checkpoint_if_exists=settings.resume,
            restore_optimizer_state=settings.resume,
        )
    )
    metrics_log = JsonLinesLogger(output_dir / "metrics.jsonl")
    io_handler.attach_logger(log_metrics_to_table)
    io_handler.attach_logger(metrics_log)
    loop = TrainingLoop(
        train_set,
        validation_set,
        force_field,
        loss,
        optimizer,
        TrainingLoop.Config(
            num_epochs=settings.epochs,
            ema_decay=settings.ema_decay,
            random_seed=settings.seed,
        ),
        io_handler=io_handler,
        should_parallelize=False,
    )
    loop.run()
    final_set = test_set if test_set.graphs else validation_set
    results = loop.test(final_set)
    save_model_to_zip(output_dir / "model.zip", loop.best_model)
    if settings.plots:
        from mlip_eqx.plotting import plot_learning_curves, plot_parity

        plot_learning_curves(metrics_log.records(), output_dir / "learning_curves.png")
        predictions = predict_dataset(loop.best_model, final_set)
        plot_parity(
            predictions,
            output_dir / "parity_energy.png",
            output_dir / "parity_forces.png",
        )
    logger.info(
        "Done: test force MAE %.1f meV/Å, energy MAE %.2f meV; outputs in %s",
        1000 * results["mae_f"],
        1000 * results["mae_e"],
        output_dir,
    )
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlip-eqx`` console script."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(show_path=False)] if sys.stderr.isatty() else None,
    )
    logger.setLevel(logging.INFO)
    if arguments.command == "train":
        train(_settings(arguments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
