"""``mlip_eqx.workflows.simulate``: outputs checked before any work, the
trajectory written as the snapshots are recorded and kept when a run stops."""

import ase.build
import ase.io
import numpy as np
import pytest

from mlip_eqx.data.chemical_system import InvalidStructureError
from mlip_eqx.models.model_io import save_model_to_zip
from mlip_eqx.utils.config import ConfigError
from mlip_eqx.workflows import simulate as simulate_module
from mlip_eqx.workflows.evaluate import EvaluateSettings, evaluate
from mlip_eqx.workflows.simulate import SimulateSettings, simulate
from tests.helpers.models import force_field


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny model zip in a run-like directory and a copper cell."""
    folder = tmp_path_factory.mktemp("simulate")
    (folder / "run").mkdir()
    save_model_to_zip(folder / "run" / "model.zip", force_field("mace-tiny"))
    structure = folder / "cell.xyz"
    ase.io.write(structure, ase.build.bulk("Cu", "fcc", a=3.6, cubic=True))
    return folder


def test_bad_outputs_are_refused_before_any_work(files):
    structure = files / "cell.xyz"
    before = structure.read_bytes()
    settings = dict(model=str(files / "missing.zip"), structure=str(structure))
    cases = [
        (files / "plot.png", ValueError, "written as extxyz"),
        (structure, ValueError, "would replace an input file"),
        (files / "nowhere" / "md.xyz", FileNotFoundError, "does not exist"),
    ]
    for output, error, message in cases:
        with pytest.raises(error, match=message):
            simulate(SimulateSettings(**settings, output=str(output)))
    assert structure.read_bytes() == before
    with pytest.raises(FileNotFoundError, match="missing.zip: no such model zip"):
        simulate(SimulateSettings(**settings, output=str(files / "md.xyz")))
    with pytest.raises(FileNotFoundError, match="a directory without model.zip"):
        simulate(SimulateSettings(**settings | {"model": str(files)}))


def test_an_interrupted_run_keeps_its_snapshots(files, monkeypatch):
    """SIGINT/SIGTERM (a KeyboardInterrupt) at the third snapshot: the
    trajectory (ASE's .traj format, from its suffix) holds all three; the
    model is given as the run directory."""

    def interrupting_logger(num_steps):
        def log(state):
            if state.step >= 4:
                raise KeyboardInterrupt

        return log

    monkeypatch.setattr(simulate_module, "_progress_logger", interrupting_logger)
    output = files / "md.traj"
    settings = SimulateSettings(
        model=str(files / "run"),
        structure=str(files / "cell.xyz"),
        output=str(output),
        engine="ase",
        steps=10,
        snapshot_interval=2,
        plots=False,
    )
    with pytest.raises(KeyboardInterrupt):
        simulate(settings)
    frames = ase.io.read(output, index=":")
    assert len(frames) == 3  # steps 0, 2 and 4
    assert not np.allclose(frames[0].positions, frames[-1].positions)
    assert np.all(np.isfinite(frames[-1].get_forces()))


def test_evaluate_checks_its_output_directory_first(files):
    below_a_file = files / "cell.xyz" / "evaluation"
    settings = EvaluateSettings(
        model=str(files / "run"),
        data=(str(files / "missing.xyz"),),
        output_dir=str(below_a_file),
    )
    with pytest.raises(PermissionError, match="cannot write there"):
        evaluate(settings)


def test_overlapping_atoms_and_an_infinite_timestep_are_refused(files):
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions[1] = atoms.positions[0] + [0.05, 0.0, 0.0]
    overlapping = files / "overlapping.xyz"
    ase.io.write(overlapping, atoms)
    settings = dict(model=str(files / "run"), output=str(files / "md.xyz"))
    with pytest.raises(InvalidStructureError, match="closer than"):
        simulate(SimulateSettings(**settings, structure=str(overlapping)))
    with pytest.raises(ConfigError, match="timestep.*a finite number > 0"):
        SimulateSettings(**settings, structure=str(overlapping), timestep=np.inf)
    too_hot = SimulateSettings(**settings, structure=str(overlapping), temperature=1e7)
    with pytest.raises(ConfigError, match="1e[+]07 K is at or above 1e[+]06 K"):
        simulate_module.SimulationConfig(**too_hot.simulation_fields())
