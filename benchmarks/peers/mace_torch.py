"""MACE trained by mace-torch's ``mace_run_train`` with the settings of the JAX
runs (see README.md); run in mace-torch's interpreter."""

import importlib.metadata
import json
import shutil
from pathlib import Path

from benchmarks.harness import run_module
from benchmarks.peers import training


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
    command = ["--amsgrad", "--ema", "--save_cpu"]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    return command


def train(work_dir: str, epochs: int, seed: int) -> dict:
    """Runs ``mace_run_train`` (its ``main``, in this process); epoch times are
    the sums of the per-step times of its results (its DataLoader's collation
    left out), MAEs its own evaluations."""
    import torch

    work_dir = Path(work_dir)
    shutil.rmtree(work_dir / "mace", ignore_errors=True)
    (work_dir / "mace").mkdir(parents=True)
    run_module("mace.cli.run_train", arguments(work_dir, epochs, seed))
    step_times: dict[int, float] = {}
    evaluations: dict[int, dict] = {}
    for path in (work_dir / "mace" / "results").glob("*train.txt"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("mode") == "opt":
                epoch = int(entry["epoch"]) + 1
                step_times[epoch] = step_times.get(epoch, 0.0) + float(entry["time"])
            elif entry.get("mode") == "eval" and entry.get("epoch") is not None:
                evaluations[int(entry["epoch"]) + 1] = {
                    "valid_mae_f": float(entry["mae_f"]),
                    "valid_mae_e_per_atom": float(entry["mae_e_per_atom"]),
                }
    model = torch.load(
        work_dir / "mace" / "bench.model", map_location="cpu", weights_only=False
    )
    return {
        "library": "mace-torch",
        "version": importlib.metadata.version("mace-torch"),
        "torch": torch.__version__,
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "epochs": [
            {"epoch": e, "train_s": step_times[e], **evaluations.get(e, {})}
            for e in sorted(step_times)
        ],
    }
