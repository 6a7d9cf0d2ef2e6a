"""A MACE of MACE-MP-0 medium's size as mace-torch saves it, its conversion to
mlip_eqx, and the ASE-calculator call and MD step time of each library on
periodic cells (for ``foundation_model``); every function runs in a child."""

import importlib
import importlib.metadata
import json
import statistics
import time

ELEMENTS = (29, 28, 13, 26)  # Cu, Ni, Al, Fe
LATTICE_ANGSTROM = 3.6
REPEATS_OF_SIZE = {64: (2, 2, 4), 512: (4, 4, 8), 4096: (8, 8, 16)}
IRREPS_SETTINGS = ("hidden_irreps", "MLP_irreps")
NUM_MODEL_ELEMENTS = 89  # MACE-MP-0's E0 table: H to Ac
# MACE-MP-0 medium ("2023-12-03-mace-128-L1"): the settings of its training script.
MP0_MEDIUM = dict(
    r_max=6.0,
    num_bessel=10,
    num_polynomial_cutoff=5,
    max_ell=3,
    num_interactions=2,
    hidden_irreps="128x0e+128x1o",
    MLP_irreps="16x0e",
    correlation=3,
    radial_MLP=[64, 64, 64],
    avg_num_neighbors=61.96,
)


def structure(num_atoms: int):
    """A rattled periodic fcc cell of random Cu/Ni/Al/Fe (seeded)."""
    import ase.build
    import numpy as np

    atoms = ase.build.bulk("Cu", "fcc", a=LATTICE_ANGSTROM, cubic=True)
    atoms = atoms.repeat(REPEATS_OF_SIZE[num_atoms])
    rng = np.random.default_rng(num_atoms)
    atoms.numbers = rng.choice(ELEMENTS, len(atoms))
    atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
    return atoms


def write_models(model_file: str, zip_file: str, seed: int) -> dict:
    """Saves a ScaleShiftMACE of MACE-MP-0 medium's hyperparameters with
    mace-torch's own random initial weights (``torch.save``, as the foundation
    models are distributed) and its float32 conversion as our zip."""
    import numpy as np
    import torch
    from mace import modules  # before e3nn: it sets up e3nn's constants' loading

    from mlip_eqx.workflows.convert import ConvertSettings, convert

    o3 = importlib.import_module("e3nn.o3")
    torch.manual_seed(seed)
    settings = dict(MP0_MEDIUM)
    irreps = {key: o3.Irreps(settings.pop(key)) for key in IRREPS_SETTINGS}
    rng = np.random.default_rng(seed)
    model = modules.ScaleShiftMACE(
        **settings,
        **irreps,
        interaction_cls=modules.interaction_classes[
            "RealAgnosticResidualInteractionBlock"
        ],
        interaction_cls_first=modules.interaction_classes[
            "RealAgnosticResidualInteractionBlock"
        ],
        num_elements=NUM_MODEL_ELEMENTS,
        atomic_numbers=list(range(1, NUM_MODEL_ELEMENTS + 1)),
        atomic_energies=rng.uniform(-8.0, -1.0, NUM_MODEL_ELEMENTS),
        gate=torch.nn.functional.silu,
        atomic_inter_scale=0.8,
        atomic_inter_shift=0.1,
    )
    torch.save(model.float().eval(), model_file)
    convert(
        ConvertSettings(
            source="mace-torch",
            model=model_file,
            output=zip_file,
            dtype="float32",
            overwrite=True,
        )
    )
    return {
        "mace_torch": importlib.metadata.version("mace-torch"),
        "torch": torch.__version__,
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
    }


def written_models(work_dir, seed: int, environment: dict) -> tuple:
    """:func:`write_models` run in a child process into ``work_dir`` (a Path):
    ``(model file, converted zip, versions)``."""
    from benchmarks.harness import run_in_child

    model_file = work_dir / "mace_mp0_medium_size.model"
    zip_file = work_dir / "converted.zip"
    versions = run_in_child(
        write_models, str(model_file), str(zip_file), seed,
        environment=environment, log=work_dir / "convert.log",
    ).value  # fmt: skip
    return model_file, zip_file, versions


def time_mace_torch(model_file: str, sizes: list[int], calls: int, steps: int):
    """mace-torch's ``MACECalculator`` (float32, CPU): ms per energy + forces
    call (one atom moved by 0.01 Å before each), and ms per step of ASE's
    Langevin MD (300 K, 1 fs) driving it, the median of ``steps`` steps after
    one."""
    import torch
    from ase import units
    from ase.md.langevin import Langevin
    from mace.calculators import MACECalculator

    from benchmarks.peers import md

    calculator = MACECalculator(
        model_paths=model_file, device="cpu", default_dtype="float32"
    )
    results = {"library": "mace-torch", "torch": torch.__version__, "sizes": {}}

    def measure(size: int) -> dict:
        atoms = structure(size)
        atoms.calc = calculator
        entry = {"calculator": md.calculator_ms(atoms, calls)}
        dynamics = Langevin(
            atoms, 1.0 * units.fs, temperature_K=300.0, friction=0.01 / units.fs
        )
        dynamics.run(1)
        seconds = []
        for _ in range(steps):
            start = time.perf_counter()
            dynamics.run(1)
            seconds.append(time.perf_counter() - start)
        entry["engine"] = {"ms_per_step": 1e3 * statistics.median(seconds)}
        return entry

    for size in sizes:
        results["sizes"][str(size)] = _measured("mace-torch", size, measure)
    return results


def _measured(library: str, size: int, measure) -> dict:
    """``measure(size)`` with the process's peak memory so far (sizes run in
    increasing order, so it is that of the largest size yet), or the error
    that stopped it (e.g. out of memory), so that the other sizes still count."""
    from benchmarks.harness import peak_rss_mib

    try:
        entry = measure(size)
    except (RuntimeError, MemoryError) as error:
        entry = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    entry["peak_rss_mib"] = peak_rss_mib()
    print(library, size, json.dumps(entry), flush=True)
    return entry


def time_ours(zip_file: str, sizes: list[int], calls: int, steps: int) -> dict:
    """The converted model's ASE calculator (ms per call, as mace-torch's) and
    JAX-MD engine (NVT Langevin, 300 K, 1 fs; ms per step, the median over
    episodes of ``steps`` steps after the first, compiling one)."""
    import jax

    from benchmarks.peers import md
    from mlip_eqx.models.model_io import load_model_from_zip

    force_field = load_model_from_zip(None, zip_file)
    md.STEPS_PER_EPISODE.update(dict.fromkeys(sizes, steps))
    results = {
        "library": "mlip_eqx",
        "version": importlib.metadata.version("mlip-eqx"),
        "jax": jax.__version__,
        "sizes": {},
    }

    def measure(size: int) -> dict:
        atoms = structure(size)
        return {
            "calculator": md.time_calculator("mlip_eqx", force_field, atoms, calls),
            "engine": md.time_engine("mlip_eqx", force_field, atoms),
        }

    for size in sizes:
        results["sizes"][str(size)] = _measured("mlip_eqx", size, measure)
    return results


FINE_TUNING_ELEMENTS = (29, 28, 13)  # Cu, Ni, Al: elements EMT labels
FINE_TUNING_REPEATS = (2, 2, 2)  # 32 atoms, about 2,500 edges within 6 Å


def fine_tuning_data(work_dir: str, num_train: int, num_valid: int, seed: int):
    """Writes ``train.extxyz`` and ``valid.extxyz`` to ``work_dir``: rattled
    32-atom fcc cells of random Cu/Ni/Al labelled by EMT (``REF_energy``,
    ``REF_forces``); returns their paths."""
    from pathlib import Path

    import ase.build
    import ase.io
    import numpy as np
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    paths = {}
    for name, count in (("train", num_train), ("valid", num_valid)):
        frames = []
        for _ in range(count):
            atoms = ase.build.bulk("Cu", "fcc", a=LATTICE_ANGSTROM, cubic=True)
            atoms = atoms.repeat(FINE_TUNING_REPEATS)
            atoms.numbers = rng.choice(FINE_TUNING_ELEMENTS, len(atoms))
            atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
            atoms.calc = EMT()
            atoms.info["REF_energy"] = float(atoms.get_potential_energy())
            atoms.arrays["REF_forces"] = np.array(atoms.get_forces())
            atoms.calc = None
            frames.append(atoms)
        paths[name] = str(Path(work_dir) / f"{name}.extxyz")
        ase.io.write(paths[name], frames, format="extxyz")
    return paths


def fine_tune_ours(zip_file: str, files: dict, folder: str, settings: dict) -> dict:
    """``mlip-eqx train --init-from`` the converted model (float32, CPU) with
    ``settings`` (epochs, batch_size, learning_rate, energy_weight,
    forces_weight, ema_decay); per epoch the training seconds of its
    ``metrics.jsonl`` (``runtime_in_seconds``: the epoch's steps, the first
    epoch's compilation included) and the validation force MAE (eV/Å)."""
    import shutil

    import jax

    from mlip_eqx.cli import main

    shutil.rmtree(folder, ignore_errors=True)
    code = main(
        ["train", "--init-from", zip_file, "--output-dir", folder,
         "--train", files["train"], "--valid", files["valid"],
         "--test", files["valid"], "--energy-key", "REF_energy",
         "--forces-key", "REF_forces", "--epochs", str(settings["epochs"]),
         "--batch-size", str(settings["batch_size"]),
         "--learning-rate", str(settings["learning_rate"]),
         "--energy-weight", str(settings["energy_weight"]),
         "--forces-weight", str(settings["forces_weight"]),
         "--ema-decay", str(settings["ema_decay"]), "--no-plots"]
    )  # fmt: skip
    if code != 0:
        raise RuntimeError(f"mlip-eqx train exited with {code}")
    epochs: dict[int, dict] = {}
    with open(f"{folder}/metrics.jsonl") as file:
        for record in map(json.loads, file):
            entry = epochs.setdefault(record["epoch"], {"epoch": record["epoch"]})
            if record["category"] == "TRAIN_METRICS":
                entry["train_s"] = float(record["runtime_in_seconds"])
            elif record["category"] == "EVAL_METRICS":
                entry["valid_mae_f"] = float(record["mae_f"])
    return {
        "library": "mlip_eqx",
        "version": importlib.metadata.version("mlip-eqx"),
        "jax": jax.__version__,
        "epochs": [epochs[e] for e in sorted(epochs) if "train_s" in epochs[e]],
    }
