"""Where a training step spends its time: XLA op time by model part.

Usage:
    python -m benchmarks.profile_train_step [--steps 3] [--model mace|visnet|nequip]
        [--output benchmarks/results/profile_train_step.json]

The model and data are those of ``train_step`` (one CPU device). The step is
traced with ``jax.profiler``; every executed XLA op is attributed to the named scope
of the model code it came from (``layer_<i>/.../<part>``, see the ``jax.named_scope``
calls in ``mlip_eqx.models.mace`` and ``mlip_eqx.models.visnet``) through the
compiled HLO's op metadata. Times are summed over the ops (with two threads
they can overlap, so the total exceeds the wall time) and averaged over
``--steps`` traced steps.
"""

import collections
import gzip
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import demo_training_setup
from benchmarks.harness import argument_parser, write_record

PARTS = (  # the first that an op's name contains is its part
    # ViSNet (before MACE's "gather" and "scatter", which its ops' names contain)
    "attention",
    "vector_messages",
    "edge_update",
    # MACE
    "edge_embedding",
    "radial_mlp",
    "linear_up",
    "gather",
    "tensor_product",
    "radial_weighting",
    "scatter",
    "linear_down",
    "species_linear",
    "residual",
    "symmetric_contraction",
    "product_linear",
    "readouts",
)


def part_of(op_name: str) -> str:
    """'layer_<i> <part>' for an op's jax name stack, 'other' outside the model."""
    layer = re.search(r"layer_(\d+)", op_name)
    part = next((p for p in PARTS if p in op_name), "other")
    if layer is None:
        return part if part == "edge_embedding" else "outside the layers"
    return f"layer_{layer.group(1)} {part}"


def op_names(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> jax op_name metadata."""
    names = {}
    for line in hlo_text.splitlines():
        match = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = ", line)
        if match:
            meta = re.search(r'op_name="([^"]*)"', line)
            names[match.group(1)] = meta.group(1) if meta else ""
    return names


def main() -> None:
    parser = argument_parser(__doc__, "profile_train_step")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--model", choices=("mace", "visnet", "nequip"), default="mace")
    args = parser.parse_args()
    import jax

    train_step, state, batches, _ = demo_training_setup(1, args.model)
    state, _ = train_step(state, batches[0], 0)
    jax.block_until_ready(state)
    step_seconds = []
    for batch in batches[1:11]:
        start = time.perf_counter()
        state, _ = train_step(state, batch, 0)
        jax.block_until_ready(state)
        step_seconds.append(time.perf_counter() - start)
    names = op_names(train_step.lower(state, batches[0], 0).compile().as_text())
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
        for batch in batches[: args.steps]:
            state, _ = train_step(state, batch, 0)
        jax.block_until_ready(state)
        jax.profiler.stop_trace()
        trace_file = next(Path(trace_dir).rglob("*.trace.json.gz"))
        events = json.load(gzip.open(trace_file))["traceEvents"]
    per_part: collections.Counter = collections.Counter()
    for event in events:
        op = event.get("args", {}).get("hlo_op")
        if event.get("ph") == "X" and op is not None and op in names:
            per_part[part_of(names[op])] += event["dur"] / 1e3 / args.steps
    total = sum(per_part.values())
    print(f"train step: median {statistics.median(step_seconds) * 1e3:.1f} ms wall")
    print(f"XLA op time per step: {total:.1f} ms (summed over threads)")
    for part, ms in per_part.most_common():
        print(f"  {part:36s} {ms:8.1f} ms {ms / total:7.1%}")
    write_record(
        args.output,
        {
            "benchmark": "profile_train_step",
            "model": args.model,
            "step_ms_median": statistics.median(step_seconds) * 1e3,
            "op_ms_per_step": total,
            "op_ms_by_part": dict(per_part.most_common()),
        },
    )


if __name__ == "__main__":
    main()
