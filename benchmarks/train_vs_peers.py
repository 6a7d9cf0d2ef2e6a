"""Training speed and accuracy of MACE, NequIP or ViSNet: mlip_eqx against mlip
and mace-torch.

Usage:
    python benchmarks/train_vs_peers.py [--epochs 3] [--model mace|nequip|visnet]
        [--mlip-python /tmp/peer_mlip/bin/python]
        [--mace-python /tmp/peer_mace/bin/python]
        [--work-dir /tmp/train_vs_peers] [--threads 2] [--seeds 42 7 1] [--skip-ours]
        [--peer-host-memory]
        [--output benchmarks/results/train_vs_peers.json]

Data: 1000 EMT-labelled 32-atom fcc Cu/Ag/Au/Ni cells from our demo generator
(seed 0), split 800 train / 100 validation / 100 test (test unused), written as
extxyz with both ``REF_energy``/``REF_forces`` and calculator ``energy``/``forces``
so that every library reads the same labels. Model: MACE, 32 channels, l_max 2,
correlation 3, 2 layers, 8 Bessel functions, cutoff 5 Å, or (``--model nequip``,
against mlip only: its ``models_v1.Nequip``) NequIP with node irreps 32x0e +
32x0o + 16x1o + 16x1e, l_max 2, 2 layers, 8 Bessel functions, or (``--model
visnet``, against mlip only: its ``models.Visnet`` with ``use_legacy_visnet=False``)
ViSNet with 64 channels, 2 layers and the other defaults (l_max 2, 8 heads, 32
exp-normal functions); batch size 8, float32,
MSE loss with energy weight 1 and forces weight 25, AMSGrad at lr 0.01 without
warm-up, EMA 0.99 (validation with the EMA parameters).

Each library trains in its own child process (its own interpreter for the peers:
mlip through its public Python API, i.e. this file run as a script there;
mace-torch through its ``mace_run_train`` command line). Epoch time is the training
pass only (no validation); seconds per epoch are the median over the epochs after
the first; the first epoch includes compilation. Peak memory is the child's maximum
resident set size. Validation MAEs are each library's own numbers after each epoch.
With several ``--seeds`` (weights' seeds, used by every library) each library trains
once per seed: seconds per epoch are then the median over all seeds' epochs after the
first, and MAEs are the mean over seeds (each seed's are listed too). Prints a table
and writes JSON. See benchmarks/README.md for the peers' setup.

``import mlip_eqx`` makes one CPU step's memory serve the next
(``mlip_eqx/utils/host_memory.py``); mlip runs with glibc's and JAX's defaults, or
with ``--peer-host-memory`` with the same settings as mlip_eqx.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import write_record

NUM_STRUCTURES, SEED = 1000, 0  # 800 train / 100 validation / 100 test
BATCH_SIZE = 8
CUTOFF_ANGSTROM = 5.0
LEARNING_RATE = 0.01
ENERGY_WEIGHT, FORCES_WEIGHT = 1.0, 25.0
EMA_DECAY = 0.99
MODEL_SEED = 42


# --------------------------------------------------------------------------- data
def prepare_data(work_dir: Path) -> dict:
    """Writes train/valid extxyz files for all libraries; returns their sizes."""
    import ase.io
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator

    from mlip_eqx.data.demo import get_demo_dataset

    demo = get_demo_dataset(
        num_structures=NUM_STRUCTURES,
        seed=SEED,
        validation_fraction=0.1,
        test_fraction=0.1,
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, source in (("train", demo.train_path), ("valid", demo.validation_path)):
        path = work_dir / f"{name}.extxyz"
        structures = ase.io.read(source, index=":")
        for atoms in structures:
            atoms.info.pop("REF_stress", None)
            atoms.calc = SinglePointCalculator(
                atoms,
                energy=float(atoms.info["REF_energy"]),
                forces=np.array(atoms.arrays["REF_forces"]),
            )
        if not path.is_file():
            ase.io.write(path, structures, format="extxyz")
        sizes[name] = {
            "path": str(path),
            "structures": len(structures),
            "atoms": int(sum(len(atoms) for atoms in structures)),
        }
    return sizes


# ------------------------------------------------------------- JAX libraries (child)
def network(package: str, model: str, dataset_info, new_api: bool):
    """The benchmarked network of ``package``: MACE (see the module docstring),
    NequIP (32x0e + 32x0o + 16x1o + 16x1e, l_max 2, 2 layers, 8 Bessel
    functions; mlip's ``models_v1.Nequip``, the architecture ours follows) or
    ViSNet (64 channels, 2 layers; mlip's non-legacy ``models.Visnet``)."""
    import importlib

    models = importlib.import_module(f"{package}.models")
    if model == "visnet":
        mlip_only = {"use_legacy_visnet": False} if package == "mlip" else {}
        return models.Visnet(
            models.Visnet.Config(num_channels=64, num_layers=2, **mlip_only),
            dataset_info,
        )
    if model == "mace":
        radial_basis = {"num_rbf" if new_api else "num_bessel": 8}
        return models.Mace(
            models.Mace.Config(
                num_channels=32, l_max=2, correlation=3, num_layers=2, **radial_basis
            ),
            dataset_info,
        )
    nequip_class = (
        importlib.import_module("mlip.models_v1").Nequip
        if package == "mlip"
        else models.Nequip
    )
    return nequip_class(
        nequip_class.Config(
            num_layers=2,
            node_irreps="32x0e + 32x0o + 16x1o + 16x1e",
            l_max=2,
            num_bessel=8,
        ),
        dataset_info,
    )


def loss_and_optimizer(package: str) -> tuple:
    """The benchmark's loss (MSE, energy weight 1, forces 25, stress 0) and
    optimizer (the default MLIP optimizer at a constant lr 0.01, no warm-up) of
    ``package`` ("mlip_eqx" or "mlip")."""
    import importlib

    import optax

    loss_module = importlib.import_module(f"{package}.models.loss")
    training = importlib.import_module(f"{package}.training")
    loss = loss_module.MSELoss(
        optax.constant_schedule(ENERGY_WEIGHT),
        optax.constant_schedule(FORCES_WEIGHT),
        optax.constant_schedule(0.0),
    )
    optimizer = training.get_default_mlip_optimizer(
        training.OptimizerConfig(
            init_learning_rate=LEARNING_RATE,
            peak_learning_rate=LEARNING_RATE,
            final_learning_rate=LEARNING_RATE,
            warmup_steps=0,
        )
    )
    return loss, optimizer


def mlip_nequip(work_dir: Path, seed: int) -> tuple:
    """In mlip's interpreter: mlip's data set builder of the train and validation
    files (datasets built), its data sets, and its NequIP force field (the 0.1
    network through ``ForceFieldPredictorV1``) with the initial weights of
    ``seed``."""
    import mlip.models
    import mlip.models_v1
    import mlip.typing.properties
    from mlip.data import ExtxyzReader, GraphDatasetBuilder

    builder = GraphDatasetBuilder(
        {
            "train": ExtxyzReader(str(work_dir / "train.extxyz")),
            "valid": ExtxyzReader(str(work_dir / "valid.extxyz")),
        },
        GraphDatasetBuilder.Config(
            graph_cutoff_angstrom=CUTOFF_ANGSTROM, batch_size=BATCH_SIZE
        ),
    )
    datasets = builder.get_datasets()
    predictor = mlip.models_v1.ForceFieldPredictorV1(
        mlip_network=network("mlip", "nequip", builder.dataset_info, True),
        required_properties=mlip.typing.properties.Properties(),
    )
    return builder, datasets, mlip.models.ForceField.init(predictor, seed=seed)


def train_jax_library(
    package: str, work_dir: Path, epochs: int, seed: int = MODEL_SEED, model="mace"
) -> dict:
    """Trains with ``package`` ("mlip_eqx" or "mlip") through its public API.

    The two packages share the training API (the training guide), so one function
    serves both; only the import prefix differs.
    """
    import dataclasses
    import importlib
    import importlib.metadata

    import jax

    def module(name: str):
        return importlib.import_module(f"{package}.{name}")

    data = module("data")
    models = module("models")
    training = module("training")

    # mlip 0.2: one reader per split, num_rbf, a mesh instead of should_parallelize
    new_api = not hasattr(data.ExtxyzReader, "Config")
    config = data.GraphDatasetBuilder.Config(
        graph_cutoff_angstrom=CUTOFF_ANGSTROM, batch_size=BATCH_SIZE
    )
    start = time.perf_counter()
    if new_api:
        builder = data.GraphDatasetBuilder(
            {
                "train": data.ExtxyzReader(str(work_dir / "train.extxyz")),
                "valid": data.ExtxyzReader(str(work_dir / "valid.extxyz")),
            },
            config,
        )
        datasets = builder.get_datasets()
        train_set, validation_set = datasets["train"], datasets["valid"]
    else:
        reader = data.ExtxyzReader(
            data.ExtxyzReader.Config(
                train_dataset_paths=str(work_dir / "train.extxyz"),
                valid_dataset_paths=str(work_dir / "valid.extxyz"),
            )
        )
        builder = data.GraphDatasetBuilder(reader, config)
        builder.prepare_datasets()
        train_set, validation_set, _ = builder.get_splits()
    preprocessing_s = time.perf_counter() - start
    backbone = network(package, model, builder.dataset_info, new_api)
    if package == "mlip" and model == "nequip":
        # mlip 0.2.5 runs its 0.1 networks through their own predictor.
        predictor = module("models_v1").ForceFieldPredictorV1(
            mlip_network=backbone,
            required_properties=module("typing.properties").Properties(),
        )
        force_field = models.ForceField.init(predictor, seed=seed)
    else:
        force_field = models.ForceField.from_mlip_network(backbone, seed=seed)
    loss, optimizer = loss_and_optimizer(package)
    loop = training.TrainingLoop(
        train_dataset=train_set,
        validation_dataset=validation_set,
        force_field=force_field,
        loss=loss,
        optimizer=optimizer,
        config=training.TrainingLoop.Config(
            num_epochs=epochs, ema_decay=EMA_DECAY, random_seed=seed
        ),
        **({} if new_api else {"should_parallelize": False}),
    )
    records: dict[int, dict] = {}
    io_module = module("training.training_io_handler")

    def record(category, to_log: dict, epoch: int) -> None:
        entry = records.setdefault(int(epoch), {"epoch": int(epoch)})
        if "runtime_in_seconds" in to_log:  # mlip 0.2: a SYSTEM_METRICS record
            entry["train_s"] = float(to_log["runtime_in_seconds"])
        if category == io_module.LogCategory.TRAIN_METRICS:
            entry["train_loss"] = float(to_log["loss"])
        elif category == io_module.LogCategory.EVAL_METRICS:
            entry["valid_mae_f"] = float(to_log["mae_f"])
            entry["valid_mae_e"] = float(to_log["mae_e"])

    loop.io_handler.attach_logger(record)
    loop.run()
    info = {
        "library": package,
        "version": importlib.metadata.version(package.replace("_", "-")),
        "jax": jax.__version__,
        "num_parameters": int(sum(x.size for x in jax.tree.leaves(force_field.params))),
        "preprocessing_s": preprocessing_s,
        "epochs": [records[e] for e in sorted(records) if e > 0],
    }
    if hasattr(train_set, "padding_efficiency"):
        info["padding_efficiency"] = dataclasses.asdict(train_set.padding_efficiency())
    return info


# --------------------------------------------------------------- child processes
def reuse_host_memory_like_mlip_eqx() -> None:
    """In mlip's interpreter (``--peer-host-memory``): mlip_eqx's host-memory
    settings (``reuse_host_memory``, loaded from its file, which needs only
    jax), before mlip's first computation."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "mlip_eqx/utils/host_memory.py"
    spec = importlib.util.spec_from_file_location("host_memory", path)
    host_memory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(host_memory)
    if not host_memory.reuse_host_memory():
        raise RuntimeError("mlip_eqx's host-memory settings do not apply here")


def run_child(command: list[str], threads: int, log_path: Path) -> tuple[float, float]:
    """Runs ``command``; returns (wall seconds, peak RSS in MiB of the child)."""
    environment = dict(os.environ)
    environment.update(
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONUNBUFFERED="1",
    )
    start = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        tail = log_path.read_text().splitlines()[-30:]
        raise RuntimeError(
            f"{command[0]} failed ({process.returncode}); log {log_path}:\n"
            + "\n".join(tail)
        )
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def run_jax_child(
    python: str,
    package: str,
    work_dir: Path,
    epochs: int,
    threads: int,
    seed: int,
    model: str = "mace",
    peer_host_memory: bool = False,
) -> dict:
    out = work_dir / f"{package}_{model}.json"
    wall, rss = run_child(
        [
            python,
            str(Path(__file__).resolve()),
            "--child",
            package,
            "--work-dir",
            str(work_dir),
            "--epochs",
            str(epochs),
            "--child-output",
            str(out),
            "--seed",
            str(seed),
            "--model",
            model,
            *(["--peer-host-memory"] if peer_host_memory else []),
        ],
        threads,
        work_dir / f"{package}_{model}.log",
    )
    result = json.loads(out.read_text())
    result.update(wall_s=wall, peak_rss_mib=rss)
    return result


def mace_command(
    python: str, work_dir: Path, epochs: int, seed: int = MODEL_SEED
) -> list[str]:
    """mace_run_train with settings matched to the JAX runs (see README)."""
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
        "r_max": CUTOFF_ANGSTROM,
        "radial_MLP": "[64, 64, 64]",
        "batch_size": BATCH_SIZE,
        "valid_batch_size": BATCH_SIZE,
        "max_num_epochs": epochs,
        "eval_interval": 1,
        "loss": "weighted",
        "energy_weight": ENERGY_WEIGHT,
        "forces_weight": FORCES_WEIGHT,
        "optimizer": "adam",
        "lr": LEARNING_RATE,
        "weight_decay": 0.0,
        "clip_grad": 500,
        "ema_decay": EMA_DECAY,
        "default_dtype": "float32",
        "device": "cpu",
        "num_workers": 0,
        "error_table": "PerAtomMAE",
    }
    flags = ["--amsgrad", "--ema", "--save_cpu"]
    command = [str(Path(python).parent / "mace_run_train"), *flags]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    return command


def run_mace_child(
    python: str, work_dir: Path, epochs: int, threads: int, seed: int = MODEL_SEED
) -> dict:
    """Runs mace_run_train; epoch times from the per-step times of its results."""
    import shutil

    shutil.rmtree(work_dir / "mace", ignore_errors=True)
    (work_dir / "mace").mkdir(parents=True)
    wall, rss = run_child(
        mace_command(python, work_dir, epochs, seed), threads, work_dir / "mace.log"
    )
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
    epochs_info = [
        {"epoch": e, "train_s": step_times[e], **evaluations.get(e, {})}
        for e in sorted(step_times)
    ]
    version, torch_version, parameters = subprocess.run(
        [
            python,
            "-c",
            "import importlib.metadata as m, sys, torch;"
            "model = torch.load(sys.argv[1], map_location='cpu', weights_only=False);"
            "print(m.version('mace-torch'), torch.__version__,"
            " sum(p.numel() for p in model.parameters()))",
            str(work_dir / "mace" / "bench.model"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-3:]
    return {
        "library": "mace-torch",
        "version": version,
        "torch": torch_version,
        "num_parameters": int(parameters),
        "epochs": epochs_info,
        "wall_s": wall,
        "peak_rss_mib": rss,
    }


# ------------------------------------------------------------------------ report
def energy_mae_per_atom(epoch: dict, atoms_per_structure: float) -> float:
    """Validation energy MAE in eV/atom (exact for equal-sized structures)."""
    if "valid_mae_e_per_atom" in epoch:
        return epoch["valid_mae_e_per_atom"]
    return epoch.get("valid_mae_e", float("nan")) / atoms_per_structure


def standard_error(values: list[float]) -> float:
    """Standard error of the mean of per-seed values (nan for one seed)."""
    if len(values) < 2:
        return float("nan")
    return statistics.stdev(values) / len(values) ** 0.5


def summarise(runs: list[dict], sizes: dict) -> dict:
    """One library's runs (one per seed) in one row."""
    later = [e["train_s"] for run in runs for e in run["epochs"][1:]]
    per_epoch = statistics.median(
        later or [run["epochs"][0]["train_s"] for run in runs]
    )
    atoms_per_structure = sizes["valid"]["atoms"] / sizes["valid"]["structures"]
    finals = [run["epochs"][-1] for run in runs]
    return {
        "library": runs[0]["library"],
        "version": runs[0]["version"],
        "s_per_epoch": per_epoch,
        "structures_per_s": sizes["train"]["structures"] / per_epoch,
        "atoms_per_s": sizes["train"]["atoms"] / per_epoch,
        "first_epoch_s": statistics.median(run["epochs"][0]["train_s"] for run in runs),
        "peak_rss_mib": max(run["peak_rss_mib"] for run in runs),
        "num_parameters": runs[0]["num_parameters"],
        "num_seeds": len(runs),
        "final_valid_mae_f_meV_per_A": 1000
        * statistics.mean(e.get("valid_mae_f", float("nan")) for e in finals),
        "final_valid_mae_f_sem_meV_per_A": 1000
        * standard_error([e.get("valid_mae_f", float("nan")) for e in finals]),
        "final_valid_mae_e_meV_per_atom": 1000
        * statistics.mean(energy_mae_per_atom(e, atoms_per_structure) for e in finals),
    }


def print_table(rows: list[dict], runs: dict[str, list[dict]], sizes: dict) -> None:
    print(f"{'metric':32s}" + "".join(f"{r['library']:>16s}" for r in rows))
    print(f"{'version':32s}" + "".join(f"{r['version']:>16s}" for r in rows))
    for key in [k for k in rows[0] if k not in ("library", "version")]:
        print(f"{key:32s}" + "".join(f"{row[key]:16.2f}" for row in rows))
    ours = [row for row in rows if row["library"] == "mlip_eqx"]
    if ours:
        ratios = [row["s_per_epoch"] / ours[0]["s_per_epoch"] for row in rows]
        print(f"{'speed-up of mlip_eqx':32s}" + "".join(f"{r:16.2f}" for r in ratios))
    atoms_per_structure = sizes["valid"]["atoms"] / sizes["valid"]["structures"]

    def maes(epoch: dict) -> tuple[float, float]:
        return (
            1000 * epoch.get("valid_mae_f", float("nan")),
            1000 * energy_mae_per_atom(epoch, atoms_per_structure),
        )

    print("\nper epoch: train s | valid force MAE meV/Å | valid energy MAE meV/atom")
    for library, library_runs in runs.items():
        for run in library_runs:
            for epoch in run["epochs"]:
                force_mae, energy_mae = maes(epoch)
                print(
                    f"  {library:12s} seed {run['seed']:3d} epoch {epoch['epoch']:2d}: "
                    f"{epoch['train_s']:8.1f} s | {force_mae:7.1f} | {energy_mae:7.2f}"
                )
    print("\nmean over seeds: valid force MAE meV/Å | valid energy MAE meV/atom")
    for library, library_runs in runs.items():
        for index in range(min(len(run["epochs"]) for run in library_runs)):
            values = [maes(run["epochs"][index]) for run in library_runs]
            force_mae = statistics.mean(v[0] for v in values)
            energy_mae = statistics.mean(v[1] for v in values)
            print(
                f"  {library:12s} epoch {index + 1:2d}: {force_mae:7.1f} "
                f"(seeds: {', '.join(f'{v[0]:.1f}' for v in values)}) | "
                f"{energy_mae:7.2f}"
            )
    for row in rows[1:] if ours else []:  # ours is the first row when it ran
        if min(row["num_seeds"], ours[0]["num_seeds"]) < 2:
            continue
        key, sem = "final_valid_mae_f_meV_per_A", "final_valid_mae_f_sem_meV_per_A"
        difference = ours[0][key] - row[key]
        error = (ours[0][sem] ** 2 + row[sem] ** 2) ** 0.5
        print(
            f"final force MAE, mlip_eqx - {row['library']}: {difference:+.2f} ± "
            f"{error:.2f} meV/Å (Welch t = {difference / max(error, 1e-12):+.2f}; "
            f"{ours[0]['num_seeds']} and {row['num_seeds']} seeds)"
        )
    for library_runs in runs.values():
        padding = library_runs[0].get("padding_efficiency")
        if padding:
            print(
                f"padding efficiency of {library_runs[0]['library']}: nodes "
                f"{padding['nodes']:.1%}, edges {padding['edges']:.1%}, graphs "
                f"{padding['graphs']:.1%} ({padding['num_batches']} batches)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", choices=("mace", "nequip", "visnet"), default="mace")
    parser.add_argument("--mlip-python", help="interpreter with mlip installed")
    parser.add_argument("--mace-python", help="interpreter with mace-torch installed")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[MODEL_SEED],
        help="seeds of the models' weights; one run per library and seed",
    )
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)  # child only
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/train_vs_peers"))
    parser.add_argument(
        "--output", type=Path, default=Path("benchmarks/results/train_vs_peers.json")
    )
    parser.add_argument(
        "--peer-host-memory",
        action="store_true",
        help="run mlip with mlip_eqx's host-memory settings "
        "(mlip_eqx/utils/host_memory.py), to see what they do for mlip",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        if args.child == "mlip" and args.peer_host_memory:
            reuse_host_memory_like_mlip_eqx()
        result = train_jax_library(
            args.child, args.work_dir, args.epochs, args.seed, args.model
        )
        args.child_output.write_text(json.dumps(result))
        return

    sizes = prepare_data(args.work_dir)
    runs: dict[str, list[dict]] = {}
    for seed in args.seeds:
        children = []
        if not args.skip_ours:
            children.append((run_jax_child, sys.executable, "mlip_eqx"))
        if args.mlip_python:
            children.append((run_jax_child, args.mlip_python, "mlip"))
        if args.mace_python and args.model == "mace":
            children.append((run_mace_child, args.mace_python, "mace-torch"))
        for run, python, library in children:
            if run is run_jax_child:
                result = run(
                    python,
                    library,
                    args.work_dir,
                    args.epochs,
                    args.threads,
                    seed,
                    args.model,
                    args.peer_host_memory,
                )
            else:
                result = run(python, args.work_dir, args.epochs, args.threads, seed)
            runs.setdefault(library, []).append({**result, "seed": seed})
    rows = [summarise(library_runs, sizes) for library_runs in runs.values()]
    print_table(rows, runs, sizes)
    write_record(
        args.output,
        {
            "model": args.model,
            "threads": args.threads,
            "peer_host_memory": args.peer_host_memory,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "data": sizes,
            "statistic": "median of the epochs after the first (all seeds); "
            "MAEs: mean over seeds",
            "summary": rows,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
