"""A float64 training run (in a fresh process: it turns jax_enable_x64 on for the
whole process), its zip, and its resumption in float32 refused."""

import zipfile

import numpy as np
import pytest

from mlip_eqx.cli import main
from mlip_eqx.models.model_io import load_model_from_zip, saved_dtype
from tests.helpers.subprocesses import run_script

TRAIN = """
import sys
from mlip_eqx.cli import main
assert main(sys.argv[1:]) == 0
"""

TINY = (
    "--demo-structures 24 --epochs 1 --num-channels 8 --l-max 1 --correlation 2 "
    "--num-layers 1"
)


def test_float64_training_writes_a_float64_zip_and_resumes_only_in_float64(tmp_path):
    output = tmp_path / "run"
    arguments = ["train", "--output-dir", str(output), *TINY.split(), "--no-plots"]
    run_script(TRAIN, *arguments, "--dtype", "float64")
    path = output / "model.zip"
    assert saved_dtype(path) == "float64"
    with zipfile.ZipFile(path) as archive:
        arrays = [name for name in archive.namelist() if name.endswith(".npy")]
        dtypes = {np.load(archive.open(name)).dtype for name in arrays}
    assert dtypes == {np.dtype(np.float64)}
    with pytest.raises(ValueError, match=r"float64.*jax_enable_x64"):
        load_model_from_zip(None, path)
    assert load_model_from_zip(None, path, dtype="float32").dtype == np.float32
    # Resumed in this (float32) process: refused before anything runs.
    with pytest.raises(SystemExit, match="trained in float64; resume it with"):
        main([*arguments, "--resume", "--epochs", "2"])
