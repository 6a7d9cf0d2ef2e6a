"""Preprocessed data sets: the shards give back the graphs, and the batches of
every epoch equal those of the in-memory pipeline; bad directories are named."""

import shutil

import h5py
import jax
import numpy as np
import pytest

from mlip_eqx.data import ASEAtomsReader, GraphDatasetBuilder
from mlip_eqx.data.graph_shards import InvalidShardError, ShardedGraphs
from mlip_eqx.data.preprocess import (
    PreprocessedDataError,
    load_preprocessed,
    preprocess,
)
from tests.data.test_graph_dataset_builder import make_atoms

CONFIG = GraphDatasetBuilder.Config(
    graph_cutoff_angstrom=3.5,
    batch_size=3,
    max_batch_shapes=2,
    num_batch_prefetch=0,
)


@pytest.fixture(scope="module")
def reader():
    rng = np.random.default_rng(3)
    splits = [
        [make_atoms(rng, int(n)) for n in rng.integers(2, 12, count)]
        for count in (23, 5, 4)
    ]
    return ASEAtomsReader(*splits)


@pytest.fixture(scope="module")
def preprocessed(reader, tmp_path_factory):
    directory = tmp_path_factory.mktemp("pre") / "set"
    preprocess(reader, directory, CONFIG, shard_size=4)
    return directory


def assert_same_graph(first, second):
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert np.asarray(a).dtype == np.asarray(b).dtype
    assert first.paired_edges == second.paired_edges


def test_batches_equal_those_of_the_in_memory_pipeline(reader, preprocessed):
    builder = GraphDatasetBuilder(reader, CONFIG)
    builder.prepare_datasets()
    in_memory = builder.get_splits()
    *streamed, info = load_preprocessed(preprocessed, CONFIG)
    assert info == builder.dataset_info
    assert len(list(preprocessed.glob("train/shard_*.h5"))) == 6  # 23 by 4
    for memory, stream in zip(in_memory, streamed, strict=True):
        assert len(stream.graphs) == len(memory.graphs)
        assert stream.sources == memory.sources
        assert stream.batch_shapes == memory.batch_shapes
        for index in range(len(memory.graphs)):
            assert_same_graph(stream.graphs[index], memory.graphs[index])
        for epoch in (0, 1):
            for devices in (None, 2):
                pairs = zip(
                    memory.iter_batches(epoch, devices),
                    stream.iter_batches(epoch, devices),
                    strict=True,
                )
                for expected, batch in pairs:
                    assert_same_graph(batch, expected)


def test_bad_directories_and_settings_are_named(reader, preprocessed, tmp_path):
    with pytest.raises(FileExistsError, match="already holds a preprocessed"):
        preprocess(reader, preprocessed, CONFIG)
    run = tmp_path / "training_run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "dataset_info.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"other files .*\(config.json\)"):
        preprocess(reader, run, CONFIG, overwrite=True)
    assert (run / "dataset_info.json").read_text() == "{}"
    interrupted = tmp_path / "interrupted"
    (interrupted / "train").mkdir(parents=True)
    (interrupted / "train" / "shard_00007.h5").write_bytes(b"partial")
    preprocess(reader, interrupted, CONFIG)  # an incomplete set is replaced
    assert not (interrupted / "train" / "shard_00007.h5").exists()
    assert len(load_preprocessed(interrupted, CONFIG)[0].graphs) == len(
        load_preprocessed(preprocessed, CONFIG)[0].graphs
    )
    with pytest.raises(PreprocessedDataError, match=r"not a preprocessed data set"):
        load_preprocessed(tmp_path, CONFIG)
    other_cutoff = GraphDatasetBuilder.Config(graph_cutoff_angstrom=4.0)
    with pytest.raises(PreprocessedDataError, match="graph_cutoff_angstrom=3.5"):
        load_preprocessed(preprocessed, other_cutoff)
    with pytest.raises(InvalidShardError, match="no graph shards"):
        ShardedGraphs(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "shard_00000.h5").write_bytes(b"not hdf5")
    with pytest.raises(InvalidShardError, match=r"shard_00000.h5: not a readable"):
        ShardedGraphs(broken)
    graphs = ShardedGraphs(preprocessed / "validation")
    with pytest.raises(IndexError, match="out of range"):
        graphs[len(graphs)]


def test_a_damaged_or_truncated_shard_is_named_not_read(preprocessed, tmp_path):
    """A flipped byte in a shard's edge table fails its checksum; a shard cut
    short fails its reads; both name the shard."""
    for damage in ("flip", "truncate"):
        copy = tmp_path / damage
        shutil.copytree(preprocessed / "train", copy)
        path = copy / "shard_00001.h5"
        with h5py.File(path, "r") as shard:
            offset = shard["edges"].id.get_chunk_info(0).byte_offset
        data = bytearray(path.read_bytes())
        if damage == "flip":
            data[offset + 40] ^= 0xFF
        else:
            data = data[: offset + 40]
        path.write_bytes(bytes(data))
        with pytest.raises(InvalidShardError, match="shard_00001.h5"):
            graphs = ShardedGraphs(copy)
            for index in range(len(graphs)):
                graphs[index]
