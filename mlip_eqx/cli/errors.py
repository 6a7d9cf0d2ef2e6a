"""Which exceptions are the user's to fix (bad input, a bad output directory),
and how a command reports them: a message and exit status 1, not a traceback."""

import contextlib
from collections.abc import Iterator

from mlip_eqx.checkpoint.format import (
    CheckpointRestorationError,
    IncompatibleCheckpointError,
)
from mlip_eqx.data.chemical_system import InvalidStructureError
from mlip_eqx.data.graph_dataset import StructureTooLargeError
from mlip_eqx.data.graph_dataset_builder import UnseenElementsError
from mlip_eqx.data.graph_shards import InvalidShardError
from mlip_eqx.data.preprocess import PreprocessedDataError
from mlip_eqx.data.readers.labels import MissingLabelError
from mlip_eqx.models.convert.mace_torch import MaceTorchConversionError
from mlip_eqx.models.convert.mlip_zip import MlipZipError
from mlip_eqx.models.registry import UnknownNetworkError
from mlip_eqx.simulation.exceptions import (
    NeighborListSkinError,
    SimulationExplodedError,
)
from mlip_eqx.training.distributed import DistributedSetupError
from mlip_eqx.training.training_io_handler import (
    CheckpointSaveError,
    DirectoryLockedError,
    ExistingCheckpointsError,
)
from mlip_eqx.utils.config import ConfigError, UnknownFieldsError
from mlip_eqx.workflows.pretrained import PretrainedModelError

# Raised by the library for input a user can correct; any other exception is
# a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    CheckpointRestorationError,
    CheckpointSaveError,
    ConfigError,
    DirectoryLockedError,
    DistributedSetupError,
    ExistingCheckpointsError,
    FileExistsError,
    FileNotFoundError,
    IncompatibleCheckpointError,
    InvalidShardError,
    InvalidStructureError,
    MaceTorchConversionError,
    MissingLabelError,
    MlipZipError,
    NeighborListSkinError,
    PermissionError,
    PreprocessedDataError,
    PretrainedModelError,
    SimulationExplodedError,
    StructureTooLargeError,
    UnknownNetworkError,
    UnseenElementsError,
)


@contextlib.contextmanager
def reported_as_message(
    command: str,
    also: tuple[type[Exception], ...] = (),
    hint: str = "",
) -> Iterator[None]:
    """Turns a user error (or one of ``also``) raised in the block into
    ``SystemExit`` with the message ``"mlip-eqx <command>: <error>"`` (exit
    status 1; ``hint``, about where settings live, is appended on a line of
    its own to settings that are not where they were given,
    :class:`UnknownFieldsError`)."""
    try:
        yield
    except (*USER_ERRORS, *also) as error:
        raise SystemExit(error_message(command, error, hint)) from error


def error_message(command: str, error: Exception, hint: str = "") -> str:
    """``"mlip-eqx <command>: <error>"``, with ``hint`` on a line of its own
    for an :class:`UnknownFieldsError` (a value out of range needs no hint)."""
    message = f"mlip-eqx {command}: {error}"
    if hint and isinstance(error, UnknownFieldsError):
        return f"{message}\n{hint}"
    return message
