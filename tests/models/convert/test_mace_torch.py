"""mace-torch's MACE models into ours: the same energies, forces and stress in
float64, for models with the hyperparameters of MACE-MP-0 small and medium (three
elements instead of 89 and few neighbours per atom in the normalisation: neither
changes the code path, both make the test fast and geometry-sensitive), with all
weights random. The checks whose code path does not depend on size (two heads, the
MACE class with a first block without residual, a wrong map, saving and loading
without torch, the command) use small models, shared by module fixtures, and
predict all structures (and heads) in one batch.
"""

import contextlib
import functools
import subprocess
import sys
import textwrap
import warnings

import ase
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("mace")
torch = pytest.importorskip("torch")

from e3nn import o3  # noqa: E402
from mace import data as mace_data  # noqa: E402
from mace import modules  # noqa: E402
from mace.modules import symmetric_contraction  # noqa: E402
from mace.tools import torch_geometric  # noqa: E402
from mace.tools.utils import AtomicNumberTable  # noqa: E402

from mlip_eqx.cli import main  # noqa: E402
from mlip_eqx.data.chemical_system import ChemicalSystem  # noqa: E402
from mlip_eqx.models.blocks.pair_terms import zbl_node_energies  # noqa: E402
from mlip_eqx.models.convert.mace_torch import (  # noqa: E402
    MaceTorchConversionError,
    force_field_from_mace_torch,
)
from mlip_eqx.models.force_field import ForceField  # noqa: E402
from mlip_eqx.models.inference_context import InferenceContext  # noqa: E402
from mlip_eqx.models.model_io import (  # noqa: E402
    load_model_from_zip,
    save_model_to_zip,
)
from mlip_eqx.testing.network_tests import triclinic_crystal  # noqa: E402
from mlip_eqx.testing.physics import (  # noqa: E402
    make_batch,
    make_graph,
    predict_graph,
)
from mlip_eqx.testing.structures import random_system  # noqa: E402

ELEMENTS = (1, 8, 29)
TOLERANCE = 1e-8


@contextlib.contextmanager
def both_in_float64():
    """torch's default dtype float64 and JAX's x64 on, both restored after."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with jax.enable_x64(True), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e3nn's and mace-torch's own warnings
            yield
    finally:
        torch.set_default_dtype(default)


@pytest.fixture(autouse=True, scope="module")
def float64_while_the_models_are_built():
    """The module's models are built in float64."""
    with both_in_float64():
        yield


@pytest.fixture(autouse=True)
def float64(float64_while_the_models_are_built):
    """Each test runs in float64 too: xdist may run other modules' tests (which
    reset the dtypes) between this module's on the same worker."""
    with both_in_float64():
        yield


@pytest.fixture(autouse=True, scope="module")
def contraction_matrices_built_once():
    """mace-torch's symmetric-contraction matrices computed once per irreps and
    correlation (they are constants; building them dominates building a model
    with correlation 3, and MACE-MP-0 small and medium share most of them)."""
    original = symmetric_contraction.U_matrix_real

    @functools.cache
    def cached(irreps_in: str, irreps_out: str, correlation: int, **options):
        return original(irreps_in, irreps_out, correlation, **options)

    def u_matrix(irreps_in, irreps_out, correlation, **options):
        return cached(str(irreps_in), str(irreps_out), correlation, **options)

    symmetric_contraction.U_matrix_real = u_matrix
    yield
    symmetric_contraction.U_matrix_real = original


def mace_torch_model(
    hidden_irreps: str = "128x0e",
    first_interaction: str = "RealAgnosticResidualInteractionBlock",
    interaction: str = "RealAgnosticResidualInteractionBlock",
    model_class=modules.ScaleShiftMACE,
    heads: tuple[str, ...] | None = None,
    seed: int = 0,
    **options,
):
    """A mace-torch MACE with MACE-MP-0's hyperparameters and random weights
    (every parameter drawn anew, so that a wrong map shows)."""
    rng = np.random.default_rng(seed)
    num_heads = 1 if heads is None else len(heads)
    settings = dict(
        r_max=6.0,
        num_bessel=10,
        num_polynomial_cutoff=5,
        max_ell=3,
        interaction_cls=modules.interaction_classes[interaction],
        interaction_cls_first=modules.interaction_classes[first_interaction],
        num_interactions=2,
        num_elements=len(ELEMENTS),
        hidden_irreps=o3.Irreps(hidden_irreps),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=rng.normal(size=(num_heads, len(ELEMENTS)) if heads else 3),
        avg_num_neighbors=3.0,
        atomic_numbers=list(ELEMENTS),
        correlation=3,
        gate=torch.nn.functional.silu,
        radial_MLP=[64, 64, 64],
        heads=None if heads is None else list(heads),
    )
    if model_class is modules.ScaleShiftMACE:
        settings["atomic_inter_scale"] = rng.uniform(0.5, 2.0, num_heads)
        settings["atomic_inter_shift"] = rng.normal(size=num_heads)
    model = model_class(**(settings | options))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(
                torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            )
    return model.eval()


def structures() -> list[ChemicalSystem]:
    """A periodic cell, a triclinic cell, a molecule and a molecule with close
    contacts (pairs closer than the sums of their covalent radii, where the
    ZBL repulsion acts)."""
    rng = np.random.default_rng(1)
    close_contacts = ChemicalSystem(
        atomic_numbers=np.array([8, 1, 29, 1, 8]),
        positions=np.array(
            [
                [0.0, 0.0, 0.0],
                [0.55, 0.2, 0.0],
                [-0.9, 0.8, 0.3],
                [0.3, -0.5, 0.6],
                [-0.3, 1.5, -0.7],
            ]
        ),
        cell=np.zeros((3, 3)),
        pbc=np.array([False, False, False]),
    )
    return [
        random_system(rng, 6, ELEMENTS),
        triclinic_crystal(rng, 5, ELEMENTS),
        random_system(rng, 5, ELEMENTS, periodic=False),
        close_contacts,
    ]


def torch_predictions(model, systems: list[ChemicalSystem], heads: list[str]):
    """mace-torch's energies (eV), forces (eV/Å) and stresses (eV/Å³, None for a
    molecule) of the structures, each with its head, in one batch."""
    configs = []
    for system, head in zip(systems, heads, strict=True):
        periodic = bool(np.any(system.pbc))
        atoms = ase.Atoms(
            numbers=system.atomic_numbers,
            positions=system.positions,
            cell=system.cell if periodic else None,
            pbc=system.pbc,
        )
        configs.append(mace_data.config_from_atoms(atoms, head_name=head))
    data = [
        mace_data.AtomicData.from_config(
            config,
            z_table=AtomicNumberTable(list(ELEMENTS)),
            cutoff=float(model.r_max),
            heads=list(model.heads),
        )
        for config in configs
    ]
    loader = torch_geometric.dataloader.DataLoader(data, batch_size=len(data))
    output = model(next(iter(loader)).to_dict(), compute_stress=True)
    energies = output["energy"].detach().numpy()
    forces = np.split(
        output["forces"].detach().numpy(),
        np.cumsum([len(system.atomic_numbers) for system in systems])[:-1],
    )
    stresses = [
        output["stress"].detach().numpy()[index] if np.any(system.pbc) else None
        for index, system in enumerate(systems)
    ]
    return energies, forces, stresses


def largest_relative_error(
    force_field: ForceField, model, heads: tuple[str, ...] | None = None
) -> float:
    """The largest relative difference of energy, forces and stress between the
    force field and mace-torch over :func:`structures`, once for each head (all in
    one padded batch, each graph predicted with its head)."""
    heads = heads or (str(model.heads[0]),)
    systems = structures() * len(heads)
    system_heads = [head for head in heads for _ in structures()]
    batch = make_batch(force_field, systems, n_graph=len(systems) + 1)
    names = list(force_field.dataset_info.dataset_names)
    dataset_idx = np.zeros_like(np.asarray(batch.dataset_idx))
    dataset_idx[: len(systems)] = [
        names.index(head) if len(names) > 1 else 0 for head in system_heads
    ]
    batch = eqx.tree_at(lambda graph: graph.dataset_idx, batch, dataset_idx)
    prediction = predict_graph(force_field, batch)
    energies, forces, stresses = torch_predictions(model, systems, system_heads)
    errors = []
    first_node = 0
    for index, system in enumerate(systems):
        nodes = slice(first_node, first_node + len(system.atomic_numbers))
        first_node = nodes.stop
        pairs = [
            (energies[index], prediction.energy[index]),
            (forces[index], prediction.forces[nodes]),
        ]
        if stresses[index] is not None:
            pairs.append((stresses[index], prediction.stress[index]))
        for theirs, ours in pairs:
            theirs, ours = np.asarray(theirs), np.asarray(ours)
            errors.append(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
    return max(errors)


DENSITY_BLOCKS = dict(
    first_interaction="RealAgnosticDensityInteractionBlock",
    interaction="RealAgnosticDensityResidualInteractionBlock",
)
FAMILIES = {  # the foundation models' hyperparameters (r_max 6 Å unless given)
    "MACE-MP-0 small": dict(hidden_irreps="128x0e"),
    "MACE-MP-0 medium": dict(hidden_irreps="128x0e+128x1o"),
    # MP-0b2/0b3, MPA-0, OMAT-0, MATPES: density-normalised blocks, the Agnesi
    # transform and the ZBL repulsion.
    "MACE-MPA-0 medium": dict(
        hidden_irreps="128x0e+128x1o",
        distance_transform="Agnesi",
        pair_repulsion=True,
        **DENSITY_BLOCKS,
    ),
    "MACE-OFF23 small": dict(
        hidden_irreps="96x0e",
        r_max=4.5,
        first_interaction="RealAgnosticInteractionBlock",
    ),
}


@pytest.fixture(scope="module")
def family_models() -> dict[str, tuple]:
    """Each family's (mace-torch model, converted force field), built when a
    test first asks for it (xdist may give a worker only some families)."""

    class Built(dict):
        def __missing__(self, family: str) -> tuple:
            model = mace_torch_model(**FAMILIES[family])
            self[family] = (model, force_field_from_mace_torch(model))
            return self[family]

    return Built()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_foundation_model_families_predict_as_mace_torch(family, family_models):
    model, force_field = family_models[family]
    config = force_field.config
    settings = FAMILIES[family]
    assert config.first_layer_residual == (
        "Residual"
        in settings.get("first_interaction", "RealAgnosticResidualInteractionBlock")
    )
    assert config.density_normalisation == ("interaction" in settings)
    assert config.pair_repulsion == settings.get("pair_repulsion", False)
    assert largest_relative_error(force_field, model) < TOLERANCE


# Small hyperparameters for the checks whose code path does not depend on size.
SMALL = dict(
    hidden_irreps="8x0e+8x1o",
    max_ell=2,
    correlation=2,
    num_bessel=4,
    radial_MLP=[8, 8],
    MLP_irreps=o3.Irreps("4x0e"),
)


@pytest.fixture(scope="module")
def two_heads() -> tuple:
    """A small ScaleShiftMACE with two heads, each with its own scale, shift and
    E0s: (mace-torch model, converted force field)."""
    model = mace_torch_model(heads=("pbe", "r2scan"), seed=3, **SMALL)
    return model, force_field_from_mace_torch(model)


@pytest.fixture(scope="module")
def plain_mace(tmp_path_factory) -> tuple:
    """A small ``MACE`` (no scale and shift) whose first block has no residual,
    saved with ``torch.save``: (mace-torch model, converted force field, file)."""
    model = mace_torch_model(
        first_interaction="RealAgnosticInteractionBlock",
        model_class=modules.MACE,
        **SMALL,
    )
    model_file = tmp_path_factory.mktemp("plain_mace") / "small.model"
    torch.save(model, model_file)
    return model, force_field_from_mace_torch(model), model_file


def test_zbl_repulsion_reaches_the_close_contacts(family_models):
    """The close-contact molecule has pairs within the ZBL reach (the sums of
    the covalent radii), so that the comparisons check the repulsion."""
    _, force_field = family_models["MACE-MPA-0 medium"]
    graph = make_graph(force_field, structures()[-1])
    repulsion = jax.jit(zbl_node_energies, static_argnums=4)(
        jnp.asarray(graph.edge_vectors()),
        jnp.asarray(graph.senders),
        jnp.asarray(graph.receivers),
        jnp.asarray(np.asarray(ELEMENTS)[np.asarray(graph.species)]),
        5,
    )
    assert float(np.sum(repulsion)) > 1.0  # eV


@pytest.mark.parametrize(
    "variant",
    [
        dict(distance_transform="Soft", **DENSITY_BLOCKS),
        dict(
            first_interaction="RealAgnosticDensityResidualInteractionBlock",
            interaction="RealAgnosticDensityResidualInteractionBlock",
            model_class=modules.MACE,
            pair_repulsion=True,
        ),
    ],
    ids=["soft-density", "density-residual-first-mace-zbl"],
)
def test_block_and_radial_variants_predict_as_mace_torch(variant):
    model = mace_torch_model(seed=5, **(SMALL | variant))
    force_field = force_field_from_mace_torch(model)
    assert largest_relative_error(force_field, model) < TOLERANCE


def test_mace_class_with_a_first_block_without_residual_predicts_as_mace_torch(
    plain_mace,
):
    model, force_field, _ = plain_mace
    assert not force_field.config.first_layer_residual
    assert force_field.dataset_info.scaling_stdev == 1.0
    assert largest_relative_error(force_field, model) < TOLERANCE


def test_two_heads_with_their_own_scale_shift_and_e0s_predict_as_mace_torch(
    two_heads,
):
    model, force_field = two_heads
    assert force_field.dataset_info.dataset_name == ("pbe", "r2scan")
    assert largest_relative_error(force_field, model, ("pbe", "r2scan")) < TOLERANCE
    chosen = force_field.replace_inference_context(
        InferenceContext(dataset_name="r2scan")
    )
    assert largest_relative_error(chosen, model, ("r2scan",)) < TOLERANCE


def test_a_wrong_map_is_detected(plain_mace):
    model, force_field, _ = plain_mace
    assert largest_relative_error(force_field, model) < TOLERANCE
    transposed = eqx.tree_at(
        lambda f: f.network.layers[1].interaction.linear_up.weights[0],
        force_field,
        replace_fn=lambda weight: weight.T,
    )
    assert largest_relative_error(transposed, model) > 1e-4


@pytest.fixture(scope="module")
def converted_zip(plain_mace, tmp_path_factory):
    """The zip written by ``mlip-eqx convert`` of the small MACE's file."""
    _, _, model_file = plain_mace
    output = tmp_path_factory.mktemp("converted") / "converted.zip"
    command = ["convert", "--from", "mace-torch", str(model_file)]
    assert main(command + ["--output", str(output), "--dtype", "float64"]) == 0
    return output


def test_convert_command_writes_a_zip_and_overwrites_only_when_asked(
    plain_mace, converted_zip, tmp_path
):
    model, _, model_file = plain_mace
    force_field = load_model_from_zip(None, converted_zip)
    assert largest_relative_error(force_field, model) < TOLERANCE
    command = ["convert", "--from", "mace-torch", str(model_file)]
    command += ["--output", str(converted_zip), "--dtype", "float64"]
    with pytest.raises(SystemExit, match="converted.zip exists; pass --overwrite"):
        main(command)
    converted_zip.write_bytes(b"")
    assert main(command + ["--overwrite"]) == 0
    assert eqx.tree_equal(load_model_from_zip(None, converted_zip), force_field)
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("not a model")
    with pytest.raises(SystemExit, match="notes.txt: not a torch model file"):
        main(["convert", str(not_a_model), "--output", str(tmp_path / "x.zip")])


def test_converted_model_file_saves_loads_and_predicts_without_torch(
    tmp_path, plain_mace
):
    _, converted, model_file = plain_mace
    force_field = force_field_from_mace_torch(model_file)
    assert eqx.tree_equal(force_field, converted)
    system = structures()[0]
    expected = predict_graph(force_field, make_graph(force_field, system))
    archive = tmp_path / "model.zip"
    save_model_to_zip(archive, force_field)
    script = textwrap.dedent(
        f"""
        import sys

        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "mace", "e3nn"):
                    raise ImportError(f"{{name}} is blocked")

        sys.meta_path.insert(0, NoTorch())
        import jax
        jax.config.update("jax_enable_x64", True)
        import numpy as np
        from mlip_eqx.models.model_io import load_model_from_zip
        from mlip_eqx.testing.physics import make_graph, predict_graph
        from mlip_eqx.data.chemical_system import ChemicalSystem
        system = ChemicalSystem(
            atomic_numbers=np.array({system.atomic_numbers.tolist()}),
            positions=np.array({system.positions.tolist()}),
            cell=np.array({system.cell.tolist()}),
            pbc=np.array([True, True, True]),
        )
        force_field = load_model_from_zip(None, {str(archive)!r})
        prediction = predict_graph(force_field, make_graph(force_field, system))
        print(repr(float(prediction.energy[0])))
        print(repr(np.asarray(prediction.forces).tolist()))
        assert "torch" not in sys.modules
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    energy, forces = result.stdout.strip().splitlines()[-2:]
    np.testing.assert_allclose(float(energy), float(expected.energy[0]), rtol=1e-12)
    np.testing.assert_allclose(
        np.array(eval(forces)), np.asarray(expected.forces), rtol=1e-10, atol=1e-12
    )


def test_a_file_that_is_not_a_model_is_named(tmp_path):
    text = tmp_path / "notes.model"
    text.write_text("not a model")
    with pytest.raises(MaceTorchConversionError, match="notes.model: not a torch"):
        force_field_from_mace_torch(text)
    weights = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), weights)
    with pytest.raises(MaceTorchConversionError, match="weights.pt: holds a"):
        force_field_from_mace_torch(weights)
    with pytest.raises(FileNotFoundError, match="missing.model"):
        force_field_from_mace_torch(tmp_path / "missing.model")


# A tiny model for the refusals (they come before any weight is read).
TINY = dict(hidden_irreps="8x0e", max_ell=1, correlation=1, num_bessel=4)


def test_unsupported_classes_and_options_are_named(tmp_path):
    linear = tmp_path / "linear.model"
    torch.save(torch.nn.Linear(2, 2), linear)
    with pytest.raises(MaceTorchConversionError, match="Linear models are not"):
        force_field_from_mace_torch(linear)
    mixed = mace_torch_model(
        first_interaction="RealAgnosticDensityInteractionBlock", **TINY
    )
    with pytest.raises(MaceTorchConversionError, match="mix density-normalised"):
        force_field_from_mace_torch(mixed)
    non_linear = mace_torch_model(
        interaction="RealAgnosticResidualNonLinearInteractionBlock", **TINY
    )
    with pytest.raises(
        MaceTorchConversionError,
        match="RealAgnosticResidualNonLinearInteractionBlock \\(later layer\\)",
    ):
        force_field_from_mace_torch(non_linear)
    agnesi = mace_torch_model(distance_transform="Agnesi", **TINY)
    agnesi.radial_embedding.distance_transform.q.fill_(1.0)
    with pytest.raises(MaceTorchConversionError, match="AgnesiTransform with q=1.0"):
        force_field_from_mace_torch(agnesi)
    zbl = mace_torch_model(pair_repulsion=True, heads=("a", "b"), **TINY)
    with pytest.raises(MaceTorchConversionError, match="heads of different energy"):
        force_field_from_mace_torch(zbl)
