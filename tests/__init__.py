"""The test suite of mlip_eqx (a package, so that ``tests.helpers`` is ours even
where another distribution installs a top-level ``tests`` package)."""
