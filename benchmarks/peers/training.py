"""Training runs of MACE, NequIP or ViSNet with mlip_eqx or mlip, and the data
set and settings that every library of ``train_vs_peers`` shares.

mlip_eqx and mlip share the training API (the training guide), so one function
(:func:`train_jax_library`) drives both; only the import prefix and the few calls
that changed in mlip 0.2 (readers per split, ``num_rbf``, no
``should_parallelize``) differ.
"""

import dataclasses
import importlib
import importlib.metadata
import time
from pathlib import Path

NUM_STRUCTURES, DATA_SEED = 1000, 0  # 800 train / 100 validation / 100 test
BATCH_SIZE = 8
CUTOFF_ANGSTROM = 5.0
LEARNING_RATE = 0.01
ENERGY_WEIGHT, FORCES_WEIGHT = 1.0, 25.0
EMA_DECAY = 0.99
MODEL_SEED = 42
NEQUIP_IRREPS = "32x0e + 32x0o + 16x1o + 16x1e"


def prepare_data(work_dir: Path) -> dict:
    """Writes ``train.extxyz`` and ``valid.extxyz`` to ``work_dir`` (once) with
    both ``REF_energy``/``REF_forces`` and calculator labels, so that every
    library reads the same labels; returns their sizes. Needs mlip_eqx."""
    import ase.io
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator

    from mlip_eqx.data.demo import get_demo_dataset

    demo = get_demo_dataset(
        num_structures=NUM_STRUCTURES,
        seed=DATA_SEED,
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


def network(package: str, model: str, dataset_info):
    """The benchmarked network of ``package`` ("mlip_eqx" or "mlip"): MACE (32
    channels, l_max 2, correlation 3, 2 layers, 8 radial functions), NequIP
    (``NEQUIP_IRREPS``, l_max 2, 2 layers, 8 Bessel functions; mlip's
    ``models_v1.Nequip``, the architecture ours follows) or ViSNet (64 channels,
    2 layers; mlip's non-legacy ``models.Visnet``)."""
    models = importlib.import_module(f"{package}.models")
    if model == "visnet":
        mlip_only = {"use_legacy_visnet": False} if package == "mlip" else {}
        return models.Visnet(
            models.Visnet.Config(num_channels=64, num_layers=2, **mlip_only),
            dataset_info,
        )
    if model == "mace":
        radial_basis = {"num_rbf" if package == "mlip" else "num_bessel": 8}
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
            num_layers=2, node_irreps=NEQUIP_IRREPS, l_max=2, num_bessel=8
        ),
        dataset_info,
    )


def loss_and_optimizer(package: str) -> tuple:
    """The loss (MSE, energy weight 1, forces 25, stress 0) and optimizer (the
    default MLIP optimizer at a constant lr 0.01, no warm-up) of ``package``."""
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


def train_jax_library(
    package: str,
    work_dir: str,
    epochs: int,
    seed: int = MODEL_SEED,
    model: str = "mace",
    mlip_initial_params: dict | None = None,
) -> dict:
    """Trains with ``package`` ("mlip_eqx" or "mlip") through its public API on
    the files of :func:`prepare_data`; the epochs' times and validation MAEs.

    ``mlip_initial_params`` (mlip_eqx's NequIP only): mlip's initial network
    parameters, mapped into ours, instead of our draw for ``seed``.
    """
    import jax

    work_dir = Path(work_dir)
    data = importlib.import_module(f"{package}.data")
    models = importlib.import_module(f"{package}.models")
    training = importlib.import_module(f"{package}.training")
    config = data.GraphDatasetBuilder.Config(
        graph_cutoff_angstrom=CUTOFF_ANGSTROM, batch_size=BATCH_SIZE
    )
    start = time.perf_counter()
    if package == "mlip":  # mlip 0.2: one reader per split
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
    backbone = network(package, model, builder.dataset_info)
    if package == "mlip" and model == "nequip":
        # mlip 0.2.5 runs its 0.1 networks through their own predictor.
        predictor = importlib.import_module("mlip.models_v1").ForceFieldPredictorV1(
            mlip_network=backbone,
            required_properties=importlib.import_module(
                "mlip.typing.properties"
            ).Properties(),
        )
        force_field = models.ForceField.init(predictor, seed=seed)
    elif mlip_initial_params is not None:
        from mlip_eqx.models.convert import nequip_from_mlip_params

        force_field = models.ForceField(
            nequip_from_mlip_params(backbone, mlip_initial_params), False
        )
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
        **({} if package == "mlip" else {"should_parallelize": False}),
    )
    records: dict[int, dict] = {}
    log_category = importlib.import_module(
        f"{package}.training.training_io_handler"
    ).LogCategory

    def record(category, to_log: dict, epoch: int) -> None:
        entry = records.setdefault(int(epoch), {"epoch": int(epoch)})
        if "runtime_in_seconds" in to_log:  # mlip 0.2: a SYSTEM_METRICS record
            entry["train_s"] = float(to_log["runtime_in_seconds"])
        if category == log_category.TRAIN_METRICS:
            entry["train_loss"] = float(to_log["loss"])
        elif category == log_category.EVAL_METRICS:
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
    if package == "mlip_eqx":
        info["padding_efficiency"] = dataclasses.asdict(train_set.padding_efficiency())
    return info


def train_mlip(
    work_dir: str, epochs: int, seed: int, model: str, peer_host_memory: bool
) -> dict:
    """In mlip's interpreter: :func:`train_jax_library` of mlip, with mlip_eqx's
    host-memory settings first if ``peer_host_memory``."""
    if peer_host_memory:
        reuse_host_memory_like_mlip_eqx()
    return train_jax_library("mlip", work_dir, epochs, seed, model)


def reuse_host_memory_like_mlip_eqx() -> None:
    """mlip_eqx's host-memory settings (``reuse_host_memory``, loaded from its
    file, which needs only jax), before mlip's first computation."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "mlip_eqx/utils/host_memory.py"
    spec = importlib.util.spec_from_file_location("host_memory", path)
    host_memory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(host_memory)
    if not host_memory.reuse_host_memory():
        raise RuntimeError("mlip_eqx's host-memory settings do not apply here")
