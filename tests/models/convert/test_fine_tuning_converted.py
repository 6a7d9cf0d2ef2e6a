"""A converted mace-torch model fine-tunes like one of ours: ``mlip-eqx train
--init-from converted.zip`` with a new head, refitted reference energies, frozen
interaction blocks and replayed data; an element the model lacks and a new head
that the model already has are named. Tiny models, the demo data (its elements
are the model's), one epoch.
"""

import warnings

import numpy as np
import pytest
from ase.data import atomic_numbers

pytest.importorskip("mace")
torch = pytest.importorskip("torch")

from e3nn import o3  # noqa: E402
from mace import modules  # noqa: E402

from mlip_eqx.cli import main  # noqa: E402
from mlip_eqx.data.demo import DEMO_ELEMENTS, get_demo_dataset  # noqa: E402
from mlip_eqx.models.convert.mace_torch import force_field_from_mace_torch  # noqa: E402
from mlip_eqx.models.model_io import load_model_from_zip, save_model_to_zip  # noqa: E402
from mlip_eqx.utils.trees import flatten_with_key_paths  # noqa: E402

DEMO_NUMBERS = sorted(atomic_numbers[symbol] for symbol in DEMO_ELEMENTS)
DEMO = ["--demo-structures", "24", "--epochs", "1", "--batch-size", "8"]


def converted_zip(path, elements: list[int]):
    """A tiny two-head ScaleShiftMACE of these elements, converted and saved."""
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e3nn's and mace-torch's own warnings
        model = modules.ScaleShiftMACE(
            r_max=4.0,
            num_bessel=4,
            num_polynomial_cutoff=5,
            max_ell=1,
            interaction_cls=modules.interaction_classes[
                "RealAgnosticResidualInteractionBlock"
            ],
            interaction_cls_first=modules.interaction_classes[
                "RealAgnosticResidualInteractionBlock"
            ],
            num_interactions=2,
            num_elements=len(elements),
            hidden_irreps=o3.Irreps("8x0e"),
            MLP_irreps=o3.Irreps("4x0e"),
            atomic_energies=rng.normal(-3.0, 0.5, size=(2, len(elements))),
            avg_num_neighbors=8.0,
            atomic_numbers=elements,
            correlation=2,
            gate=torch.nn.functional.silu,
            radial_MLP=[8, 8],
            heads=["pbe", "r2scan"],
            atomic_inter_scale=[1.0, 1.5],
            atomic_inter_shift=[0.0, 0.1],
        ).eval()
    force_field = force_field_from_mace_torch(model, predict_stress=False)
    save_model_to_zip(path, force_field)
    return force_field


def test_a_converted_model_fine_tunes_with_a_new_head_frozen_blocks_and_replay(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("MLIP_EQX_CACHE_DIR", str(tmp_path / "cache"))
    pretrained_zip = tmp_path / "converted.zip"
    pretrained = converted_zip(pretrained_zip, DEMO_NUMBERS)
    replay = get_demo_dataset(24).validation_path
    output = tmp_path / "run"
    command = ["train", "--init-from", str(pretrained_zip), *DEMO, "--no-plots"]
    command += ["--new-head", "mine", "--refit-atomic-energies"]
    command += ["--freeze", ".interaction.", "--replay", str(replay)]
    # The one evaluation is after the epoch, so the saved best model is trained
    # (with one at the start, the untrained one may stay the best).
    command += ["--no-training-loop.run-eval-at-start"]
    assert main(command + ["--output-dir", str(output)]) == 0

    tuned = load_model_from_zip(None, output / "model.zip")
    info, before = tuned.dataset_info, pretrained.dataset_info
    assert info.dataset_names == ("pbe", "r2scan", "mine")
    maps = info.atomic_energies_maps
    assert maps[:2] == before.atomic_energies_maps  # the pretrained heads' E0s
    assert maps[2] != maps[0]  # refitted to the new data
    frozen = changed = 0
    old = dict(flatten_with_key_paths(pretrained.params))
    for path, array in flatten_with_key_paths(tuned.params):
        if path not in old or np.shape(old[path]) != np.shape(array):
            continue  # the readouts, grown by a head
        same = np.array_equal(np.asarray(old[path]), np.asarray(array))
        if ".interaction." in path:
            assert same, path
            frozen += 1
        else:
            changed += not same
    assert frozen > 0 and changed > 0


def test_an_element_the_model_lacks_and_an_existing_head_are_named(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("MLIP_EQX_CACHE_DIR", str(tmp_path / "cache"))
    without_gold = tmp_path / "without_gold.zip"
    converted_zip(without_gold, [z for z in DEMO_NUMBERS if z != 79])
    command = ["train", *DEMO, "--output-dir", str(tmp_path / "run")]
    with pytest.raises(
        SystemExit, match=r"does not know: Au \(Z=79\).* The model is .*without_gold"
    ):
        main(command + ["--init-from", str(without_gold)])
    with pytest.raises(
        SystemExit,
        match=r"without_gold.zip: the model already has a head called 'r2scan'",
    ):
        main(command + ["--init-from", str(without_gold), "--new-head", "r2scan"])
