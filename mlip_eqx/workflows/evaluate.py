"""What ``mlip-eqx evaluate`` runs: a trained model's errors on labelled
structures, its predictions as extxyz and parity plots."""

import dataclasses
import json
import logging
import os
from pathlib import Path

from mlip_eqx.data.readers.file_readers import reader_for_files
from mlip_eqx.inference.evaluation import evaluate_force_field, write_predictions
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.inference_context import InferenceContext
from mlip_eqx.models.model_io import load_model_from_zip, use_saved_dtype
from mlip_eqx.plotting import plot_parity
from mlip_eqx.training.metric_units import summarize_metrics
from mlip_eqx.training.training_loggers import print_metrics_table
from mlip_eqx.utils.config import Config, PositiveInt
from mlip_eqx.utils.files import atomic_write, writable_directory

logger = logging.getLogger("mlip_eqx")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluateSettings(Config):
    """Settings of ``mlip-eqx evaluate``.

    Attributes:
        model: The model zip, or a training run's output directory (its
            ``model.zip``).
        data: Structure files (extxyz or HDF5), labelled or not.
        output_dir: Where to write (None: ``evaluation/`` next to the model).
        batch_size: Structures per batch, at most.
        head: The data set (readout head and reference energies) of a
            multi-head model to predict with, by name (None: data set 0).
        plots: Write parity plots of energy and forces.
    """

    model: str
    data: tuple[str, ...]
    output_dir: str | None = None
    batch_size: PositiveInt = 16
    head: str | None = None
    plots: bool = True


def with_head(force_field: ForceField, head: str | None) -> ForceField:
    """The force field predicting with the data set called ``head`` (None: as
    it is).

    Raises:
        ValueError: The model has no data set of that name.
    """
    if head is None:
        return force_field
    return force_field.replace_inference_context(InferenceContext(dataset_name=head))


def model_zip(path: str | os.PathLike) -> Path:
    """The model zip named by ``path``: the file, or a training run's
    ``model.zip`` when ``path`` is the run's output directory.

    Raises:
        FileNotFoundError: There is no such file, or the directory has no
            ``model.zip`` (naming what to pass instead).
    """
    path = Path(path)
    if path.is_dir():
        if (path / "model.zip").is_file():
            return path / "model.zip"
        raise FileNotFoundError(
            f"{path}: a directory without model.zip (a run writes it when it "
            "ends); pass a model zip, or fine-tune from the run's latest "
            "checkpoint with mlip-eqx train --init-from."
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model zip.")
    return path


def evaluate(settings: EvaluateSettings) -> dict[str, float]:
    """Prints the metrics table and writes ``predictions.extxyz``,
    ``metrics.json`` and (with ``settings.plots``) parity plots. The job
    predicts in the zip's dtype (a float64 zip turns ``jax_enable_x64`` on for
    the whole process).

    Returns:
        The metrics (eV units); empty if no structure has labels.
    """
    model = model_zip(settings.model)
    output_dir = writable_directory(settings.output_dir or model.parent / "evaluation")
    use_saved_dtype(model)  # a float64 zip: jax_enable_x64 on
    force_field = with_head(load_model_from_zip(None, model), settings.head)
    reader = reader_for_files(settings.data, required_labels=())
    systems = reader.load()[0]
    result = evaluate_force_field(force_field, systems, settings.batch_size)
    write_predictions(output_dir / "predictions.extxyz", systems, result.predictions)
    with atomic_write(output_dir / "metrics.json", "w") as file:
        json.dump(result.metrics, file, indent=2)
    written = ["predictions.extxyz", "metrics.json (eV units)"]
    if settings.plots and result.metrics:
        plot_parity(
            result.predictions,
            output_dir / "parity_energy.png",
            output_dir / "parity_forces.png",
        )
        written += ["parity_energy.png", "parity_forces.png"]
    summary = "no labels, so no errors"
    if result.metrics:
        print_metrics_table(f"Metrics of {len(systems)} structures", result.metrics)
        summary = summarize_metrics(
            result.metrics, ("mae_e_per_atom", "mae_f", "mae_stress")
        )
    logger.info(
        "Evaluated %d structures: %s. Written to %s: %s.",
        len(systems),
        summary,
        output_dir,
        ", ".join(written),
    )
    return result.metrics
