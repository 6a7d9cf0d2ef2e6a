"""Single-structure graphs stored in sharded HDF5 files and read back lazily.

A split is a directory of shards ``shard_00000.h5``, ``shard_00001.h5``, ...,
each holding the unpadded graphs of up to ``shard_size`` structures: one node
table (positions, forces and species, as float64 columns) and one edge table
(senders, receivers and shifts, int32 columns) of its structures concatenated,
so that a structure is two reads, with per-structure arrays (cell, sizes,
labels, weight, data set) and the offsets of each structure's nodes and edges.
:class:`ShardedGraphs` is a sequence of those graphs that holds the
per-structure arrays and reads a structure's nodes and edges from its shard
when it is asked for, so a data set larger than memory can be
batched by :class:`~mlip_eqx.data.graph_dataset.GraphDataset` (which only needs
the sizes up front) with the same batches as the in-memory graphs.
"""

import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from mlip_eqx.data.stored_graphs import StoredGraphs
from mlip_eqx.graph.graph import Graph

FORMAT_VERSION = 1
SHARD_PATTERN = "shard_{:05d}.h5"
# Columns of the node table (float64) and of the edge table (int32).
_NODE_COLUMNS = {"positions": (0, 3), "forces": (3, 6), "species": (6, 7)}
_EDGE_COLUMNS = {"senders": (0, 1), "receivers": (1, 2), "shifts": (2, 5)}
_GRAPH_FIELDS = {
    "cell": np.float64,
    "n_node": np.int32,
    "n_edge": np.int32,
    "energy": np.float64,
    "stress": np.float64,
    "weight": np.float64,
    "dataset_idx": np.int32,
    "has_energy": bool,
    "has_forces": bool,
    "has_stress": bool,
}


class InvalidShardError(ValueError):
    """A shard file is missing, damaged, or of another format."""


def write_graph_shards(
    graphs: Iterable[Graph],
    sources: Iterable[str],
    directory: str | os.PathLike,
    shard_size: int = 10_000,
) -> int:
    """Writes unpadded single-structure graphs as shards in ``directory``.

    The graphs are consumed one shard at a time, so an iterator keeps at most
    ``shard_size`` of them in memory. Each shard is written under a temporary
    name and renamed when complete; a directory that already holds shards is
    refused (nothing is overwritten).

    Args:
        graphs: Single-structure graphs with paired edges (as built by
            :func:`~mlip_eqx.data.graph_creation.graph_from_chemical_system`).
        sources: Where each structure came from (kept for error messages).
        directory: The split's directory (created).
        shard_size: Structures per shard, >= 1.

    Returns:
        The number of graphs written.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.glob("shard_*.h5")):
        raise FileExistsError(f"{directory} already holds shards; use an empty one.")
    pending: list[tuple[Graph, str]] = []
    count, shard = 0, 0
    for graph, source in zip(graphs, sources, strict=True):
        if graph.num_graphs != 1 or not graph.paired_edges:
            raise ValueError(
                f"{source}: only unpadded single-structure graphs with paired "
                "edges can be stored."
            )
        pending.append((graph, source))
        if len(pending) == shard_size:
            _write_shard(directory / SHARD_PATTERN.format(shard), pending)
            count, shard, pending = count + len(pending), shard + 1, []
    if pending or shard == 0:
        _write_shard(directory / SHARD_PATTERN.format(shard), pending)
        count += len(pending)
    return count


def _write_shard(path: Path, items: list[tuple[Graph, str]]) -> None:
    """Writes one shard under a temporary name, then renames it to ``path``."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with h5py.File(temporary, "w") as shard:
            _fill_shard(shard, items)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _fill_shard(shard: h5py.File, items: list[tuple[Graph, str]]) -> None:
    graphs = [graph for graph, _ in items]
    shard.attrs["format_version"] = FORMAT_VERSION
    for table, columns, dtype, count in (
        ("nodes", _NODE_COLUMNS, np.float64, lambda g: g.num_nodes),
        ("edges", _EDGE_COLUMNS, np.int32, lambda g: g.num_edges),
    ):
        sizes = [count(graph) for graph in graphs]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        shard[f"{table[:-1]}_offsets"] = offsets
        data = np.zeros((offsets[-1], max(end for _, end in columns.values())), dtype)
        for name, (start, end) in columns.items():
            values = _concatenated(graphs, name, dtype)
            data[:, start:end] = values.reshape(len(data), end - start)
        _checksummed(shard, table, data)
    for name, dtype in _GRAPH_FIELDS.items():
        _checksummed(shard, name, _concatenated(graphs, name, dtype))
    shard.create_dataset(
        "sources",
        data=np.array([source for _, source in items], dtype=object),
        dtype=h5py.string_dtype(),
    )


def _checksummed(shard: h5py.File, name: str, data: np.ndarray) -> None:
    """Stores ``data`` with HDF5's Fletcher-32 checksum on every chunk, so that
    a damaged or truncated shard fails its reads instead of returning wrong
    values (empty arrays cannot be chunked and are stored plainly)."""
    if data.size == 0:
        shard[name] = data
    else:
        shard.create_dataset(name, data=data, chunks=True, fletcher32=True)


def _concatenated(graphs: list[Graph], name: str, dtype) -> np.ndarray:
    if not graphs:
        shapes = {"positions": (0, 3), "forces": (0, 3), "shifts": (0, 3)}
        shapes.update(cell=(0, 3, 3), stress=(0, 3, 3))
        return np.zeros(shapes.get(name, (0,)), dtype=dtype)
    return np.concatenate([np.asarray(getattr(g, name)) for g in graphs]).astype(dtype)


class ShardedGraphs(StoredGraphs):
    """The graphs of a directory of shards, read when indexed.

    The per-structure arrays (sizes, offsets, labels, cells, sources) are held
    in memory; a structure's nodes and edges are read from its shard on every
    access (two h5py reads; the files stay open).
    """

    def __init__(self, directory: str | os.PathLike):
        """Opens the shards of ``directory``.

        Raises:
            InvalidShardError: There are no shards, or one is damaged or of
                another format version; the message names the file.
        """
        directory = Path(directory)
        paths = sorted(directory.glob("shard_*.h5"))
        if not paths:
            raise InvalidShardError(f"{directory}: no graph shards (shard_*.h5).")
        self.directory = directory
        self._files = [_open_shard(path) for path in paths]
        per_shard = [_per_graph_arrays(file) for file in self._files]
        self._per_graph = {
            name: np.concatenate([arrays[name] for arrays in per_shard])
            for name in _GRAPH_FIELDS
        }
        self._sources = [s for f in self._files for s in f["sources"].asstr()[:]]
        counts = [len(f["n_node"]) for f in self._files]
        self._shard = np.repeat(np.arange(len(counts)), counts)
        self._row = np.concatenate([np.arange(count) for count in counts])
        self._node_offsets = [f["node_offsets"][:] for f in self._files]
        self._edge_offsets = [f["edge_offsets"][:] for f in self._files]

    @property
    def num_nodes_per_graph(self) -> np.ndarray:
        """Atoms of every structure, [num_graphs]."""
        return self._per_graph["n_node"].astype(np.int64)

    @property
    def num_edges_per_graph(self) -> np.ndarray:
        """Directed edges of every structure, [num_graphs]."""
        return self._per_graph["n_edge"].astype(np.int64)

    @property
    def sources(self) -> list[str]:
        """Where every structure came from."""
        return self._sources

    def __len__(self) -> int:
        return len(self._per_graph["n_node"])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"graph index {index} out of range ({len(self)} graphs).")
        index = int(index % len(self))
        node_table, edge_table = self._tables(index)
        arrays = {
            name: node_table[:, start:end]
            for name, (start, end) in _NODE_COLUMNS.items()
        }
        arrays |= {
            name: edge_table[:, start:end]
            for name, (start, end) in _EDGE_COLUMNS.items()
        }
        for name in ("species", "senders", "receivers"):
            arrays[name] = arrays[name][:, 0].astype(np.int32)
        arrays["positions"] = np.ascontiguousarray(arrays["positions"])
        arrays["forces"] = np.ascontiguousarray(arrays["forces"])
        arrays["shifts"] = np.ascontiguousarray(arrays["shifts"])
        arrays |= {
            name: values[index : index + 1] for name, values in self._per_graph.items()
        }
        num_nodes, num_edges = len(node_table), len(edge_table)
        return Graph(
            **arrays,
            node_mask=np.ones(num_nodes, dtype=bool),
            edge_mask=np.ones(num_edges, dtype=bool),
            graph_mask=np.ones(1, dtype=bool),
            paired_edges=True,
        )

    def _tables(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The node and edge rows of structure ``index``, checked.

        Raises:
            InvalidShardError: The shard's data cannot be read (a failed
                checksum, a truncated file) or has the wrong size, naming the
                shard and the structure.
        """
        shard_index, row = self._shard[index], self._row[index]
        shard = self._files[shard_index]
        nodes = slice(*self._node_offsets[shard_index][row : row + 2])
        edges = slice(*self._edge_offsets[shard_index][row : row + 2])
        where = f"{shard.filename}: structure {row} ({self._sources[index]})"
        try:
            node_table, edge_table = shard["nodes"][nodes], shard["edges"][edges]
        except (OSError, RuntimeError) as error:
            raise InvalidShardError(
                f"{where} cannot be read; the shard is damaged ({error}). "
                "Preprocess the data again."
            ) from None
        expected = (self._per_graph["n_node"][index], self._per_graph["n_edge"][index])
        if (len(node_table), len(edge_table)) != tuple(expected):
            raise InvalidShardError(
                f"{where}: {len(node_table)} nodes and {len(edge_table)} edges "
                f"read, {expected[0]} and {expected[1]} expected; the shard is "
                "damaged (truncated?). Preprocess the data again."
            )
        return node_table, edge_table

    def close(self) -> None:
        """Closes the shard files."""
        for file in self._files:
            file.close()


def _per_graph_arrays(shard: h5py.File) -> dict[str, np.ndarray]:
    """The per-structure arrays of a shard, checked by their checksums."""
    try:
        return {name: shard[name][:] for name in _GRAPH_FIELDS}
    except (OSError, RuntimeError) as error:
        raise InvalidShardError(
            f"{shard.filename}: damaged ({error}); preprocess the data again."
        ) from None


def _open_shard(path: Path) -> h5py.File:
    try:
        shard = h5py.File(path, "r")
    except OSError as error:
        raise InvalidShardError(
            f"{path}: not a readable HDF5 file ({error})."
        ) from None
    version = shard.attrs.get("format_version")
    if version != FORMAT_VERSION:
        shard.close()
        raise InvalidShardError(
            f"{path}: graph shard format {version}, expected {FORMAT_VERSION}."
        )
    missing = [
        name
        for name in (
            "nodes",
            "edges",
            "node_offsets",
            "edge_offsets",
            *_GRAPH_FIELDS,
            "sources",
        )
        if name not in shard
    ]
    if missing:
        shard.close()
        raise InvalidShardError(f"{path}: missing datasets {missing}.")
    return shard
