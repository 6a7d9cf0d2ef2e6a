"""The flags of the commands, generated from the settings dataclasses."""

import dataclasses
import json

import pytest

from mlip_eqx.cli import build_parser
from mlip_eqx.cli.flags import config_fields, field_descriptions
from mlip_eqx.cli.train_flags import (
    ALIASES,
    parse_train_settings,
    train_settings_fields,
)
from mlip_eqx.models import NequipConfig, VisnetConfig
from mlip_eqx.simulation.configs.simulation_config import SimulationConfig
from mlip_eqx.training.training_loop_config import TrainingLoopConfig
from mlip_eqx.utils.config import ConfigError
from mlip_eqx.workflows.simulate import SimulateSettings
from mlip_eqx.workflows.train_settings import (
    default_train_settings,
    settings_from_dict,
    settings_to_dict,
)


def test_every_field_with_a_flag_form_has_a_flag_that_sets_it():
    """``--section.field`` exists for every scalar and list field of every
    section, and sets exactly that field."""
    fields = {field.path: field for field in train_settings_fields()}
    assert "training_loop.num_epochs" in fields and "optimizer.grad_norm" in fields
    assert "model.correlation" in fields and "model.node_irreps" in fields
    changed = {
        "--training-loop.num-epochs": ("7", 7),
        "--optimizer.grad-norm": ("3.5", 3.5),
        "--graph-dataset.max-batch-shapes": ("2", 2),
        "--fine-tuning.init-from": ("model.zip", "model.zip"),
        "--loss.kind": ("huber", "huber"),
        "--fine-tuning.train-last-layers": ("1", 1),
    }
    argv = [item for flag, (text, _) in changed.items() for item in (flag, text)]
    values = settings_to_dict(parse_train_settings(argv))
    for flag, (_, expected) in changed.items():
        section, name = flag[2:].replace("-", "_").split(".")
        assert values[section][name] == expected, flag
    # Every alias names real fields.
    for alias, paths in ALIASES.items():
        assert all(path in fields for path in paths), alias


def test_descriptions_come_from_the_class_docstrings():
    descriptions = field_descriptions(TrainingLoopConfig)
    assert set(descriptions) == {f.name for f in dataclasses.fields(TrainingLoopConfig)}
    assert all(descriptions.values())
    parser, _ = build_parser()
    train_help = parser._subparsers._group_actions[0].choices["train"].format_help()
    assert descriptions["num_epochs"].split()[0] in train_help
    assert "--training-loop.num-epochs" in train_help and "--epochs" in train_help


def test_simulate_defaults_have_one_home():
    """The simulate command's physical defaults are SimulationConfig's."""
    shared = {f.name: f.default for f in dataclasses.fields(SimulationConfig)}
    fields = {field.path: field for field in config_fields(SimulateSettings)}
    assert fields["temperature"].default == shared["temperature_kelvin"]
    assert fields["timestep"].default == shared["timestep_fs"]
    assert fields["friction"].default == shared["friction"]
    assert fields["model"].default is dataclasses.MISSING  # a required flag


def test_yaml_config_file(tmp_path):
    config = tmp_path / "settings.yaml"
    config.write_text(
        "model_type: nequip\nmodel:\n  num_layers: 1\ntraining_loop:\n"
        "  num_epochs: 3\nloggers: [tensorboard]\n"
    )
    settings = parse_train_settings(["--config", str(config), "--epochs", "4"])
    assert settings.model == NequipConfig(num_layers=1)
    assert settings.training_loop.num_epochs == 4
    assert settings.loggers == ("tensorboard",)
    config.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="settings.yaml"):
        parse_train_settings(["--config", str(config)])


def test_every_flag_sets_a_real_config_field():
    defaults = settings_to_dict(default_train_settings())
    arguments = [
        "--epochs", "7", "--cutoff", "4.5", "--learning-rate", "0.003",
        "--seed", "5", "--no-plots",
    ]  # fmt: skip
    settings = parse_train_settings(arguments)
    assert settings.training_loop.num_epochs == 7
    assert settings.graph_dataset.graph_cutoff_angstrom == 4.5
    assert settings.optimizer.peak_learning_rate == 0.003
    assert settings.optimizer.final_learning_rate == 0.003
    assert settings.seed == settings.training_loop.random_seed == 5
    assert settings.plots is False
    # Untouched settings keep the defaults of the configs.
    assert settings_to_dict(settings)["model"] == defaults["model"]


def test_model_flag_and_config_file_select_nequip_in_any_case(tmp_path):
    arguments = ["--model", "nequip", "--num-layers", "1"]
    settings = parse_train_settings(arguments)
    assert settings.model_type == "Nequip"
    assert settings.model == NequipConfig(num_layers=1)
    config = tmp_path / "settings.json"
    config.write_text(
        json.dumps({"model_type": "NEQUIP", "model": {"node_irreps": "8x0e + 4x1o"}})
    )
    settings = parse_train_settings(["--config", str(config)])
    assert settings.model_type == "Nequip"
    assert settings.model == NequipConfig(node_irreps="8x0e + 4x1o")
    assert settings_from_dict(settings_to_dict(settings)) == settings
    with pytest.raises(ConfigError, match="NequipConfig: unknown fields.*num_channels"):
        parse_train_settings([*arguments, "--num-channels", "8"])


def test_model_flag_and_config_file_select_visnet_in_any_case(tmp_path):
    arguments = ["--model", "visnet", "--num-channels", "16", "--l-max", "1"]
    settings = parse_train_settings(arguments)
    assert settings.model_type == "Visnet"
    assert settings.model == VisnetConfig(num_channels=16, l_max=1)
    config = tmp_path / "settings.json"
    config.write_text(
        json.dumps(
            {
                "model_type": "ViSNet",
                "model": {"num_heads": 4, "vecnorm_type": "rms"},
            }
        )
    )
    settings = parse_train_settings(["--config", str(config)])
    assert settings.model_type == "Visnet"
    assert settings.model == VisnetConfig(num_heads=4, vecnorm_type="rms")
    assert settings_from_dict(settings_to_dict(settings)) == settings
    with pytest.raises(ConfigError, match="VisnetConfig: unknown fields.*correlation"):
        parse_train_settings([*arguments, "--correlation", "2"])
    with pytest.raises(ConfigError, match="VisnetConfig.num_channels"):
        parse_train_settings([*arguments[:2], "--num-channels", "12"])


def test_training_protocol_flags_set_the_training_loop_config():
    argv = [
        *("--epochs", "20", "--lr-plateau-patience", "3"),
        *("--lr-plateau-factor", "0.5", "--lr-plateau-min", "1e-5"),
        *("--early-stopping-patience", "6", "--stage-two-epoch", "15"),
        *("--stage-two-energy-weight", "500", "--stage-two-forces-weight", "10"),
        *("--stage-two-learning-rate", "0.002"),
    ]
    loop = parse_train_settings(argv).training_loop
    assert (loop.lr_plateau_patience, loop.lr_plateau_factor) == (3, 0.5)
    assert (loop.lr_plateau_min, loop.early_stopping_patience) == (1e-5, 6)
    assert (loop.stage_two_epoch, loop.stage_two_learning_rate) == (15, 0.002)
    assert (loop.stage_two_energy_weight, loop.stage_two_forces_weight) == (500, 10)
    recorded = settings_to_dict(parse_train_settings(argv))["training_loop"]
    assert recorded["stage_two_epoch"] == 15 and recorded["lr_plateau_patience"] == 3
    with pytest.raises(ConfigError, match="lr_plateau_factor"):
        parse_train_settings(["--lr-plateau-factor", "1.5"])
    with pytest.raises(ConfigError, match="stage_two_epoch.*epoch 30.*num_epochs 20"):
        parse_train_settings(["--epochs", "20", "--stage-two-epoch", "30"])


def test_the_settings_hint_follows_unknown_settings_only():
    from mlip_eqx.cli.errors import error_message
    from mlip_eqx.utils.config import ConfigError, UnknownFieldsError

    hint = "(where settings live)"
    unknown = UnknownFieldsError("TrainSettings: unknown fields ['max_n_node'].")
    assert error_message("train", unknown, hint).endswith(hint)
    out_of_range = error_message("train", ConfigError("bad value"), hint)
    assert out_of_range == "mlip-eqx train: bad value"
    missing = error_message("train", FileNotFoundError("x.xyz: no such file"), hint)
    assert missing == "mlip-eqx train: x.xyz: no such file"


def test_preprocess_refuses_training_only_flags(tmp_path):
    from mlip_eqx.cli import main

    output = tmp_path / "pre"
    with pytest.raises(SystemExit, match="--epochs, --init-from: training settings"):
        main(["preprocess", "--output-dir", str(output), "--epochs", "3",
              "--init-from", "nosuch.zip"])  # fmt: skip
    assert not output.exists()
