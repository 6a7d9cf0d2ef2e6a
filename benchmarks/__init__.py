"""Benchmarks of mlip_eqx, run from the repository root as ``python -m
benchmarks.<name>`` (see README.md): ``harness`` holds what they share (child
processes, peak memory, timing, tables and records), ``peers`` the code that
drives mlip and mace-torch in their own interpreters."""
