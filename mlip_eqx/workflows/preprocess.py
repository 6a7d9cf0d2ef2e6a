"""What ``mlip-eqx preprocess`` runs: a training job's graphs, built once and
written as sharded HDF5."""

import logging

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.data.preprocess import DEFAULT_SHARD_SIZE, preprocess
from mlip_eqx.workflows.datasets import job_reader, reference_energy_options
from mlip_eqx.workflows.train_settings import TrainSettings

logger = logging.getLogger("mlip_eqx")


def run_preprocess(
    settings: TrainSettings, shard_size: int = DEFAULT_SHARD_SIZE
) -> DatasetInfo:
    """Builds the graphs of the job's data (its data and graph settings) and
    writes them to ``settings.output_dir``, ``shard_size`` structures per file
    (replacing a preprocessed set there only with ``settings.overwrite``).

    Returns:
        The DatasetInfo written with them.
    """
    info = preprocess(
        job_reader(settings),
        settings.output_dir,
        settings.graph_dataset,
        shard_size=shard_size,
        overwrite=settings.overwrite,
        **reference_energy_options(settings),
    )
    logger.info(
        "Preprocessed to %s (train with mlip-eqx train --preprocessed %s): %s",
        settings.output_dir,
        settings.output_dir,
        info,
    )
    return info
