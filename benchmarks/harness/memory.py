"""The one peak-memory measure of the benchmarks: the process's peak resident set
size, VmHWM of ``/proc/self/status``.

Chosen over ``getrusage``'s ``ru_maxrss`` because VmHWM belongs to the process's
own address space and starts empty at exec, whereas Linux carries ``ru_maxrss``
over exec from the address space it replaces (with Python's vfork, the parent's
whole one), and ``RUSAGE_CHILDREN`` reports the largest of all waited-for
descendants. A child reads it itself when its function returns
(:mod:`benchmarks.harness.child`), so mlip_eqx, mlip and mace-torch are measured
alike; a script that measures phases of its own process reads it in between.
"""

from pathlib import Path


def peak_rss_mib() -> float:
    """The peak resident memory of this process so far, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")
