"""TrainingLoopConfig: settings of the training loop."""

import dataclasses

from mlip_eqx.utils.config import Config, PositiveInt, constrained

EMADecay = constrained(float, lambda value: 0.0 < value < 1.0, "a number in (0, 1)")


@dataclasses.dataclass(frozen=True)
class TrainingLoopConfig(Config):
    """Settings of :class:`~mlip_eqx.training.training_loop.TrainingLoop`.

    Attributes:
        num_epochs: Number of training epochs (passes over the training set).
        random_seed: Seed of the training state's random key.
        ema_decay: Decay of the exponential moving average of the parameters (its
            one home: the training state keeps it, the steps and checkpoints read
            it from there). Gradient accumulation is the optimizer's setting
            (``OptimizerConfig.num_gradient_accumulation_steps``).
        use_ema_params_for_eval: Evaluate (and keep as best model) the bias-corrected
            EMA parameters instead of the raw ones.
        eval_num_graphs: Evaluate on only the first this-many validation structures
            (None: all).
        run_eval_at_start: Evaluate once before the first epoch (epoch 0).
        batches_per_step: Batches of one training step over all devices (and
            processes), a multiple of their number; None: one batch per device.
            Fixing it makes the steps, and so the whole training, the same on
            any number of devices: 2 batches per step train alike on 1 device
            (2 batches each), on 2 devices or on 2 processes of 1 device, and a
            run can resume on another number of devices along the same path.
    """

    num_epochs: PositiveInt
    random_seed: int = 42
    ema_decay: EMADecay = 0.99
    use_ema_params_for_eval: bool = True
    eval_num_graphs: PositiveInt | None = None
    run_eval_at_start: bool = True
    batches_per_step: PositiveInt | None = None
