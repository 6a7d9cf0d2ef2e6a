"""Fine-tuning the demo model on a shifted task: from scratch, fine-tuned, with
frozen interactions, and with replay.

Usage:
    mlip-eqx train --output-dir runs/demo   # once: the pretrained demo model
    python -m benchmarks.fine_tuning [--pretrained runs/demo/model.zip]
        [--epochs 20] [--work-dir /tmp/fine_tuning]
        [--output benchmarks/results/fine_tuning.json] [--runs a b c d e f]

Pretrained model: the main job's MACE (32 channels, l_max 2), trained on the
demo set (Cu/Ag/Au/Ni fcc cells under EMT). New task: 100 new demo-generator
cells (seed 11) compressed to 85 % of their volume and relabelled with EMT:
50 for training, 50 for validation. Four runs of ``--epochs`` epochs through
``mlip-eqx train``'s own function (batch size 4, energy weight 100, forces
weight 25, constant learning rate as given):
(a) from scratch (the same architecture, fresh weights, statistics of the new
data); (b) fine-tuned from the pretrained model; (c) fine-tuned with MACE's
interaction blocks frozen (``--freeze .interaction.``); (d) fine-tuned with
replay of 50 demo training cells (``--replay``, fraction 1, weight 1);
(e) as (d), with a readout head of its own for the new data (``--new-head
compressed``; the replayed cells keep head 0); (f) a new head alone trains
(``--new-head compressed --train-new-head-only``, no replay). ``--runs``
chooses some of them (e.g. ``--runs e f``).
Multi-head runs are evaluated with head "compressed" on the new task and head
"pretrained" on the original set. Reported per run: the validation force MAE on
the new task after every epoch (the EMA parameters), and the final model's force
MAE on the new validation set and on the original demo validation set, next to
the pretrained model's.
Prints a table and writes JSON.
"""

import json
from pathlib import Path

import ase.io
from ase.calculators.emt import EMT

from benchmarks.harness import argument_parser, write_record
from mlip_eqx.data import ExtxyzReader
from mlip_eqx.data.demo import generate_demo_structures, get_demo_dataset
from mlip_eqx.inference.evaluation import evaluate_force_field
from mlip_eqx.models import InferenceContext
from mlip_eqx.models.model_io import load_model_from_zip
from mlip_eqx.workflows.train import train
from mlip_eqx.workflows.train_settings import settings_from_dict

VOLUME_FRACTION = 0.85
NUM_NEW = 100


def compressed_task(work_dir: Path) -> tuple[Path, Path]:
    """Writes the new task's train and validation files (EMT labels)."""
    train_path, valid_path = work_dir / "new_train.xyz", work_dir / "new_valid.xyz"
    if train_path.exists() and valid_path.exists():
        return train_path, valid_path
    structures = []
    for atoms in generate_demo_structures(NUM_NEW, seed=11):
        atoms.set_cell(atoms.cell * VOLUME_FRACTION ** (1 / 3), scale_atoms=True)
        atoms.calc = EMT()
        atoms.info = {"REF_energy": atoms.get_potential_energy()}
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.calc = None
        structures.append(atoms)
    ase.io.write(train_path, structures[: NUM_NEW // 2])
    ase.io.write(valid_path, structures[NUM_NEW // 2 :])
    return train_path, valid_path


def force_mae(model_path: Path, data_path: Path, head: str | None = None) -> float:
    """The force MAE in meV/Å of a model zip (with the head of this name, if
    it has several) on a labelled file."""
    model = load_model_from_zip(None, model_path)
    if head is not None and model.dataset_info.num_datasets > 1:
        model = model.replace_inference_context(InferenceContext(dataset_name=head))
    systems = ExtxyzReader(ExtxyzReader.Config(train_dataset_paths=str(data_path)))
    return 1e3 * evaluate_force_field(model, systems.load()[0]).metrics["mae_f"]


def run(name: str, fine_tuning: dict, args, data: dict) -> dict:
    """One training run; its curve and final errors."""
    output = args.work_dir / name
    settings = settings_from_dict(
        {
            "output_dir": str(output),
            "data": {"train": [str(data["train"])], "valid": [str(data["valid"])]},
            "training_loop": {"num_epochs": args.epochs},
            "optimizer": {
                "init_learning_rate": args.learning_rate,
                "peak_learning_rate": args.learning_rate,
                "final_learning_rate": args.learning_rate,
            },
            "fine_tuning": fine_tuning,
            "overwrite": True,
            "plots": False,
        }
    )
    train(settings)
    records = [
        json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()
    ]
    curve = [
        1e3 * r["mae_f"]
        for r in records
        if r.get("category") == "EVAL_METRICS" and int(r.get("epoch", 0)) > 0
    ]
    return {
        "name": name,
        "validation_mae_f_by_epoch": curve,
        "new_validation_mae_f": force_mae(
            output / "model.zip", data["valid"], "compressed"
        ),
        "original_validation_mae_f": force_mae(
            output / "model.zip", data["original"], "pretrained"
        ),
    }


def runs(pretrained: str, demo) -> dict[str, dict]:
    """The fine-tuning settings of every run, by name."""
    replay = {"replay_paths": [str(demo.train_path)], "replay_fraction": 1.0}
    new_head = {"init_from": pretrained, "new_head": "compressed"}
    return {
        "a_scratch": {},
        "b_fine_tuned": {"init_from": pretrained},
        "c_frozen_interactions": {"init_from": pretrained, "frozen": [".interaction."]},
        "d_replay": {"init_from": pretrained, **replay},
        "e_new_head_replay": {**new_head, **replay},
        "f_new_head_only": {**new_head, "train_new_head_only": True},
    }


def main() -> None:
    parser = argument_parser(__doc__, "fine_tuning", work_dir="/tmp/fine_tuning")
    parser.add_argument("--pretrained", type=Path, default=Path("runs/demo/model.zip"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument(
        "--runs", nargs="+", choices=tuple("abcdef"), default=list("abcdef")
    )
    args = parser.parse_args()
    if not args.pretrained.exists():
        raise SystemExit(
            f"{args.pretrained}: no such model; train the demo model first with "
            "mlip-eqx train --output-dir runs/demo"
        )
    args.work_dir.mkdir(parents=True, exist_ok=True)
    demo = get_demo_dataset()
    new_train, new_valid = compressed_task(args.work_dir)
    data = {"train": new_train, "valid": new_valid, "original": demo.validation_path}
    pretrained = str(args.pretrained)
    record = {
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "pretrained": {
            "new_validation_mae_f": force_mae(args.pretrained, new_valid),
            "original_validation_mae_f": force_mae(
                args.pretrained, demo.validation_path
            ),
        },
        "runs": [
            run(name, fine_tuning, args, data)
            for name, fine_tuning in runs(pretrained, demo).items()
            if name[0] in args.runs
        ],
    }
    before = record["pretrained"]
    print(f"\nForce MAE (meV/Å); pretrained: new task "
          f"{before['new_validation_mae_f']:.1f}, original "
          f"{before['original_validation_mae_f']:.1f}")  # fmt: skip
    checkpoints = sorted({1, 2, 5, args.epochs // 2, args.epochs})
    header = " ".join(f"ep{e:>3}" for e in checkpoints)
    print(f"{'run':<24} {header}  {'new':>6} {'original':>8} {'drift':>6}")
    for entry in record["runs"]:
        curve = entry["validation_mae_f_by_epoch"]
        points = " ".join(f"{curve[e - 1]:>5.1f}" for e in checkpoints)
        drift = entry["original_validation_mae_f"] / before["original_validation_mae_f"]
        entry["original_error_ratio"] = drift
        print(f"{entry['name']:<24} {points}  {entry['new_validation_mae_f']:>6.1f} "
              f"{entry['original_validation_mae_f']:>8.1f} {drift:>6.2f}")  # fmt: skip
    write_record(args.output, record)


if __name__ == "__main__":
    main()
