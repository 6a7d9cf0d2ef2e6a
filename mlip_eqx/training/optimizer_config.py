"""OptimizerConfig: settings of the default MLIP optimizer."""

import dataclasses

from mlip_eqx.utils.config import (
    Config,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig(Config):
    """Settings of :func:`~mlip_eqx.training.optimizer.get_default_mlip_optimizer`.

    Attributes:
        apply_weight_decay_mask: Apply weight decay only to the parameters that
            the network's ``weight_decay_mask()`` selects (for MACE, its
            down-projection and symmetric-contraction weights); if False, to all
            parameters.
        weight_decay: Decoupled weight decay factor (default 0).
        grad_norm: Maximum global gradient norm; larger gradients are clipped.
        num_gradient_accumulation_steps: Gradients of this many consecutive steps
            are averaged into one optimizer update.
        init_learning_rate: Learning rate at step 0.
        peak_learning_rate: Learning rate at the end of the warm-up.
        final_learning_rate: Learning rate after ``transition_steps`` more steps.
        warmup_steps: Number of steps of the linear warm-up from init to peak.
        transition_steps: Number of steps of the linear change from peak to final.
    """

    apply_weight_decay_mask: bool = True
    weight_decay: NonNegativeFloat = 0.0
    grad_norm: NonNegativeFloat = 500.0
    num_gradient_accumulation_steps: PositiveInt = 1
    init_learning_rate: PositiveFloat = 0.01
    peak_learning_rate: PositiveFloat = 0.01
    final_learning_rate: PositiveFloat = 0.01
    warmup_steps: NonNegativeInt = 4000
    transition_steps: NonNegativeInt = 360000
