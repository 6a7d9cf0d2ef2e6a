"""MACE trained by mace-torch's ``mace_run_train``: with the settings of the JAX
runs of ``train_vs_peers`` (:func:`train`), or with the MACE paper's protocol of
``published_accuracy`` (:func:`train_protocol`); run in mace-torch's interpreter."""

import importlib.metadata
import json
import shutil
from pathlib import Path

from benchmarks.harness import run_module
from benchmarks.harness.line_stamps import LineStamps
from benchmarks.peers import training


def command_line(options: dict, flags: list[str]) -> list[str]:
    """``flags`` and then ``--name value`` for each of ``options``."""
    command = list(flags)
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    return command


def arguments(work_dir: Path, epochs: int, seed: int) -> list[str]:
    """``mace_run_train``'s command line, matched to the JAX runs."""
    options = {
        "name": "bench",
        "work_dir": work_dir / "mace",
        "seed": seed,
        "train_file": work_dir / "train.extxyz",
        "valid_file": work_dir / "valid.extxyz",
        "energy_key": "REF_energy",
        "forces_key": "REF_forces",
        "E0s": "average",
        "model": "MACE",
        "hidden_irreps": "32x0e+32x1o+32x2e",
        "max_ell": 2,
        "correlation": 3,
        "num_interactions": 2,
        "num_radial_basis": 8,
        "r_max": training.CUTOFF_ANGSTROM,
        "radial_MLP": "[64, 64, 64]",
        "batch_size": training.BATCH_SIZE,
        "valid_batch_size": training.BATCH_SIZE,
        "max_num_epochs": epochs,
        "eval_interval": 1,
        "loss": "weighted",
        "energy_weight": training.ENERGY_WEIGHT,
        "forces_weight": training.FORCES_WEIGHT,
        "optimizer": "adam",
        "lr": training.LEARNING_RATE,
        "weight_decay": 0.0,
        "clip_grad": 500,
        "ema_decay": training.EMA_DECAY,
        "default_dtype": "float32",
        "device": "cpu",
        "num_workers": 0,
        "error_table": "PerAtomMAE",
    }
    return command_line(options, ["--amsgrad", "--ema", "--save_cpu"])


def protocol_arguments(
    settings: dict, files: dict, seed: int, folder: Path
) -> list[str]:
    """``mace_run_train``'s command line for ``published_accuracy``'s shared
    ``settings`` (its ``protocol_settings``) on the split ``files`` (train,
    valid; labels ``REF_energy``/``REF_forces``) with E0s
    ``settings["atomic_energies"]`` ({Z: eV}); see that script's docstring for
    what each option matches."""
    hidden = "+".join(
        f"{settings['num_channels']}x{degree}{'e' if degree % 2 == 0 else 'o'}"
        for degree in range(settings["hidden_l"] + 1)
    )
    e0s = {int(z): energy for z, energy in settings["atomic_energies"].items()}
    options = _run_options(settings, files, folder, seed) | {
        "E0s": repr(e0s),
        "model": "ScaleShiftMACE",  # "MACE" would not shift by the mean energy
        "interaction_first": "RealAgnosticInteractionBlock",
        "interaction": "RealAgnosticResidualInteractionBlock",
        "hidden_irreps": hidden,
        "max_ell": settings["l_max"],
        "correlation": settings["correlation"],
        "num_interactions": settings["num_layers"],
        "num_radial_basis": settings["num_bessel"],
        "num_cutoff_basis": settings["polynomial_cutoff_power"],
        "r_max": settings["cutoff"],
        "radial_MLP": str(list(settings["radial_mlp_hidden"])),
        "MLP_irreps": "16x0e",
        "gate": "silu",
        "scaling": "rms_forces_scaling",
        "weight_decay": settings["weight_decay"],
        "scheduler": "ReduceLROnPlateau",
        "lr_factor": settings["lr_plateau_factor"],
        "scheduler_patience": settings["lr_plateau_patience"],
        "patience": settings["early_stopping_patience"] or settings["epochs"] + 1,
        "clip_grad": settings["grad_norm"],
        "default_dtype": settings["dtype"],
        "error_table": "PerAtomRMSE",
    }
    flags = ["--amsgrad", "--ema", "--save_cpu"]
    if settings["stage_two_epoch"] is not None:
        options |= {
            "start_stage_two": settings["stage_two_epoch"] - 1,  # counts from 0
            "stage_two_energy_weight": settings["stage_two_energy_weight"],
            "stage_two_forces_weight": settings["stage_two_forces_weight"],
            "stage_two_lr": settings["stage_two_learning_rate"],
        }
        flags.append("--stage_two")
    return command_line(options, flags)


def _run_options(settings: dict, files: dict, folder: Path, seed: int) -> dict:
    """``mace_run_train``'s options that every run of the benchmarks shares:
    data (labels ``REF_energy``/``REF_forces``), batch size, epochs, weighted
    loss, Adam (made AMSGrad by the flag) and EMA, on the CPU."""
    return {
        "name": "bench",
        "work_dir": folder,
        "seed": seed,
        "train_file": files["train"],
        "valid_file": files["valid"],
        "energy_key": "REF_energy",
        "forces_key": "REF_forces",
        "batch_size": settings["batch_size"],
        "valid_batch_size": settings["batch_size"],
        "max_num_epochs": settings["epochs"],
        "eval_interval": 1,
        "loss": "weighted",
        "energy_weight": settings["energy_weight"],
        "forces_weight": settings["forces_weight"],
        "optimizer": "adam",
        "lr": settings["learning_rate"],
        "ema_decay": settings["ema_decay"],
        "device": "cpu",
        "num_workers": 0,
        "plot": False,
    }


def read_results(folder: Path) -> tuple[dict[int, float], dict[int, dict]]:
    """The per-epoch sums of the step times (epochs counted from 1) and the
    evaluations by epoch (0: before training) of ``folder/results``."""
    step_times: dict[int, float] = {}
    evaluations: dict[int, dict] = {}
    for path in (folder / "results").glob("*train.txt"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            epoch = entry.get("epoch")
            epoch = 0 if epoch is None else int(epoch) + 1
            if entry.get("mode") == "opt":
                step_times[epoch] = step_times.get(epoch, 0.0) + float(entry["time"])
            elif entry.get("mode") == "eval":
                evaluations[epoch] = entry
    return step_times, evaluations


def _versions(model) -> dict:
    import torch

    return {
        "library": "mace-torch",
        "version": importlib.metadata.version("mace-torch"),
        "torch": torch.__version__,
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
    }


def train(work_dir: str, epochs: int, seed: int) -> dict:
    """Runs ``mace_run_train`` (its ``main``, in this process); epoch times are
    the sums of the per-step times of its results (its DataLoader's collation
    left out), MAEs its own evaluations."""
    import torch

    work_dir = Path(work_dir)
    shutil.rmtree(work_dir / "mace", ignore_errors=True)
    (work_dir / "mace").mkdir(parents=True)
    run_module("mace.cli.run_train", arguments(work_dir, epochs, seed))
    step_times, evaluations = read_results(work_dir / "mace")
    model = torch.load(
        work_dir / "mace" / "bench.model", map_location="cpu", weights_only=False
    )
    epochs = []
    for epoch in sorted(step_times):
        entry = {"epoch": epoch, "train_s": step_times[epoch]}
        if epoch in evaluations:
            entry["valid_mae_f"] = float(evaluations[epoch]["mae_f"])
            entry["valid_mae_e_per_atom"] = float(evaluations[epoch]["mae_e_per_atom"])
        epochs.append(entry)
    return {**_versions(model), "epochs": epochs}


def train_protocol(
    folder: str, settings: dict, files: dict, seed: int, batch_size: int
) -> dict:
    """``published_accuracy``'s mace-torch run in ``folder``: trains with
    :func:`protocol_arguments`, then predicts ``files["test"]`` with mace-torch's
    ``eval_configs`` (batches of ``batch_size``, in the training dtype).

    Returns:
        Versions, the epochs (training seconds: the sum of the step times;
        ``valid_*`` in eV and eV/Å; ``time_s``: seconds since training began
        when the evaluation's line was written), ``train_wall_s``, and the test
        predictions: ``energies`` [structures] eV, ``forces`` [atoms, 3] eV/Å.
    """
    import ase.io
    import numpy as np
    import torch

    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with LineStamps(folder / "results", "*train.txt") as stamps:
        run_module(
            "mace.cli.run_train", protocol_arguments(settings, files, seed, folder)
        )
        train_wall_s = stamps.seconds()
    step_times, evaluations = read_results(folder)
    seen: dict[int, float] = {}
    for seconds, line in stamps.lines:
        entry = json.loads(line)
        if entry.get("mode") == "eval":
            epoch = entry.get("epoch")
            seen[0 if epoch is None else int(epoch) + 1] = seconds
    epochs = [
        {
            "epoch": epoch,
            "train_s": step_times.get(epoch),
            "time_s": seen.get(epoch),
            "valid_mae_f": float(entry["mae_f"]),
            "valid_rmse_f": float(entry["rmse_f"]),
            "valid_rmse_e_per_atom": float(entry["rmse_e_per_atom"]),
        }
        for epoch, entry in sorted(evaluations.items())
    ]
    stage_two = settings["stage_two_epoch"] is not None
    model_path = folder / ("bench_stagetwo.model" if stage_two else "bench.model")
    predictions = folder / "test_predictions.extxyz"
    run_module(
        "mace.cli.eval_configs",
        command_line(
            {
                "configs": files["test"],
                "model": model_path,
                "output": predictions,
                "default_dtype": settings["dtype"],
                "batch_size": batch_size,
                "device": "cpu",
            },
            [],
        ),
    )
    structures = ase.io.read(predictions, index=":")
    model = torch.load(model_path, map_location="cpu", weights_only=False)
    return {
        **_versions(model),
        "epochs": epochs,
        "train_wall_s": train_wall_s,
        "energies": np.array([atoms.info["MACE_energy"] for atoms in structures]),
        "forces": np.concatenate([atoms.arrays["MACE_forces"] for atoms in structures]),
    }


def fine_tune(model_file: str, files: dict, folder: str, settings: dict) -> dict:
    """``mace_run_train --foundation_model`` (naive fine-tuning: one head, no
    replay, E0s averaged from the data as mace-torch's default) with the
    ``settings`` of ``foundation_fine_tuning``, float32 on the CPU; per epoch
    the sum of its step times (as :func:`train`) and the validation force MAE
    (eV/Å)."""
    import torch

    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    options = _run_options(settings, files, folder, seed=0) | {
        "foundation_model": model_file,
        "multiheads_finetuning": False,
        "E0s": "average",
        "weight_decay": 0.0,
        "default_dtype": "float32",
    }
    run_module(
        "mace.cli.run_train",
        command_line(options, ["--amsgrad", "--ema", "--save_cpu"]),
    )
    step_times, evaluations = read_results(folder)
    epochs = []
    for epoch in sorted(step_times):
        entry = {"epoch": epoch, "train_s": step_times[epoch]}
        if epoch in evaluations:
            entry["valid_mae_f"] = float(evaluations[epoch]["mae_f"])
        epochs.append(entry)
    return {
        "library": "mace-torch",
        "version": importlib.metadata.version("mace-torch"),
        "torch": torch.__version__,
        "epochs": epochs,
    }
