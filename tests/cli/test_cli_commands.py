import json

import ase
import ase.io
import numpy as np
import pytest

from mlip_eqx.cli import main
from mlip_eqx.data.demo import get_demo_dataset
from mlip_eqx.models import Mace
from mlip_eqx.models.model_io import load_model_from_zip
from mlip_eqx.utils.trees import flatten_with_key_paths
from mlip_eqx.workflows.train_settings import settings_from_dict, settings_to_dict

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
    "--num-layers",
    "1",
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
    assert settings["training_loop"]["num_epochs"] == 2
    assert settings["model"]["num_channels"] == 8
    # config.json holds the whole settings: reading it back gives them again.
    restored = settings_from_dict(settings)
    assert settings_to_dict(restored) == settings
    assert restored.graph_dataset.batch_size == 4
    force_field = load_model_from_zip(Mace, output / "model.zip")
    assert force_field.config.num_channels == 8
    check_evaluate_command(output, test_record)
    check_simulate_command(output)
    check_fine_tuning(output)


def check_fine_tuning(pretrained_run):
    """``--init-from`` a model zip (frozen interactions, replayed data) and a
    run directory (a new head); an unknown element is an error."""
    pretrained = load_model_from_zip(Mace, pretrained_run / "model.zip")
    demo = get_demo_dataset(num_structures=24)
    output = pretrained_run.parent / "fine_tuned"
    command = ["train", "--output-dir", str(output), "--init-from",
               str(pretrained_run / "model.zip"), "--freeze", ".interaction.",
               "--replay", str(demo.train_path), "--replay-fraction", "0.5",
               "--num-channels", "16", *TINY[:4], "--no-plots"]  # fmt: skip
    assert main(command) == 0
    settings = json.loads((output / "config.json").read_text())
    assert settings["model"]["num_channels"] == 8  # the pretrained model's
    assert settings["fine_tuning"]["frozen"] == [".interaction."]
    tuned = load_model_from_zip(Mace, output / "model.zip")
    before = dict(flatten_with_key_paths(pretrained.params))
    after = dict(flatten_with_key_paths(tuned.params))
    frozen = [path for path in before if ".interaction." in path]
    assert frozen and len(frozen) < len(before)
    for path in before:
        if path in frozen:  # the exported EMA of a constant: equal to rounding
            np.testing.assert_allclose(after[path], before[path], rtol=1e-6)
        else:
            assert not np.allclose(after[path], before[path]), path
    check_new_head(pretrained_run, pretrained, demo)
    oxide = pretrained_run.parent / "oxide.xyz"
    atoms = ase.io.read(demo.train_path, index=0)
    atoms.numbers[0] = 8
    ase.io.write(oxide, atoms)
    with pytest.raises(SystemExit, match=r"O \(Z=8\)"):
        main(["train", "--output-dir", str(pretrained_run.parent / "bad"),
              "--init-from", str(pretrained_run / "model.zip"), "--train",
              str(oxide), "--valid", str(oxide)])  # fmt: skip


def check_new_head(pretrained_run, pretrained, demo):
    """``--new-head`` with ``--train-new-head-only`` from the run directory: a
    second head trains on the new data, everything else stays the pretrained
    model's; ``evaluate --head`` selects a head by name."""
    output = pretrained_run.parent / "new_head"
    assert main(["train", "--output-dir", str(output), "--init-from",
                 str(pretrained_run), "--new-head", "compressed",
                 "--train-new-head-only", "--replay", str(demo.train_path),
                 *TINY[:4], "--no-plots"]) == 0  # fmt: skip
    tuned = load_model_from_zip(None, output / "model.zip")
    assert tuned.dataset_info.dataset_names == ("pretrained", "compressed")
    assert tuned.config.num_readout_heads == 2
    before = dict(flatten_with_key_paths(pretrained.params))
    for path, value in flatten_with_key_paths(tuned.params):
        if ".readouts[1]" in path:
            assert not np.allclose(
                value, before[path.replace(".readouts[1]", ".readouts[0]")]
            ), path
        else:
            np.testing.assert_allclose(value, before[path], rtol=1e-6, err_msg=path)
    metrics = {}
    for head in ("pretrained", "compressed"):
        assert main(["evaluate", "--model", str(output / "model.zip"), "--data",
                     str(demo.test_path), "--head", head, "--output-dir",
                     str(output / head), "--no-plots"]) == 0  # fmt: skip
        metrics[head] = json.loads((output / head / "metrics.json").read_text())
    assert metrics["pretrained"]["mae_f"] != metrics["compressed"]["mae_f"]
    with pytest.raises(SystemExit, match="No data set is called 'pbe'"):
        main(["evaluate", "--model", str(output / "model.zip"), "--data",
              str(demo.test_path), "--head", "pbe"])  # fmt: skip


def check_simulate_command(output):
    """``mlip-eqx simulate`` with both engines on a demo cell writes a readable
    trajectory of every snapshot and the plot."""
    demo_cell = ase.io.read(get_demo_dataset(num_structures=24).test_path, index=0)
    for engine, atoms in (("ase", demo_cell), ("jax-md", demo_cell)):
        structure = output / f"cell_{engine}.xyz"
        ase.io.write(structure, atoms)
        trajectory = output / f"md_{engine}.xyz"
        command = ["simulate", "--model", str(output / "model.zip"), "--structure",
                   str(structure), "--steps", "20", "--snapshot-interval", "10",
                   "--temperature", "600", "--engine", engine,
                   "--output", str(trajectory)]  # fmt: skip
        assert main(command) == 0
        frames = ase.io.read(trajectory, index=":")
        assert len(frames) == 3
        np.testing.assert_allclose(frames[0].positions, atoms.positions, atol=1e-6)
        assert not np.allclose(frames[-1].positions, atoms.positions)
        assert trajectory.with_suffix(".png").stat().st_size > 0
    with pytest.raises(SystemExit, match="no such structure file"):
        main(["simulate", "--model", str(output / "model.zip"), "--structure",
              str(output / "missing.xyz")])  # fmt: skip


def check_evaluate_command(output, test_record):
    """``mlip-eqx evaluate`` on the run's test set repeats its test metrics and
    writes the predictions of every structure."""
    demo = get_demo_dataset(num_structures=24)
    assert main(["evaluate", "--model", str(output / "model.zip"), "--data",
                 str(demo.test_path)]) == 0  # fmt: skip
    written = output / "evaluation"
    metrics = json.loads((written / "metrics.json").read_text())
    for name in ("mae_f", "rmse_f", "mae_e", "mae_e_per_atom"):
        assert metrics[name] == pytest.approx(test_record[name], rel=1e-5), name
    frames = ase.io.read(written / "predictions.extxyz", index=":")
    references = ase.io.read(demo.test_path, index=":")
    assert len(frames) == len(references)
    for frame, reference in zip(frames, references):
        np.testing.assert_allclose(frame.positions, reference.positions)
        assert frame.arrays["MLIP_forces"].shape == (len(reference), 3)
        assert np.isfinite(frame.info["MLIP_energy"])
    errors = [frame.info["MLIP_energy"] - frame.info["REF_energy"] for frame in frames]
    assert np.mean(np.abs(errors)) == pytest.approx(metrics["mae_e"], rel=1e-5)
    assert (written / "parity_forces.png").stat().st_size > 0
    unknown = output / "hydrogen.xyz"
    ase.io.write(unknown, ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.8]]))
    with pytest.raises(
        SystemExit, match=r"hydrogen.xyz.*frame 0.*does not know: H \(Z=1\)"
    ):
        main(["evaluate", "--model", str(output / "model.zip"), "--data",
              str(unknown)])  # fmt: skip


def test_config_file_and_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("MLIP_EQX_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "settings.json"
    config.write_text(
        json.dumps(
            {
                "training_loop": {"num_epochs": 3, "eval_num_graphs": 2},
                "model": {"num_channels": 8},
                "optimizer": {"grad_norm": 100.0},
                "plots": False,
            }
        )
    )
    output = tmp_path / "run"
    args = ["train", "--config", str(config), "--output-dir", str(output)]
    assert main(args + TINY[:2] + TINY[4:] + ["--epochs", "1"]) == 0
    settings = json.loads((output / "config.json").read_text())
    assert settings["plots"] is False
    # The flag wins over the file; the file's other fields are kept.
    assert settings["training_loop"] == settings["training_loop"] | {
        "num_epochs": 1,
        "eval_num_graphs": 2,
    }
    assert settings["optimizer"]["grad_norm"] == 100.0
    assert settings["optimizer"]["warmup_steps"] == 0
    assert not (output / "learning_curves.png").exists()


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ({"epoch": 3}, "unknown settings \\['epoch'\\]"),
        ({"training_loop": {"epochs": 3}}, "TrainingLoopConfig: unknown fields"),
        ({"training_loop": {"num_epochs": 0}}, "TrainingLoopConfig.num_epochs"),
        ({"model": {"l_max": -1}}, "MaceConfig.l_max"),
        ({"model_type": "Transformer"}, "model_type.*'Transformer'.*Mace"),
        ({"loss": {"kind": "l1"}}, "LossSettings.kind"),
    ],
)
def test_bad_config_file_names_the_problem(tmp_path, contents, message):
    config = tmp_path / "settings.json"
    config.write_text(json.dumps(contents))
    with pytest.raises(SystemExit, match=message):
        main(["train", "--config", str(config)])


def test_an_earlier_run_is_resumed_or_overwritten_only_when_asked(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("MLIP_EQX_CACHE_DIR", str(tmp_path / "cache"))
    output = tmp_path / "run"
    arguments = ["train", "--output-dir", str(output), "--no-plots", *TINY]
    arguments[arguments.index("--epochs") + 1] = "1"
    assert main(arguments) == 0
    config_before = (output / "config.json").read_text()
    checkpoints_before = sorted(p.name for p in (output / "model").iterdir())

    # A plain rerun would replace the checkpoints: refused, nothing touched.
    with pytest.raises(SystemExit, match="earlier run.*--resume.*--overwrite"):
        main(arguments + ["--seed", "7"])
    assert (output / "config.json").read_text() == config_before
    assert sorted(p.name for p in (output / "model").iterdir()) == checkpoints_before
    with pytest.raises(SystemExit, match="resume and overwrite exclude each other"):
        main(arguments + ["--resume", "--overwrite"])

    # Overwriting starts afresh: one run's records, no leftovers of a killed one.
    (output / ".model.zip.k1ll3d.tmp").write_bytes(b"half a zip")
    assert main(arguments + ["--overwrite", "--logger", "tensorboard"]) == 0
    assert not (output / ".model.zip.k1ll3d.tmp").exists()
    records = [
        json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["category"] for r in records].count("TRAIN_METRICS") == 1
    # --logger: the tracker got the run's records, the same as metrics.jsonl.
    from tests.training.trackers.test_tensorboard_logger import visible_scalars

    train_record = next(r for r in records if r["category"] == "TRAIN_METRICS")
    scalars = visible_scalars(output / "tensorboard")
    assert scalars["train/loss"] == [(1, pytest.approx(train_record["loss"]))]
    assert json.loads((output / "config.json").read_text())["loggers"] == [
        "tensorboard"
    ]
    assert oct((output / "model.zip").stat().st_mode & 0o777) == "0o644"


def test_bad_data_is_a_message_and_writes_nothing(tmp_path):
    data = tmp_path / "bad.xyz"
    data.write_text('2\nLattice="3 0 0 0 3 0 0 0 3"\nCu 0 0 0\nCu 0 0 nan\n')
    output = tmp_path / "run"
    with pytest.raises(SystemExit, match="bad.xyz, frame 0: positions contains NaN"):
        main(["train", "--train", str(data), "--output-dir", str(output)])
    assert not output.exists()


def test_preprocess_then_train_on_the_shards(tmp_path):
    """``mlip-eqx preprocess`` writes the demo set's graphs; ``train
    --preprocessed`` trains on them with the same DatasetInfo as from files."""
    store = tmp_path / "store"
    assert main(["preprocess", "--output-dir", str(store), "--demo-structures",
                 "24", "--shard-size", "5"]) == 0  # fmt: skip
    assert len(list((store / "train").glob("shard_*.h5"))) >= 2
    with pytest.raises(SystemExit, match="already holds a preprocessed"):
        main(["preprocess", "--output-dir", str(store), "--demo-structures", "24"])
    assert main(["preprocess", "--output-dir", str(store), "--demo-structures",
                 "24", "--shard-size", "6", "--overwrite"]) == 0  # fmt: skip
    run = tmp_path / "run"
    assert main(["train", "--output-dir", str(run), "--preprocessed", str(store),
                 *TINY[2:], "--no-plots"]) == 0  # fmt: skip
    stored = json.loads((store / "dataset_info.json").read_text())
    assert json.loads((run / "dataset_info.json").read_text()) == stored
    assert (run / "model.zip").stat().st_size > 0
    with pytest.raises(SystemExit, match="graph_cutoff_angstrom=5.0"):
        main(["train", "--output-dir", str(tmp_path / "bad"), "--preprocessed",
              str(store), "--cutoff", "4.0"])  # fmt: skip
    with pytest.raises(SystemExit, match="not both"):
        main(["train", "--preprocessed", str(store), "--train", "x.xyz"])
