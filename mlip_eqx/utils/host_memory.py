"""Reusing host memory from one CPU step to the next (Linux with glibc).

XLA's CPU runtime allocates the temporary buffers of every run of a compiled
function with ``malloc``: hundreds of MiB for a training step. glibc serves each
allocation above 32 MiB with fresh pages from ``mmap`` and gives them back with
``munmap`` when they are freed, so every step page-faults on, and has the kernel
zero, all of its temporary memory again: 79,000 page faults and 170 ms of kernel
time in a 210 ms ViSNet training step of ``benchmarks/train_step.py`` on 2 cores.

:func:`reuse_host_memory` makes the memory of one step serve the next:

- glibc's ``malloc`` serves large blocks from its heap instead of ``mmap``
  (``M_MMAP_MAX = 0``) and keeps up to 2 GiB of free memory at the top of the
  heap instead of returning it (``M_TRIM_THRESHOLD``);
- JAX runs computations on one CPU device in the calling thread
  (``jax_cpu_enable_async_dispatch = False``), whose blocks come from that heap.
  With asynchronous dispatch they run on worker threads, whose ``malloc`` arenas
  hold at most 64 MiB per block and so still map and unmap the large ones.

A computation over several CPU devices runs each device on its own thread and
still page-faults (setting ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` in the
environment before Python starts makes those faults 2 MiB pages, about 120
times fewer). Peak memory is unchanged; memory freed after the peak stays with the
process for reuse instead of going back to the system.

``import mlip_eqx`` calls :func:`reuse_host_memory`. The JAX setting applies
only if no JAX computation has run yet (JAX reads it when it creates its CPU
client), so import mlip_eqx before running JAX code. Set the environment
variable ``MLIP_EQX_KEEP_HOST_MEMORY_DEFAULTS=1`` to keep glibc's and JAX's
defaults. On other systems (macOS, musl) it does nothing.
"""

import ctypes
import ctypes.util
import logging
import os
import sys

KEEP_DEFAULTS_VARIABLE = "MLIP_EQX_KEEP_HOST_MEMORY_DEFAULTS"
"""Set this environment variable to 1 to keep glibc's and JAX's defaults."""

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# Free memory at the top of the heap that malloc keeps (the largest int).
_KEPT_FREE_BYTES = 2**31 - 1


def reuse_host_memory() -> bool:
    """Keeps freed host memory for reuse by the next step (see the module
    docstring); returns whether the settings were applied (glibc found and the
    environment does not ask for the defaults)."""
    if os.environ.get(KEEP_DEFAULTS_VARIABLE, "0") == "1":
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    if not (mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, _KEPT_FREE_BYTES)):
        return False
    import jax
    from jax._src import xla_bridge

    # A private JAX function, so only used where present: it only decides a warning.
    started = getattr(xla_bridge, "backends_are_initialized", lambda: False)
    if started() and jax.default_backend() == "cpu":
        logging.getLogger("mlip_eqx").warning(
            "mlip_eqx was imported after JAX started its CPU backend (a first "
            "computation or jax.devices()), so JAX's CPU steps still run on "
            "worker threads that map and unmap their memory every step (slower "
            "training; see mlip_eqx.utils.host_memory). Import mlip_eqx before "
            "running JAX code, or set %s=1 to silence this.",
            KEEP_DEFAULTS_VARIABLE,
        )
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return True


def _glibc_mallopt():
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (present in glibc only)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt
