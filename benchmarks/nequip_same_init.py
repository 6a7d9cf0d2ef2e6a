"""NequIP training from mlip's initial weights: separates the training from the
draw of the initial weights when mlip_eqx and mlip are compared.

Usage:
    python -m benchmarks.nequip_same_init [--seed 7] [--epochs 6]
        [--mlip-python /tmp/peer_mlip/bin/python] [--work-dir /tmp/train_vs_peers]
        [--output benchmarks/results/nequip_same_init.json]

The data, model (NequIP 32x0e + 32x0o + 16x1o + 16x1e, l_max 2, 2 layers) and
training settings are those of ``train_vs_peers --model nequip``. mlip's
interpreter draws mlip's initial weights for ``--seed`` (``ForceField.init`` of
its ``ForceFieldPredictorV1``, as ``train_vs_peers`` does); they are mapped
into our network with ``mlip_eqx.models.convert.nequip_from_mlip_params``, which
reproduces mlip's node energies to 1e-15 (``mlip_parity``), and mlip_eqx trains
from them. Prints the validation force MAE after every epoch, to compare with
mlip's own run of the same seed in ``train_vs_peers``, and writes JSON.
"""

from benchmarks.harness import argument_parser, run_in_child, write_record
from benchmarks.peers import mlip_nequip, training


def main() -> None:
    parser = argument_parser(
        __doc__, "nequip_same_init", work_dir="/tmp/train_vs_peers"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--mlip-python", default="/tmp/peer_mlip/bin/python")
    args = parser.parse_args()
    training.prepare_data(args.work_dir)
    initial = run_in_child(
        mlip_nequip.initial_params, args.work_dir, args.seed, python=args.mlip_python
    ).value
    result = training.train_jax_library(
        "mlip_eqx", args.work_dir, args.epochs, args.seed, "nequip", initial
    )
    curve = [1e3 * epoch["valid_mae_f"] for epoch in result["epochs"]]
    print(
        f"mlip_eqx from mlip's initial weights (seed {args.seed}): validation force "
        "MAE by epoch (meV/Å): " + ", ".join(f"{value:.2f}" for value in curve)
    )
    write_record(
        args.output,
        {"seed": args.seed, "epochs": args.epochs, "valid_mae_f_mev_by_epoch": curve},
    )


if __name__ == "__main__":
    main()
