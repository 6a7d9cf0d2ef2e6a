"""NequIP training from mlip's initial weights: separates the training from the
draw of the initial weights when mlip_eqx and mlip are compared.

Usage:
    python benchmarks/nequip_same_init.py [--seed 7] [--epochs 6]
        [--mlip-python /tmp/peer_mlip/bin/python] [--work-dir /tmp/train_vs_peers]
        [--output benchmarks/results/nequip_same_init.json]

The data, model (NequIP 32x0e + 32x0o + 16x1o + 16x1e, l_max 2, 2 layers) and
training settings are those of ``train_vs_peers.py --model nequip``. mlip's
interpreter draws mlip's initial weights for ``--seed`` (``ForceField.init`` of
its ``ForceFieldPredictorV1``, as ``train_vs_peers.py`` does); they are mapped
into our network with ``mlip_parity.py``'s map, which reproduces mlip's node
energies to 1e-15, and mlip_eqx trains from them. Prints the validation force
MAE after every epoch, to compare with mlip's own run of the same seed in
``train_vs_peers.py``, and writes JSON.
"""

import argparse
import subprocess
import tempfile
from pathlib import Path

import train_vs_peers
from common import write_record


def dump_mlip_initial_weights(seed: int, work_dir: Path, output: Path) -> None:
    """In mlip's interpreter (this file run with ``--child``): the weights."""
    import jax
    import numpy as np

    _, _, force_field = train_vs_peers.mlip_nequip(work_dir, seed)
    flat = jax.tree_util.tree_flatten_with_path(force_field.params)[0]
    names = [
        "/".join(str(getattr(key, "key", key)) for key in path) for path, _ in flat
    ]
    np.savez(output, **{n: np.asarray(v) for n, (_, v) in zip(names, flat)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--mlip-python", default="/tmp/peer_mlip/bin/python")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/train_vs_peers"))
    parser.add_argument(
        "--output", type=Path, default=Path("benchmarks/results/nequip_same_init.json")
    )
    parser.add_argument("--child-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_output is not None:
        dump_mlip_initial_weights(args.seed, args.work_dir, args.child_output)
        return
    import numpy as np
    from mlip_parity import map_nequip_weights

    import mlip_eqx.models as models

    train_vs_peers.prepare_data(args.work_dir)
    with tempfile.TemporaryDirectory() as directory:
        weights_path = Path(directory) / "weights.npz"
        subprocess.run(
            [args.mlip_python, __file__, "--seed", str(args.seed), "--work-dir",
             str(args.work_dir), "--child-output", str(weights_path)],
            check=True,
        )  # fmt: skip
        with np.load(weights_path) as arrays:
            weights = {
                name.replace("mlip_network/", ""): arrays[name] for name in arrays.files
            }

    def from_mlip_weights(network, seed=0, predict_stress=False):
        del seed  # the weights are mlip's
        return models.ForceField(map_nequip_weights(network, weights), predict_stress)

    # train_vs_peers builds our force field through this constructor.
    models.ForceField.from_mlip_network = staticmethod(from_mlip_weights)
    result = train_vs_peers.train_jax_library(
        "mlip_eqx", args.work_dir, args.epochs, seed=args.seed, model="nequip"
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
