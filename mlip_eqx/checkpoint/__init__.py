"""The on-disk checkpoint format, shared by model loading and training."""

from mlip_eqx.checkpoint.format import (
    CheckpointCorruptedError,
    CheckpointRestorationError,
    IncompatibleCheckpointError,
    read_checkpoint_layout,
    restore_checkpoint_item,
)

__all__ = [
    "CheckpointCorruptedError",
    "CheckpointRestorationError",
    "IncompatibleCheckpointError",
    "read_checkpoint_layout",
    "restore_checkpoint_item",
]
