"""Imports run one way: each subpackage imports only from the layers below it."""

import ast
from pathlib import Path

import mlip_eqx

# Lowest first; a module may import its own layer and those before it.
LAYERS = [
    {"utils"},
    {"graph"},
    {"data"},
    {"checkpoint"},
    {"models"},
    {"training"},
    {"inference", "plotting"},
    {"simulation", "testing"},
    {"workflows"},
    {"cli"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def imported_subpackages(path: Path) -> set[str]:
    """The ``mlip_eqx`` subpackages a module imports (anywhere in it)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name.split(".")[1] for name in names if name.startswith("mlip_eqx.")}


def test_every_import_points_down_the_layers():
    package = Path(mlip_eqx.__file__).parent
    upward = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).parts
        if len(parts) == 1 and parts[0] == "__init__.py":
            continue
        layer = parts[0].removesuffix(".py")
        assert layer in RANK, f"{layer} has no place in LAYERS"
        for target in imported_subpackages(path):
            if RANK[target] > RANK[layer]:
                upward.append(f"{path.relative_to(package)} imports mlip_eqx.{target}")
    assert not upward, "\n".join(upward)
