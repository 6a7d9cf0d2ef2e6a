import json

import numpy as np
import pytest

from mlip_eqx.cli import main
from mlip_eqx.models import Mace
from mlip_eqx.models.model_io import load_model_from_zip

TINY = [
    "--demo-structures",
    "24",
    "--epochs",
    "2",
    "--num-channels",
    "8",
    "--l-max",
    "1",
    "--correlation",
    "2",
    "--batch-size",
    "4",
]


def test_train_command_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("MLIP_EQX_CACHE_DIR", str(tmp_path / "cache"))
    output = tmp_path / "run"
    assert main(["train", "--output-dir", str(output), *TINY]) == 0
    for name in (
        "config.json",
        "dataset_info.json",
        "model.zip",
        "metrics.jsonl",
        "learning_curves.png",
        "parity_energy.png",
        "parity_forces.png",
    ):
        assert (output / name).stat().st_size > 0, name
    assert (output / "model").is_dir()
    with open(output / "learning_curves.png", "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    records = [
        json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()
    ]
    categories = [r["category"] for r in records]
    assert categories.count("TRAIN_METRICS") == 2 and "TEST_METRICS" in categories
    test_record = next(r for r in records if r["category"] == "TEST_METRICS")
    assert np.isfinite(test_record["mae_f"])
    settings = json.loads((output / "config.json").read_text())
    assert settings["epochs"] == 2 and settings["num_channels"] == 8
    force_field = load_model_from_zip(Mace, output / "model.zip")
    assert force_field.config.num_channels == 8


def test_config_file_and_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("MLIP_EQX_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"epochs": 1, "num_channels": 8, "plots": False}))
    output = tmp_path / "run"
    args = ["train", "--config", str(config), "--output-dir", str(output)]
    assert main(args + TINY[:2] + TINY[4:] + ["--epochs", "1"]) == 0
    settings = json.loads((output / "config.json").read_text())
    assert settings["plots"] is False and settings["epochs"] == 1
    assert not (output / "learning_curves.png").exists()


def test_bad_config_file_names_the_problem(tmp_path):
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"epoch": 3}))
    with pytest.raises(SystemExit, match="unknown settings \\['epoch'\\]"):
        main(["train", "--config", str(config)])
