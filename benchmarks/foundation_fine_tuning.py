"""Fine-tuning a converted MACE-MP-0-medium-size model: seconds per training epoch,
mlip_eqx against mace-torch on this CPU.

Usage:
    python -m benchmarks.foundation_fine_tuning [--epochs 3] [--train 40]
        [--valid 10] [--batch-size 4] [--repeats 1] [--threads 2] [--seed 0]
        [--work-dir /tmp/foundation_fine_tuning]
        [--output benchmarks/results/foundation_fine_tuning.json]

Model: the ``ScaleShiftMACE`` of ``foundation_model`` (MACE-MP-0 medium's
hyperparameters, 89 elements, mace-torch's random initial weights, saved with
``torch.save``) and its float32 conversion (``mlip-eqx convert``).

Data: rattled 32-atom fcc cells of random Cu/Ni/Al (0.1 Å noise) labelled by
ASE's EMT; ``--train`` for training, ``--valid`` for validation.

Each library fine-tunes in its own child process, float32 on the CPU, batch
size ``--batch-size``, Adam (AMSGrad) at learning rate 1e-3, energy weight 1,
forces weight 100 (mace-torch's fine-tuning defaults), EMA 0.99:
- mace-torch 0.3.16: ``mace_run_train --foundation_model FILE
  --multiheads_finetuning False`` (naive fine-tuning; E0s averaged from the
  data; mace-torch keeps only the data's elements);
- ours: ``mlip-eqx train --init-from ZIP`` (all 89 elements kept, the model's
  E0s).
An epoch's time is the time of its training steps (mace-torch: the sum of its
logged step times, data collation left out; ours: the epoch's
``runtime_in_seconds``); the first epoch (ours: compilation; mace-torch:
warm-up) is reported apart, later epochs as their median. The ratio is
mace-torch's over ours from the same run.
"""

import statistics

from benchmarks.harness import (
    alternate,
    argument_parser,
    print_rows,
    run_in_child,
    write_record,
)
from benchmarks.peers import foundation, mace_torch

LIBRARIES = ("mlip_eqx", "mace-torch")


def epoch_times(run: dict) -> tuple[float, float]:
    """The first epoch's seconds and the median of the later epochs'."""
    seconds = [epoch["train_s"] for epoch in run["epochs"] if epoch["epoch"] >= 1]
    return seconds[0], statistics.median(seconds[1:])


def main() -> None:
    parser = argument_parser(
        __doc__, "foundation_fine_tuning", work_dir="/tmp/foundation_fine_tuning"
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--valid", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first one is apart)")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    environment = {"OMP_NUM_THREADS": str(args.threads)}
    model_file, zip_file, versions = foundation.written_models(
        args.work_dir, args.seed, environment
    )
    files = run_in_child(
        foundation.fine_tuning_data, str(args.work_dir), args.train, args.valid,
        args.seed,
    ).value  # fmt: skip
    settings = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": 1e-3,
        "energy_weight": 1.0,
        "forces_weight": 100.0,
        "ema_decay": 0.99,
    }
    tuners = {
        "mlip_eqx": (foundation.fine_tune_ours, zip_file),
        "mace-torch": (mace_torch.fine_tune, model_file),
    }

    def tuned(library: str):
        function, model = tuners[library]
        return lambda repeat: run_in_child(
            function, str(model), files,
            str(args.work_dir / f"{library}_{repeat}"), settings,
            environment=environment, log=args.work_dir / f"{library}.log",
        ).value  # fmt: skip

    runs = alternate(range(args.repeats), {name: tuned(name) for name in LIBRARIES})
    row = {}
    for library, key in (("mlip_eqx", "ours"), ("mace-torch", "torch")):
        firsts, laters = zip(*(epoch_times(run) for run in runs[library]))
        row[f"{key}_first_s"] = statistics.median(firsts)
        row[f"{key}_epoch_s"] = statistics.median(laters)
    row["ratio"] = row["torch_epoch_s"] / row["ours_epoch_s"]
    print(
        f"\nFine-tuning MACE-MP-0 medium size, float32, {args.train} cells of 32"
        f" atoms, batch {args.batch_size}: seconds per epoch"
    )
    print_rows(
        [row],
        [("first ours", "ours_first_s", 1), ("first torch", "torch_first_s", 1),
         ("epoch ours", "ours_epoch_s", 2), ("epoch torch", "torch_epoch_s", 2),
         ("ratio", "ratio", 2)],
    )  # fmt: skip
    write_record(
        args.output,
        {"settings": settings, "train": args.train, "valid": args.valid,
         "repeats": args.repeats, "versions": versions, "row": row, "runs": runs},
    )  # fmt: skip


if __name__ == "__main__":
    main()
