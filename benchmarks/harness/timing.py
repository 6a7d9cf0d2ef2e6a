"""Timing loops and the interleaving of the configurations a benchmark compares."""

import statistics
import time
from collections.abc import Callable, Iterable, Mapping


def median_seconds(
    function: Callable[[], object], repeats: int, *, warmup: int = 0
) -> tuple[float, object]:
    """The median wall time in s of ``function()`` over ``repeats`` calls after
    ``warmup`` untimed ones, and the last call's result.

    ``function`` must wait for its own results (``jax.block_until_ready``).
    """
    for _ in range(warmup):
        function()
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def alternate(
    rounds: Iterable, configurations: Mapping[str, Callable[[object], dict]]
) -> dict[str, list[dict]]:
    """Each configuration once per round (the round passed to it), in turn, so
    that the machine's drift spreads evenly over them; their results by name."""
    results: dict[str, list[dict]] = {name: [] for name in configurations}
    for round_ in rounds:
        for name, run in configurations.items():
            results[name].append(run(round_))
    return results
