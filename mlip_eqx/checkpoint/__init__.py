"""The on-disk checkpoint format, shared by model loading and training."""

from mlip_eqx.checkpoint.format import (
    CheckpointRestorationError,
    IncompatibleCheckpointError,
    read_checkpoint_layout,
    restore_checkpoint_item,
)

__all__ = [
    "CheckpointRestorationError",
    "IncompatibleCheckpointError",
    "read_checkpoint_layout",
    "restore_checkpoint_item",
]
