"""PNG plots of a training run: learning curves and parity plots (matplotlib)."""

import os
from collections.abc import Sequence

import numpy as np

from mlip_eqx.inference.batched_inference import StructurePrediction


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "Plots need matplotlib: pip install 'mlip_eqx[plots]'."
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(records: Sequence[dict], path: str | os.PathLike) -> None:
    """Training and validation loss, and validation force MAE, per epoch.

    Args:
        records: Logged records ``{"category": ..., "epoch": ..., metric: value}``
            (as written by ``JsonLinesLogger``); TRAIN_METRICS and EVAL_METRICS
            are used.
        path: The PNG file to write.
    """
    plt = _pyplot()

    def series(category: str, key: str) -> tuple[list[int], list[float]]:
        points = [
            (r["epoch"], r[key])
            for r in records
            if r.get("category") == category and key in r
        ]
        return [p[0] for p in points], [p[1] for p in points]

    figure, (loss_axis, mae_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for category, label in (("TRAIN_METRICS", "train"), ("EVAL_METRICS", "validation")):
        epochs, values = series(category, "loss")
        loss_axis.plot(epochs, values, marker="o", label=label)
    loss_axis.set(xlabel="epoch", ylabel="loss", yscale="log", title="Loss")
    loss_axis.legend()
    epochs, values = series("EVAL_METRICS", "mae_f")
    mae_axis.plot(epochs, np.asarray(values) * 1000.0, marker="o", color="C1")
    mae_axis.set(xlabel="epoch", ylabel="force MAE (meV/Å)", title="Validation forces")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_parity(
    predictions: Sequence[StructurePrediction],
    energy_path: str | os.PathLike,
    forces_path: str | os.PathLike,
) -> None:
    """Predicted versus reference energy per atom and force components.

    Args:
        predictions: Per-structure predictions with reference labels.
        energy_path: PNG file of the energy-per-atom parity plot.
        forces_path: PNG file of the force-component parity plot.
    """
    plt = _pyplot()
    with_energy = [p for p in predictions if p.reference_energy is not None]
    reference = np.array([p.reference_energy / p.num_atoms for p in with_energy])
    predicted = np.array([p.energy / p.num_atoms for p in with_energy])
    _parity_figure(
        plt,
        reference,
        predicted,
        "energy per atom (eV)",
        energy_path,
        scale=1000.0,
        unit="meV/atom",
    )
    with_forces = [p for p in predictions if p.reference_forces is not None]
    reference = np.concatenate([p.reference_forces.ravel() for p in with_forces])
    predicted = np.concatenate([p.forces.ravel() for p in with_forces])
    _parity_figure(
        plt,
        reference,
        predicted,
        "force component (eV/Å)",
        forces_path,
        scale=1000.0,
        unit="meV/Å",
    )


def _parity_figure(plt, reference, predicted, label, path, scale, unit) -> None:
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.scatter(reference, predicted, s=4, alpha=0.5)
    if reference.size:
        low = min(reference.min(), predicted.min())
        high = max(reference.max(), predicted.max())
        axis.plot([low, high], [low, high], color="black", linewidth=0.8)
        mae = np.mean(np.abs(predicted - reference)) * scale
        axis.set_title(f"MAE {mae:.1f} {unit}")
    axis.set(xlabel=f"reference {label}", ylabel=f"predicted {label}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_simulation(state, timestep_fs: float, path: str | os.PathLike) -> None:
    """Potential (and total) energy and temperature of a simulation against time.

    Args:
        state: A :class:`~mlip_eqx.simulation.state.SimulationState` of one
            structure.
        timestep_fs: The time step in fs (the x axis is in ps).
        path: The PNG file to write.
    """
    plt = _pyplot()
    time_ps = np.asarray(state.snapshot_steps) * timestep_fs / 1000.0
    potential = np.asarray(state.potential_energy)
    figure, (energy_axis, temperature_axis) = plt.subplots(1, 2, figsize=(10, 4))
    energy_axis.plot(time_ps, potential - potential[0], label="potential")
    if state.kinetic_energy is not None:
        total = potential + np.asarray(state.kinetic_energy)
        energy_axis.plot(time_ps, total - total[0], label="total")
    energy_axis.set(xlabel="time (ps)", ylabel="energy - initial (eV)", title="Energy")
    energy_axis.legend()
    if state.temperature is not None:
        temperature_axis.plot(time_ps, np.asarray(state.temperature), color="C3")
    temperature_axis.set(
        xlabel="time (ps)", ylabel="temperature (K)", title="Temperature"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
