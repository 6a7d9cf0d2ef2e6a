"""mlip 0.2's own NequIP and MACE predictions, for ``test_mlip_nequip_zip.py``
and ``test_mlip_mace_zip.py``; run in mlip's interpreter (not mlip_eqx's):
``python mlip_nequip_reference.py request.json``.

The request names the model ("Nequip", the default, or "Mace"), the structures
(atomic numbers, positions, cell, pbc), the DatasetInfo and the jobs:
``{"config": {...}, "zip": path, "seed": k}`` builds the model of that config
with mlip's random initial weights (times 1.25, plus normal offsets of standard
deviation 0.1, so that no weight is zero and every path matters), saves it with
``save_model_to_zip`` and predicts; ``{"load": path}`` predicts with a zip
(mlip's ``load_model_from_zip``). The weights are float64 and JAX runs in
float64. The answer, written to the request's "output" path, holds per job the
energy, forces and stress of every structure, and the names and shapes of the
parameters.
"""

import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import ase  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax.traverse_util import flatten_dict  # noqa: E402
from mlip.data.dataset_info import DatasetInfo  # noqa: E402
from mlip.data.helpers.dummy_init_graph import (  # noqa: E402
    get_dummy_graph_for_model_init,
)
from mlip.inference import run_batched_inference  # noqa: E402
from mlip.models import ForceField, Mace, Nequip  # noqa: E402
from mlip.models.model_io import load_model_from_zip, save_model_to_zip  # noqa: E402
from mlip.typing.properties import Properties  # noqa: E402

WEIGHT_SCALE = 1.25
WEIGHT_OFFSET = 0.1
PROPERTIES = Properties(stress=True)
MODELS = {"Nequip": Nequip, "Mace": Mace}


def _random_force_field(model, config: dict, dataset_info: DatasetInfo, seed: int):
    network = model(model.Config(**config), dataset_info)
    # ForceField.from_mlip_network, with the initialisation compiled as one
    # program (eagerly, it compiles hundreds of small ones: minutes).
    predictor = ForceField.get_predictor_class(PROPERTIES, network.config)(
        mlip_network=network,
        required_properties=PROPERTIES,
        energy_head=ForceField.get_energy_head(network.config, PROPERTIES, network),
    )
    graph = get_dummy_graph_for_model_init()
    params = jax.jit(predictor.init)(jax.random.key(seed), graph)
    rng = np.random.default_rng(seed)
    params = jax.tree.map(
        lambda x: (
            WEIGHT_SCALE * np.asarray(x, np.float64)
            + WEIGHT_OFFSET * rng.standard_normal(np.shape(x))
        ),
        params,
    )
    return ForceField(predictor, params)


def _float64(force_field: ForceField) -> ForceField:
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), force_field.params)
    return ForceField(force_field.predictor, params)


def main(request_path: str) -> None:
    with open(request_path, encoding="utf-8") as file:
        request = json.load(file)
    info = dict(request["dataset_info"])
    info["atomic_energies_map"] = {
        int(z): e0 for z, e0 in info["atomic_energies_map"].items()
    }
    dataset_info = DatasetInfo(**info)
    structures = [
        ase.Atoms(
            numbers=s["atomic_numbers"],
            positions=s["positions"],
            cell=s["cell"],
            pbc=s["pbc"],
        )
        for s in request["structures"]
    ]
    model = MODELS[request.get("model", "Nequip")]
    answers = []
    for job in request["jobs"]:
        if "load" in job:
            force_field = load_model_from_zip(model, job["load"], PROPERTIES)
        else:
            force_field = _random_force_field(
                model, job["config"], dataset_info, job["seed"]
            )
            save_model_to_zip(job["zip"], force_field)
        force_field = _float64(force_field)
        # One batch per structure: mlip batches periodic structures only with
        # periodic ones.
        predictions = [
            run_batched_inference([atoms], force_field, batch_size=1)[0]
            for atoms in structures
        ]
        answers.append(
            {
                "energy": [float(p.energy) for p in predictions],
                "forces": [np.asarray(p.forces).tolist() for p in predictions],
                "stress": [np.asarray(p.stress).tolist() for p in predictions],
                "shapes": {
                    "/".join(key): list(np.shape(value))
                    for key, value in flatten_dict(force_field.params).items()
                },
            }
        )
    with open(request["output"], "w", encoding="utf-8") as file:
        json.dump(answers, file)


if __name__ == "__main__":
    main(sys.argv[1])
