"""TrainingLoopConfig: settings of the training loop."""

import dataclasses

from mlip_eqx.utils.config import (
    Config,
    ConfigError,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    constrained,
)

EMADecay = constrained(float, lambda value: 0.0 < value < 1.0, "a number in (0, 1)")
ReductionFactor = constrained(
    float, lambda value: 0.0 < value < 1.0, "a number in (0, 1)"
)


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
        lr_plateau_patience: Multiply the learning rate by ``lr_plateau_factor``
            after this many evaluations in a row without a new lowest validation
            loss (counted again from 0 after each reduction); None: never.
            Needs an optimizer that records its learning rate (the default MLIP
            optimizer does).
        lr_plateau_factor: The factor of each reduction on a plateau (the MACE
            paper: 0.8).
        lr_plateau_min: The learning rate is never reduced below this.
        early_stopping_patience: End the run after this many evaluations in a
            row without a new lowest validation loss (with the best model, as a
            complete run); None: never. In the first stage of a run with
            ``stage_two_epoch``, the second stage starts instead.
        stage_two_epoch: The first epoch of the second stage (mace-torch's
            stage two): from it on, the loss has the energy and forces weights
            below and the learning rate is ``stage_two_learning_rate`` (times
            the plateau reductions of the second stage); the best model, the
            plateau and the early-stopping counts start again under the new
            loss. None: one stage.
        stage_two_energy_weight: The energy weight of the second stage's loss.
        stage_two_forces_weight: The forces weight of the second stage's loss
            (the stress weight stays that of the first stage).
        stage_two_learning_rate: The learning rate of the second stage (constant,
            in place of the optimizer's schedule).
    """

    num_epochs: PositiveInt
    random_seed: int = 42
    ema_decay: EMADecay = 0.99
    use_ema_params_for_eval: bool = True
    eval_num_graphs: PositiveInt | None = None
    run_eval_at_start: bool = True
    batches_per_step: PositiveInt | None = None
    lr_plateau_patience: PositiveInt | None = None
    lr_plateau_factor: ReductionFactor = 0.8
    lr_plateau_min: NonNegativeFloat = 1e-6
    early_stopping_patience: PositiveInt | None = None
    stage_two_epoch: PositiveInt | None = None
    stage_two_energy_weight: NonNegativeFloat = 1000.0
    stage_two_forces_weight: NonNegativeFloat = 100.0
    stage_two_learning_rate: PositiveFloat = 1e-3

    def __check_init__(self) -> None:
        if self.stage_two_epoch is not None and self.stage_two_epoch > self.num_epochs:
            raise ConfigError(
                f"TrainingLoopConfig.stage_two_epoch: the second stage would start "
                f"at epoch {self.stage_two_epoch}, after the last epoch "
                f"(num_epochs {self.num_epochs})."
            )

    @property
    def num_evaluations(self) -> int:
        """The validation evaluations of a complete run (one per epoch, and
        epoch 0 with ``run_eval_at_start``)."""
        return self.num_epochs + int(self.run_eval_at_start)
