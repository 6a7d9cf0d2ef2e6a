"""Running a test script in a fresh Python process (e.g. with more CPU devices)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_script(script: str, *arguments: str, timeout: float = 600) -> str:
    """Runs ``script`` with ``python -c`` in the repository root; returns its
    standard output and fails the test (with the end of stderr) if it fails."""
    result = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
