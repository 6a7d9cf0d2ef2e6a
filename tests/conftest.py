"""Settings of the whole test session.

One JAX persistent compilation cache per test run: the same computation (e.g.
the training step of the CLI's small MACE, built anew by every job) is compiled
once for the run, not once per test, xdist worker or child process. The cache is
a fresh directory made by the first process of the run (the xdist controller)
and inherited by the workers and by the child processes the tests start; it is
deleted when the run ends, so no run reuses another's compilations.
"""

import importlib
import os
import shutil
import tempfile

import jax

# Third-party packages imported before any mlip_eqx module. jaxtyping's import
# hook (``--jaxtyping-packages=mlip_eqx``) redirects the bytecode cache while it
# executes an mlip_eqx module, so the packages that module imports first would be
# compiled from source in every test process (thousands of modules: 7 s of
# collection per worker where bytecode is not written, e.g. under
# PYTHONDONTWRITEBYTECODE). Imported here, they load from their bytecode.
THIRD_PARTY = (
    "ase.io", "ase.md", "ase.optimize", "e3nn_jax", "equinox", "flax", "h5py",
    "jax_md", "matplotlib.pyplot", "optax", "orbax.checkpoint", "scipy.integrate",
    "scipy.optimize", "scipy.signal", "scipy.stats", "sympy", "tensorstore",
    "vesin", "torch", "e3nn", "mace",  # the last three: the convert extra's
)  # fmt: skip
for _module in THIRD_PARTY:
    try:
        importlib.import_module(_module)
    except ImportError:  # an optional extra that is not installed
        pass

CACHE_VARIABLE = "MLIP_EQX_TEST_COMPILATION_CACHE"

if CACHE_VARIABLE not in os.environ:
    os.environ[CACHE_VARIABLE] = tempfile.mkdtemp(prefix="mlip_eqx_jax_cache_")
    _OWNS_CACHE = True
else:
    _OWNS_CACHE = False
_CACHE_SETTINGS = {
    "jax_compilation_cache_dir": os.environ[CACHE_VARIABLE],
    # Every program, even the 20-40 ms ones of eager operations: a child process
    # (a CLI job) compiles about 170 of them, 2.5 s that the cache turns into reads.
    "jax_persistent_cache_min_compile_time_secs": 0.0,
}
# The suite compiles hundreds of small programs and runs each a few times: LLVM
# at -O0 compiles them about 30 % faster (the test battery of the networks: 69 s
# -> 50 s), and XLA's elemental emitters in place of its MLIR fusion emitters
# halve the rest (a MACE loss gradient: 7.5 s -> 3.5 s to compile, the same
# 140 ms to run). Set before JAX starts its CPU backend; inherited by child
# processes. Benchmarks, not tests, measure speed, with XLA's defaults.
_FAST_COMPILE = (
    "--xla_backend_optimization_level=0",
    "--xla_cpu_use_fusion_emitters=false",
)
for _flag in _FAST_COMPILE:
    if _flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_flag}"
for _name, _value in _CACHE_SETTINGS.items():
    os.environ[_name.upper()] = str(_value)  # for child processes
    jax.config.update(_name, _value)


def pytest_sessionfinish(session, exitstatus):
    if _OWNS_CACHE:
        shutil.rmtree(os.environ[CACHE_VARIABLE], ignore_errors=True)


# The longest tests (child processes, whole CLI jobs, MD episodes) start first,
# so that xdist's workers do not end on them one after the other.
LONGEST_FIRST = (
    "tests/training/test_multi_process.py",
    "tests/cli/test_cli_commands.py",
    "tests/simulation/test_jax_md_engine.py",
)


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return (
            LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)
        )

    items.sort(key=rank)  # stable: the rest keep their order
