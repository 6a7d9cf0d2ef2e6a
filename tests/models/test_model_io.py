import json
import zipfile

import equinox as eqx
import jax
import numpy as np
import pytest

from mlip_eqx.models import ForceField, Mace
from mlip_eqx.models.mlip_network import use_float_dtype
from mlip_eqx.models.model_io import load_model_from_zip, save_model_to_zip, saved_dtype
from mlip_eqx.testing.physics import make_batch, predict_graph
from mlip_eqx.testing.structures import random_system
from tests.helpers.models import DATASET_INFO
from tests.helpers.pair_network import PairNetwork

SIZES = {"n_node": 24, "n_edge": 600, "n_graph": 4}


@pytest.fixture(scope="module")
def mace_force_field():
    config = Mace.Config(
        num_layers=1,
        num_channels=8,
        l_max=1,
        correlation=2,
        readout_irreps=("4x0e", "0e"),
        atomic_energies={29: -1.0, 47: -2.0, 79: 0.5},
    )
    network = Mace(config, DATASET_INFO, key=jax.random.key(11))
    return ForceField(network, predict_stress=True)


@pytest.fixture(scope="module")
def mace_zip(mace_force_field, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "mace.zip"
    save_model_to_zip(path, mace_force_field)
    return path


def pair_force_field(hidden: int = 16) -> ForceField:
    network = PairNetwork(
        PairNetwork.Config(hidden=hidden), DATASET_INFO, key=jax.random.key(5)
    )
    return ForceField(network)


def assert_same_arrays(actual: ForceField, expected: ForceField) -> None:
    actual_leaves, actual_tree = jax.tree.flatten(eqx.filter(actual, eqx.is_array))
    expected_leaves, expected_tree = jax.tree.flatten(
        eqx.filter(expected, eqx.is_array)
    )
    assert actual_tree == expected_tree
    for a, e in zip(actual_leaves, expected_leaves):
        assert a.dtype == e.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


@pytest.mark.parametrize("model_type", [Mace, None])
def test_round_trip_gives_identical_predictions(mace_force_field, mace_zip, model_type):
    loaded = load_model_from_zip(model_type, mace_zip)
    assert type(loaded.network) is Mace
    assert loaded.config == mace_force_field.config
    assert loaded.config.atomic_energies == {29: -1.0, 47: -2.0, 79: 0.5}
    assert loaded.config.readout_irreps == ("4x0e", "0e")
    assert loaded.dataset_info == DATASET_INFO
    assert loaded.predict_stress
    assert_same_arrays(loaded, mace_force_field)
    rng = np.random.default_rng(0)
    systems = [random_system(rng, 5), random_system(rng, 7, periodic=False)]
    batch = make_batch(mace_force_field, systems, **SIZES)
    expected = predict_graph(mace_force_field, batch)
    actual = predict_graph(loaded, batch)
    for name in ("energy", "forces", "stress", "pressure"):
        np.testing.assert_array_equal(
            np.asarray(getattr(actual, name)), np.asarray(getattr(expected, name))
        )
    assert np.any(np.asarray(expected.forces) != 0)


def test_archive_contents(mace_force_field, mace_zip):
    with zipfile.ZipFile(mace_zip) as archive:
        manifest = json.loads(archive.read("mlip_eqx_model.json"))
        names = archive.namelist()
    arrays = jax.tree.leaves(eqx.filter(mace_force_field, eqx.is_array))
    assert manifest["format_version"] == 1
    assert manifest["network"] == "Mace"
    assert manifest["predict_stress"] is True
    assert manifest["config"]["atomic_energies"] == {"29": -1.0, "47": -2.0, "79": 0.5}
    assert manifest["dataset_info"] == DATASET_INFO.to_dict()
    assert len(manifest["arrays"]) == len(arrays)
    assert manifest["arrays"][0]["path"] == ".network.embedding"
    assert names == ["mlip_eqx_model.json"] + [
        f"arrays/{i:05d}.npy" for i in range(len(arrays))
    ]


def test_network_outside_the_registry_needs_its_class(tmp_path):
    force_field = pair_force_field()
    path = tmp_path / "pair.zip"
    save_model_to_zip(path, force_field)
    loaded = load_model_from_zip(PairNetwork, path)
    assert_same_arrays(loaded, force_field)
    assert not loaded.predict_stress
    with pytest.raises(
        ValueError,
        match=r"pair\.zip holds a PairNetwork.*known networks.*'Mace'.*"
        r"model_type",
    ):
        load_model_from_zip(None, path)


def test_wrong_model_type(mace_zip):
    with pytest.raises(ValueError, match=r"mace\.zip holds a Mace model, not a Pair"):
        load_model_from_zip(PairNetwork, mace_zip)


def test_truncated_archive(mace_zip, tmp_path):
    data = mace_zip.read_bytes()
    for length in (len(data) // 2, len(data) - 30, 100):
        damaged = tmp_path / "damaged.zip"
        damaged.write_bytes(data[:length])
        with pytest.raises(ValueError, match=r"damaged\.zip is damaged"):
            load_model_from_zip(Mace, damaged)


def test_corrupted_array_bytes(tmp_path):
    path = tmp_path / "pair.zip"
    save_model_to_zip(path, pair_force_field())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("arrays/00001.npy")
    data = bytearray(path.read_bytes())
    # Flip bytes of the array data (after the local header and the .npy header).
    start = info.header_offset + 30 + len(info.filename) + 128
    data[start : start + 8] = bytes(255 - b for b in data[start : start + 8])
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"pair\.zip is damaged.*CRC"):
        load_model_from_zip(PairNetwork, path)


def test_foreign_zip_and_not_a_zip(tmp_path):
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("hello.txt", "hello")
    with pytest.raises(ValueError, match=r"foreign\.zip is not a mlip_eqx model"):
        load_model_from_zip(Mace, foreign)
    text = tmp_path / "model.zip"
    text.write_text("not a zip")
    with pytest.raises(ValueError, match=r"model\.zip is damaged"):
        load_model_from_zip(Mace, text)
    with pytest.raises(FileNotFoundError):
        load_model_from_zip(Mace, tmp_path / "missing.zip")


def rewrite_manifest(path, change) -> None:
    """Rewrites the archive with ``change(manifest)`` applied to its manifest."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(entries["mlip_eqx_model.json"])
    change(manifest)
    entries["mlip_eqx_model.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def test_format_version_from_the_future_or_below_one(tmp_path):
    path = tmp_path / "pair.zip"
    save_model_to_zip(path, pair_force_field())
    rewrite_manifest(path, lambda manifest: manifest.update(format_version=2))
    with pytest.raises(ValueError, match=r"pair\.zip has model format version 2"):
        load_model_from_zip(PairNetwork, path)
    rewrite_manifest(path, lambda manifest: manifest.update(format_version=0))
    with pytest.raises(ValueError, match=r"format version 0; versions start at 1"):
        load_model_from_zip(PairNetwork, path)


def test_arrays_that_do_not_fit_the_config(tmp_path):
    path = tmp_path / "pair.zip"
    save_model_to_zip(path, pair_force_field(hidden=16))
    rewrite_manifest(path, lambda manifest: manifest["config"].update(hidden=8))
    with pytest.raises(
        ValueError, match=r"species_embedding has shape \(3, 16\).*\(3, 8\)"
    ):
        load_model_from_zip(PairNetwork, path)
    rewrite_manifest(path, lambda manifest: manifest["config"].update(hiden=16))
    with pytest.raises(ValueError, match=r"pair\.zip: invalid model.*hiden"):
        load_model_from_zip(PairNetwork, path)


def test_float64_model_needs_x64(tmp_path):
    path = tmp_path / "pair64.zip"
    with jax.enable_x64(True):
        force_field = pair_force_field()
        assert force_field.dtype == np.float64
        save_model_to_zip(path, force_field)
        assert load_model_from_zip(PairNetwork, path).dtype == np.float64
    with pytest.raises(ValueError, match=r"float64.*jax_enable_x64"):
        load_model_from_zip(PairNetwork, path)


def test_float32_model_is_widened_under_x64(tmp_path):
    path = tmp_path / "pair32.zip"
    force_field = pair_force_field()
    save_model_to_zip(path, force_field)
    with jax.enable_x64(True):
        loaded = load_model_from_zip(PairNetwork, path)
        assert loaded.dtype == np.float64
        np.testing.assert_array_equal(
            np.asarray(loaded.network.first_layer),
            np.asarray(force_field.network.first_layer).astype(np.float64),
        )


def test_failed_save_leaves_the_existing_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "pair.zip"
    original = pair_force_field(hidden=16)
    save_model_to_zip(path, original)
    before = path.read_bytes()
    calls = []

    def failing_write_array(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return write_array(*args, **kwargs)

    write_array = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", failing_write_array)
    with pytest.raises(OSError, match="disk full"):
        save_model_to_zip(path, pair_force_field(hidden=8))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pair.zip"]
    assert_same_arrays(load_model_from_zip(PairNetwork, path), original)


def test_the_manifest_records_the_dtype_and_older_archives_infer_it(tmp_path):
    path32, path64 = tmp_path / "pair32.zip", tmp_path / "pair64.zip"
    save_model_to_zip(path32, pair_force_field())
    with jax.enable_x64(True):
        save_model_to_zip(path64, pair_force_field())
    for path, dtype in ((path32, "float32"), (path64, "float64")):
        with zipfile.ZipFile(path) as archive:
            assert json.loads(archive.read("mlip_eqx_model.json"))["dtype"] == dtype
        assert saved_dtype(path) == dtype
        rewrite_manifest(path, lambda manifest: manifest.pop("dtype"))
        assert saved_dtype(path) == dtype
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    with pytest.raises(ValueError, match="not a mlip_eqx model archive"):
        saved_dtype(tmp_path / "empty.zip")


def test_float64_model_predicts_in_float32_when_asked(tmp_path):
    path = tmp_path / "pair64.zip"
    with jax.enable_x64(True):
        force_field = pair_force_field()
        save_model_to_zip(path, force_field)
        system = random_system(np.random.default_rng(3), 5)
        graph = make_batch(force_field, [system], **SIZES)
        reference = predict_graph(force_field, graph)
        loaded64 = load_model_from_zip(PairNetwork, path)
        assert loaded64.dtype == np.float64
        with pytest.raises(ValueError, match=r"float32 was asked for.*jax_enable_x64"):
            load_model_from_zip(PairNetwork, path, dtype="float32")
    with pytest.raises(
        ValueError, match=r'saved in float64.*jax_enable_x64.*"float32"'
    ):
        load_model_from_zip(PairNetwork, path)
    with pytest.raises(ValueError, match=r"asked for float64"):
        load_model_from_zip(PairNetwork, path, dtype="float64")
    loaded32 = load_model_from_zip(PairNetwork, path, dtype="float32")
    assert loaded32.dtype == np.float32
    prediction = predict_graph(loaded32, graph)
    assert prediction.energy.dtype == np.float32
    np.testing.assert_allclose(
        prediction.energy, reference.energy, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        prediction.forces, reference.forces, rtol=1e-4, atol=1e-5
    )


def test_use_float_dtype_refuses_float32_under_x64():
    use_float_dtype("float32")  # x64 is off: nothing to do
    try:
        with jax.enable_x64(True):
            with pytest.raises(ValueError, match="float32 was asked for"):
                use_float_dtype("float32")
        use_float_dtype("float64")
        assert jax.numpy.zeros(1).dtype == np.float64
    finally:
        jax.config.update("jax_enable_x64", False)
