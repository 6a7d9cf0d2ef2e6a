"""Test accuracy on published DFT benchmarks (rMD17 ethanol, 3BPA) with the MACE
paper's protocol: mlip_eqx (its CLI) against mace-torch (``mace_run_train``).

Usage:
    python -m benchmarks.published_accuracy --dataset ethanol|3bpa
        [--data-dir /work/data/botnet] [--model mace|nequip] [--paper]
        [--epochs 100] [--seeds 42 7] [--num-train N] [--num-valid 50]
        [--num-test N] [--dtype float32|float64] [--lr-plateau-patience 50]
        [--lr-plateau-factor 0.8] [--early-stopping-patience N]
        [--stage-two-epoch N] [--mlip-radial-normalisation] [--skip-ours]
        [--skip-mace-torch]
        [--mace-python PYTHON] [--threads 2] [--work-dir /tmp/published_accuracy]
        [--output benchmarks/results/published_accuracy_<dataset>_<model>.json]

Data (not in the repository, nothing is fetched: give the folder of
``davkovacs/BOTNet-datasets``, MIT licence, units eV and Å, labels ``energy`` and
``forces``): ``ethanol``: 950 training and 50 validation structures drawn from
``dataset_ethanol/train.xyz`` (rMD17) with a fixed permutation (seed 0), test on
``dataset_ethanol/test_MD.xyz``, E0s from ``dataset_ethanol/isolated_atoms.xyz``;
``3bpa``: 450 / 50 of ``dataset_3BPA/train_300K.xyz``, test on all of
``dataset_3BPA/train_mixedT.xyz`` (300, 600 and 1200 K: harder and partly out of
distribution; the papers' 300 K test set is not in that repository, so the
published 300 K numbers are a lower bar), E0s from ``dataset_3BPA/iso_atoms.xyz``.
``--num-train``/``--num-valid``/``--num-test`` take fewer (quick runs). The script
writes the splits once per run as extxyz with ``REF_energy``/``REF_forces`` (and
isolated atoms of the training elements only), so that both libraries read the
same files and labels.

Model: ``--model mace`` (CPU-sized default): 64 channels, l_max 2, hidden irreps
L=1 (``64x0e+64x1o``), correlation 3, 2 layers, 8 Bessel functions, polynomial
envelope p=5, radial MLP [64, 64, 64], readout MLP 16x0e, SiLU, cutoff 5 Å;
``--paper``: the paper's 256 channels, l_max 3, L=2 (for a GPU). ``--num-channels``,
``--l-max``, ``--hidden-l``, ``--correlation``, ``--num-layers`` override them.
``--model nequip`` (mlip_eqx only: mace-torch has no NequIP): node irreps
``--nequip-irreps`` (default 32x0e + 32x0o + 16x1o + 16x1e + 8x2e + 8x2o), l_max 2,
3 layers, 8 Bessel functions, cutoff 5 Å.

Protocol (MACE paper, appendix A.5.1), the same in both libraries: MSE loss of the
energy per atom (weight 1) and the force components (weight 1000); AMSGrad (β 0.9,
0.999, ε 1e-8), lr 0.01, batch 5 (validation batch 5), weight decay 5e-7 (L2 added
to the gradient, on the interactions' linear weights and the products), gradient
norm clipped at 10 (mace-torch's default), lr × 0.8 after
``--lr-plateau-patience`` (default 50) evaluations without a lower validation loss,
one evaluation per epoch, EMA 0.99 (evaluation and the saved model with the EMA
parameters), E0s from the isolated atoms, shift = mean per-atom energy after the
E0s and scale = RMS of the force components (ours: ``energy_scaling rms_forces``;
mace-torch: ``ScaleShiftMACE`` with ``rms_forces_scaling``; its ``--model MACE``
would not shift), average number of neighbours from the training set; optional
second stage from ``--stage-two-epoch`` (energy weight 1000, forces 100, lr 1e-3);
``--dtype`` (float32 default; the paper trained 3BPA in float64); the seed
(``--seeds``) of the weights and of the shuffling.

Field by field (mlip_eqx CLI flag = mace-torch ``mace_run_train`` option):
``--num-channels C --model.node-symmetry L`` = ``--hidden_irreps Cx0e+Cx1o(+Cx2e)``;
``--l-max`` = ``--max_ell``; ``--correlation``; ``--num-layers`` =
``--num_interactions``; ``--model.num-bessel`` = ``--num_radial_basis``;
``--model.polynomial-cutoff-power`` = ``--num_cutoff_basis``;
``--no-model.normalise-radial-embedding`` = mace-torch's unscaled radial
embedding (``--mlip-radial-normalisation`` keeps mlip's, x5.5 here); ``--cutoff`` =
``--r_max``; ``--model.radial-mlp-hidden`` = ``--radial_MLP``; our readout
``16x0e 0e`` and SiLU = ``--MLP_irreps 16x0e --gate silu``; our first layer
without residual (``first_layer_residual`` False) = ``--interaction_first
RealAgnosticInteractionBlock``, later layers residual = ``--interaction
RealAgnosticResidualInteractionBlock``; ``--graph-dataset.energy-scaling rms_forces``
= ``--model ScaleShiftMACE --scaling rms_forces_scaling``; ``--isolated-atoms
FILE`` = ``--E0s {Z: eV}`` (read from the same file); ``--energy-weight
--forces-weight`` = ``--loss weighted --energy_weight --forces_weight``;
``--learning-rate`` = ``--lr``; the default AMSGrad = ``--optimizer adam
--amsgrad``; ``--optimizer.weight-decay`` = ``--weight_decay``;
``--optimizer.grad-norm`` = ``--clip_grad``; ``--ema-decay`` = ``--ema
--ema_decay``; ``--lr-plateau-patience/-factor`` = ``--scheduler ReduceLROnPlateau
--scheduler_patience --lr_factor``; ``--early-stopping-patience`` = ``--patience``
(else the number of epochs + 1); ``--stage-two-epoch N`` = ``--stage_two
--start_stage_two N-1`` (mace-torch counts epochs from 0) with the stage-two
weights and ``--stage_two_lr``; ``--dtype`` = ``--default_dtype``; ``--seed S
--graph-dataset.shuffle-seed S`` = ``--seed S``; ``--batch-size`` = ``--batch_size
--valid_batch_size``; ``--epochs`` = ``--max_num_epochs --eval_interval 1``.

Remaining differences (known; none is a setting either library exposes to match):
- The plateau: mace-torch's ``ReduceLROnPlateau`` lowers the rate on the
  (patience + 1)-th evaluation without an improvement of more than 1e-4 relative
  (torch's threshold) and has no minimum; ours on the patience-th evaluation
  without any new lowest loss, never below 1e-6.
- The second stage: mace-torch anneals the rate linearly to ``stage_two_lr`` over
  one epoch (``SWALR``) and stops the plateau scheduler; ours switches to the
  stage-two rate at once and keeps reducing it on plateaus.
- EMA: torch-ema warms its decay up as min(0.99, (1 + n) / (10 + n)); ours is the
  bias-corrected EMA of a fixed decay.
- Weight decay: the same L2 term (added to the gradient), but ours adds it before
  the gradient clipping, mace-torch after; the parameter sets match in kind (MACE's
  interaction linear maps and symmetric contractions) but are each library's own.
- The forces' loss: mace-torch averages the squared components over the batch's
  atoms, ours per structure and then over structures: the same for these data
  sets (one molecule per data set, all structures of equal size).
- Initial weights and the shuffling order come from different random number
  generators: a seed gives each library a different draw (hence several seeds).
- The model tested: mace-torch's best stage's model (``bench.model``, or
  ``bench_stagetwo.model`` with a second stage), ours the ``model.zip`` of the run
  (its best model, of the second stage if there is one).

Outputs: per library and seed, the test errors (energy MAE/RMSE per structure in
meV and per atom in meV/atom; force-component MAE/RMSE in meV/Å), all computed by
:func:`test_errors` from the predictions that each library makes of the test file
(ours with ``mlip-eqx evaluate``, mace-torch's with its ``eval_configs``);
seconds per epoch (training pass only, the median of the epochs after the first)
and wall time; the medians over the seeds next to the published numbers; the
validation force RMSE after each epoch against the wall-clock seconds since the
training began (time-to-accuracy) plotted to a PNG next to the JSON. Each library
trains in its own child process, one after the other (seed by seed), never at the
same time.
"""

import argparse
import dataclasses
import json
import shutil
import statistics
from pathlib import Path

import numpy as np

from benchmarks.harness import (
    argument_parser,
    print_rows,
    run_in_child,
    run_module,
    write_record,
)
from benchmarks.harness.line_stamps import LineStamps
from benchmarks.peers import mace_torch
from benchmarks.train_vs_peers import THREAD_VARIABLES

SPLIT_SEED = 0
EVAL_BATCH_SIZE = 16


@dataclasses.dataclass(frozen=True)
class DataSet:
    """A published benchmark's files (relative to ``--data-dir``) and split."""

    folder: str
    train: str
    test: str
    isolated_atoms: str
    num_train: int
    num_valid: int
    published: dict  # model -> (energy, forces) in meV, meV/Å
    published_metric: str  # "mae" or "rmse"
    reference: str


DATASETS = {
    "ethanol": DataSet(
        "dataset_ethanol",
        "train.xyz",
        "test_MD.xyz",
        "isolated_atoms.xyz",
        950,
        50,
        {
            "MACE": (0.4, 2.1),
            "Allegro": (0.4, 2.1),
            "NequIP": (0.4, 2.8),
            "BOTNet": (0.4, 3.2),
        },
        "mae",
        "rMD17 ethanol, MACE paper Table 1 (950 training structures)",
    ),
    "3bpa": DataSet(
        "dataset_3BPA",
        "train_300K.xyz",
        "train_mixedT.xyz",
        "iso_atoms.xyz",
        450,
        50,
        {"MACE": (3.0, 8.8), "NequIP": (3.3, 10.8)},
        "rmse",
        "3BPA test at 300 K, MACE paper Table 2 (ours: the mixed-T file)",
    ),
}

MODELS = {  # channels, l_max, hidden L, correlation, layers
    "cpu": {
        "num_channels": 64,
        "l_max": 2,
        "hidden_l": 1,
        "correlation": 3,
        "num_layers": 2,
    },
    "paper": {
        "num_channels": 256,
        "l_max": 3,
        "hidden_l": 2,
        "correlation": 3,
        "num_layers": 2,
    },
}
NEQUIP = {
    "nequip_irreps": "32x0e + 32x0o + 16x1o + 16x1e + 8x2e + 8x2o",
    "l_max": 2,
    "num_layers": 3,
}


def _labelled(atoms, energy_key: str, forces_key: str):
    """A copy of ``atoms`` with its labels as ``REF_energy``/``REF_forces`` only."""
    from ase.calculators.calculator import PropertyNotImplementedError

    def label(name: str, key: str, info: bool):
        source = atoms.info if info else atoms.arrays
        if key in source:
            return source[key]
        try:  # ase moves "energy"/"forces" into a SinglePointCalculator
            return atoms.calc.get_property(name, atoms) if atoms.calc else None
        except PropertyNotImplementedError:
            return None

    copy = atoms.copy()
    copy.calc = None
    for key in (energy_key, "energy"):
        copy.info.pop(key, None)
    for key in (forces_key, "forces"):
        copy.arrays.pop(key, None)
    energy = label("energy", energy_key, info=True)
    if energy is None:
        raise ValueError(f"a structure has no energy {energy_key!r}: {atoms}")
    copy.info["REF_energy"] = float(energy)
    forces = label("forces", forces_key, info=False)
    if forces is not None:
        copy.arrays["REF_forces"] = np.asarray(forces, dtype=float)
    return copy


def prepare_data(args) -> dict:
    """Writes the split (train, valid, test, isolated atoms) to ``args.work_dir``
    and returns the paths, sizes and E0s {Z: eV} of the training elements."""
    import ase.io

    dataset = DATASETS[args.dataset]
    folder = args.data_dir / dataset.folder
    paths = {
        name: folder / getattr(dataset, name)
        for name in ("train", "test", "isolated_atoms")
    }
    for path in paths.values():
        if not path.is_file():
            raise SystemExit(
                f"{path} does not exist: give --data-dir, the folder of "
                "davkovacs/BOTNet-datasets (unpacked)"
            )

    def read(path: Path) -> list:
        return [
            _labelled(atoms, args.energy_key, args.forces_key)
            for atoms in ase.io.read(path, index=":")
        ]

    pool = read(paths["train"])
    num_train = args.num_train or dataset.num_train
    if num_train + args.num_valid > len(pool):
        raise SystemExit(
            f"{paths['train']} has {len(pool)} structures, fewer than "
            f"{num_train} + {args.num_valid}"
        )
    order = np.random.default_rng(SPLIT_SEED).permutation(len(pool))
    test = read(paths["test"])[: args.num_test]
    splits = {
        "train": [pool[i] for i in order[:num_train]],
        "valid": [pool[i] for i in order[num_train : num_train + args.num_valid]],
        "test": test,
    }
    elements = {int(z) for atoms in splits["train"] for z in atoms.numbers}
    isolated = [
        atoms
        for atoms in read(paths["isolated_atoms"])
        if len(atoms) == 1 and int(atoms.numbers[0]) in elements
    ]
    missing = elements - {int(atoms.numbers[0]) for atoms in isolated}
    if missing:
        raise SystemExit(f"{paths['isolated_atoms']} lacks elements {sorted(missing)}")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, structures in [*splits.items(), ("isolated_atoms", isolated)]:
        files[name] = args.work_dir / f"{name}.extxyz"
        ase.io.write(files[name], structures, format="extxyz")
    return {
        "files": {name: str(path) for name, path in files.items()},
        "sources": {name: str(path) for name, path in paths.items()},
        "sizes": {
            name: {
                "structures": len(structures),
                "atoms": int(sum(len(atoms) for atoms in structures)),
            }
            for name, structures in splits.items()
        },
        "atomic_energies": {
            int(atoms.numbers[0]): float(atoms.info["REF_energy"]) for atoms in isolated
        },
    }


def protocol_settings(args, data: dict) -> dict:
    """The settings that both libraries get (JSON values)."""
    model = dict(MODELS["paper" if args.paper else "cpu"])
    if args.model == "nequip":
        model = {**model, **NEQUIP}
    for name in ("num_channels", "l_max", "hidden_l", "correlation", "num_layers"):
        if getattr(args, name) is not None:
            model[name] = getattr(args, name)
    if args.nequip_irreps is not None:
        model["nequip_irreps"] = args.nequip_irreps
    return {
        "model": args.model,
        **model,
        "num_bessel": 8,
        "polynomial_cutoff_power": 5,
        "cutoff": 5.0,
        "radial_mlp_hidden": [64, 64, 64],
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "learning_rate": 0.01,
        "energy_weight": 1.0,
        "forces_weight": 1000.0,
        "weight_decay": 5e-7,
        "grad_norm": 10.0,
        "ema_decay": 0.99,
        "lr_plateau_patience": args.lr_plateau_patience,
        "lr_plateau_factor": args.lr_plateau_factor,
        "early_stopping_patience": args.early_stopping_patience,
        "stage_two_epoch": args.stage_two_epoch,
        "stage_two_energy_weight": 1000.0,
        "stage_two_forces_weight": 100.0,
        "stage_two_learning_rate": 1e-3,
        "dtype": args.dtype,
        "atomic_energies": data["atomic_energies"],
        "normalise_radial_embedding": args.mlip_radial_normalisation,
    }


def our_arguments(settings: dict, files: dict, seed: int, folder: Path) -> list[str]:
    """``mlip-eqx train``'s command line for ``settings`` (see the docstring)."""
    options = {
        "train": files["train"],
        "valid": files["valid"],
        "energy-key": "REF_energy",
        "forces-key": "REF_forces",
        "isolated-atoms": files["isolated_atoms"],
        "graph-dataset.energy-scaling": "rms_forces",
        "model": settings["model"],
        "l-max": settings["l_max"],
        "num-layers": settings["num_layers"],
        "model.num-bessel": settings["num_bessel"],
        "cutoff": settings["cutoff"],
        "batch-size": settings["batch_size"],
        "epochs": settings["epochs"],
        "loss": "mse",
        "energy-weight": settings["energy_weight"],
        "forces-weight": settings["forces_weight"],
        "learning-rate": settings["learning_rate"],
        "optimizer.weight-decay": settings["weight_decay"],
        "optimizer.grad-norm": settings["grad_norm"],
        "ema-decay": settings["ema_decay"],
        "lr-plateau-patience": settings["lr_plateau_patience"],
        "lr-plateau-factor": settings["lr_plateau_factor"],
        "seed": seed,
        "graph-dataset.shuffle-seed": seed,
        "dtype": settings["dtype"],
        "output-dir": folder,
    }
    if settings["model"] == "mace":
        options |= {
            "num-channels": settings["num_channels"],
            "model.node-symmetry": settings["hidden_l"],
            "correlation": settings["correlation"],
            "model.polynomial-cutoff-power": settings["polynomial_cutoff_power"],
        }
    else:
        options["model.node-irreps"] = settings["nequip_irreps"]
    if settings["early_stopping_patience"] is not None:
        options["early-stopping-patience"] = settings["early_stopping_patience"]
    if settings["stage_two_epoch"] is not None:
        options |= {
            "stage-two-epoch": settings["stage_two_epoch"],
            "stage-two-energy-weight": settings["stage_two_energy_weight"],
            "stage-two-forces-weight": settings["stage_two_forces_weight"],
            "stage-two-learning-rate": settings["stage_two_learning_rate"],
        }
    switches = ["--no-plots", "--overwrite"]
    if settings["model"] == "mace" and not settings["normalise_radial_embedding"]:
        switches.append("--no-model.normalise-radial-embedding")
    command = mace_torch.command_line(options, switches)
    if settings["model"] == "mace":
        command += [
            "--model.radial-mlp-hidden",
            *map(str, settings["radial_mlp_hidden"]),
        ]
    return command


def train_ours(folder: str, settings: dict, files: dict, seed: int) -> dict:
    """In a child: ``mlip-eqx train`` (its ``main``, in this process), then
    ``mlip-eqx evaluate`` of the test file; the same record as
    :func:`benchmarks.peers.mace_torch.train_protocol`."""
    import importlib.metadata

    import ase.io
    import jax

    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with LineStamps(folder, "metrics.jsonl") as stamps:
        run_module(
            "mlip_eqx.cli", ["train", *our_arguments(settings, files, seed, folder)]
        )
        train_wall_s = stamps.seconds()
    epochs: dict[int, dict] = {}
    for seconds, line in stamps.lines:
        record = json.loads(line)
        entry = epochs.setdefault(int(record["epoch"]), {"epoch": int(record["epoch"])})
        if record["category"] == "TRAIN_METRICS":
            entry["train_s"] = float(record["runtime_in_seconds"])
        elif record["category"] == "EVAL_METRICS":
            entry |= {
                "time_s": seconds,
                "valid_mae_f": float(record["mae_f"]),
                "valid_rmse_f": float(record["rmse_f"]),
                "valid_rmse_e_per_atom": float(record["rmse_e_per_atom"]),
            }
    evaluation = folder / "evaluation"
    run_module(
        "mlip_eqx.cli",
        [
            "evaluate",
            "--model",
            str(folder / "model.zip"),
            "--data",
            files["test"],
            "--output-dir",
            str(evaluation),
            "--batch-size",
            str(EVAL_BATCH_SIZE),
            "--no-plots",
        ],
    )
    structures = ase.io.read(evaluation / "predictions.extxyz", index=":")
    return {
        "library": "mlip_eqx",
        "version": importlib.metadata.version("mlip-eqx"),
        "jax": jax.__version__,
        "epochs": [epochs[e] for e in sorted(epochs)],
        "train_wall_s": train_wall_s,
        "energies": np.array([atoms.info["MLIP_energy"] for atoms in structures]),
        "forces": np.concatenate([atoms.arrays["MLIP_forces"] for atoms in structures]),
    }


def test_errors(test_file: Path, energies: np.ndarray, forces: np.ndarray) -> dict:
    """The one definition of the test errors of both libraries: predicted
    ``energies`` [structures] eV and ``forces`` [atoms, 3] eV/Å against the
    labels of ``test_file``; energy MAE/RMSE per structure (meV) and per atom
    (meV/atom), force MAE/RMSE over all components (meV/Å)."""
    import ase.io

    structures = ase.io.read(test_file, index=":")
    reference_energies = np.array([atoms.info["REF_energy"] for atoms in structures])
    reference_forces = np.concatenate(
        [atoms.arrays["REF_forces"] for atoms in structures]
    )
    atoms_per_structure = np.array([len(atoms) for atoms in structures])
    if (
        energies.shape != reference_energies.shape
        or forces.shape != reference_forces.shape
    ):
        raise ValueError(
            f"predictions of shapes {energies.shape}, {forces.shape} for "
            f"{len(structures)} structures of {len(reference_forces)} atoms"
        )
    energy_errors = 1000 * (np.asarray(energies, float) - reference_energies)
    force_errors = 1000 * (np.asarray(forces, float) - reference_forces)
    per_atom = energy_errors / atoms_per_structure

    def mae_rmse(errors: np.ndarray) -> tuple[float, float]:
        return float(np.mean(np.abs(errors))), float(np.sqrt(np.mean(errors**2)))

    e_mae, e_rmse = mae_rmse(energy_errors)
    ea_mae, ea_rmse = mae_rmse(per_atom)
    f_mae, f_rmse = mae_rmse(force_errors)
    return {
        "energy_mae_meV": e_mae,
        "energy_rmse_meV": e_rmse,
        "energy_mae_meV_per_atom": ea_mae,
        "energy_rmse_meV_per_atom": ea_rmse,
        "forces_mae_meV_per_A": f_mae,
        "forces_rmse_meV_per_A": f_rmse,
        "mean_energy_error_meV": float(np.mean(energy_errors)),
    }


def run_library(library: str, args, settings: dict, data: dict, seed: int) -> dict:
    """One training run of ``library`` in its child, with its test errors."""
    environment = {name: str(args.threads) for name in THREAD_VARIABLES}
    folder = args.work_dir / f"{library}_seed{seed}"
    log = args.work_dir / f"{library}_seed{seed}.log"
    print(f"training {library} (seed {seed}); log: {log}", flush=True)
    if library == "mlip_eqx":
        child = run_in_child(
            train_ours,
            folder,
            settings,
            data["files"],
            seed,
            environment=environment,
            log=log,
        )
    else:
        child = run_in_child(
            mace_torch.train_protocol,
            folder,
            settings,
            data["files"],
            seed,
            EVAL_BATCH_SIZE,
            python=args.mace_python,
            environment=environment,
            log=log,
        )
    value = dict(child.value)
    errors = test_errors(
        Path(data["files"]["test"]), value.pop("energies"), value.pop("forces")
    )
    later = [
        e["train_s"] for e in value["epochs"] if e["epoch"] > 1 and e.get("train_s")
    ]
    first = [e["train_s"] for e in value["epochs"] if e["epoch"] == 1]
    return {
        **value,
        "seed": seed,
        "test": errors,
        "s_per_epoch": statistics.median(later or first or [float("nan")]),
        "wall_s": child.wall_s,
        "peak_rss_mib": child.peak_rss_mib,
    }


def summarise(runs: list[dict]) -> dict:
    """A library's runs in one row: medians over the seeds."""
    row = {"library": runs[0]["library"], "seeds": len(runs)}
    for key in runs[0]["test"]:
        row[key] = statistics.median(run["test"][key] for run in runs)
    for key in ("s_per_epoch", "train_wall_s", "wall_s", "peak_rss_mib"):
        row[key] = statistics.median(run[key] for run in runs)
    return row


def print_results(dataset: DataSet, rows: list[dict], runs: dict) -> None:
    """The test errors (medians of the seeds) next to the published numbers."""
    metric = dataset.published_metric
    columns = [
        ("", "library", 0),
        ("seeds", "seeds", 0),
        ("E MAE meV", "energy_mae_meV", 2),
        ("E RMSE meV", "energy_rmse_meV", 2),
        ("E MAE meV/at", "energy_mae_meV_per_atom", 3),
        ("E RMSE meV/at", "energy_rmse_meV_per_atom", 3),
        ("F MAE meV/Å", "forces_mae_meV_per_A", 2),
        ("F RMSE meV/Å", "forces_rmse_meV_per_A", 2),
        ("s/epoch", "s_per_epoch", 2),
        ("train wall s", "train_wall_s", 1),
    ]
    published = [
        {
            "library": f"{name} (published)",
            f"energy_{metric}_meV": energy,
            f"forces_{metric}_meV_per_A": forces,
        }
        for name, (energy, forces) in dataset.published.items()
    ]
    print(f"\ntest errors, medians over seeds; published: {dataset.reference}")
    print_rows([*rows, *published], columns)
    print(
        "\nper seed: test F RMSE meV/Å | E RMSE meV | s/epoch | valid F RMSE per epoch"
    )
    for library, library_runs in runs.items():
        for run in library_runs:
            curve = ", ".join(
                f"{1000 * e['valid_rmse_f']:.1f}"
                for e in run["epochs"]
                if "valid_rmse_f" in e
            )
            print(
                f"  {library:10s} seed {run['seed']:3d}: "
                f"{run['test']['forces_rmse_meV_per_A']:8.2f} | "
                f"{run['test']['energy_rmse_meV']:8.2f} | {run['s_per_epoch']:6.2f} | "
                f"{curve}"
            )


def plot_time_to_accuracy(runs: dict, path: Path, title: str) -> None:
    """Validation force RMSE after each evaluation against the seconds since the
    training began, one line per library and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for index, (library, library_runs) in enumerate(runs.items()):
        for run in library_runs:
            points = [
                (e["time_s"], 1000 * e["valid_rmse_f"])
                for e in run["epochs"]
                if e.get("time_s") is not None and "valid_rmse_f" in e
            ]
            if points:
                axes.plot(
                    *zip(*points),
                    marker=".",
                    color=f"C{index}",
                    label=f"{library} (seed {run['seed']})",
                )
    axes.set(
        xlabel="wall-clock s since training began",
        ylabel="validation force RMSE (meV/Å)",
        yscale="log",
        title=title,
    )
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    print(f"wrote {path}")


def parse_arguments() -> argparse.Namespace:
    parser = argument_parser(
        __doc__, "published_accuracy", work_dir="/tmp/published_accuracy"
    )
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("/work/data/botnet"))
    parser.add_argument("--energy-key", default="energy", help="of the data files")
    parser.add_argument("--forces-key", default="forces", help="of the data files")
    parser.add_argument("--model", choices=("mace", "nequip"), default="mace")
    parser.add_argument(
        "--paper",
        action="store_true",
        help="the paper's MACE (256 channels, l_max 3, L=2): a GPU's",
    )
    for name in ("num-channels", "l-max", "hidden-l", "correlation", "num-layers"):
        parser.add_argument(f"--{name}", type=int, help="override the model's")
    parser.add_argument("--nequip-irreps", help="override NequIP's node irreps")
    parser.add_argument("--num-train", type=int, help="default: 950 / 450")
    parser.add_argument("--num-valid", type=int, default=50)
    parser.add_argument("--num-test", type=int, help="default: the whole test file")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--lr-plateau-patience", type=int, default=50)
    parser.add_argument("--lr-plateau-factor", type=float, default=0.8)
    parser.add_argument("--early-stopping-patience", type=int)
    parser.add_argument(
        "--stage-two-epoch", type=int, help="first epoch (from 1) of the second stage"
    )
    parser.add_argument(
        "--mlip-radial-normalisation",
        action="store_true",
        help="ours with mlip's radial normalisation (x5.5 radial embedding), "
        "not mace-torch's unscaled one",
    )
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--skip-mace-torch", action="store_true")
    parser.add_argument(
        "--mace-python", help="interpreter with mace-torch (default: this)"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.output == parser.get_default("output"):
        args.output = args.output.with_name(
            f"published_accuracy_{args.dataset}_{args.model}.json"
        )
    return args


def main() -> None:
    args = parse_arguments()
    data = prepare_data(args)
    settings = protocol_settings(args, data)
    libraries = [
        library
        for library, wanted in (
            ("mlip_eqx", not args.skip_ours),
            ("mace-torch", not args.skip_mace_torch and args.model == "mace"),
        )
        if wanted
    ]
    runs: dict[str, list[dict]] = {library: [] for library in libraries}
    for seed in args.seeds:  # one run at a time, never two at once
        for library in libraries:
            runs[library].append(run_library(library, args, settings, data, seed))
    rows = [summarise(library_runs) for library_runs in runs.values()]
    dataset = DATASETS[args.dataset]
    print_results(dataset, rows, runs)
    plot_time_to_accuracy(
        runs,
        args.output.with_suffix(".png"),
        f"{args.dataset}, {args.model}: validation forces",
    )
    write_record(
        args.output,
        {
            "dataset": args.dataset,
            "data": {k: data[k] for k in ("sources", "sizes")},
            "settings": settings,
            "seeds": args.seeds,
            "threads": args.threads,
            "statistic": "test errors: medians over seeds; s/epoch: median of the "
            "epochs after the first (training pass only)",
            "published": {
                "reference": dataset.reference,
                "metric": dataset.published_metric,
                "values_meV_meV_per_A": dataset.published,
            },
            "summary": rows,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
