"""Metrics as a person reads them: errors in meV units, with the unit in the name.

Steps, loggers' records and ``metrics.jsonl`` keep the library's units (eV, eV/Å,
eV/Å³). What is printed for people (tables, log lines, the CLI's summary) shows the
error metrics (``mae_``, ``rmse_``, ``q95_`` of energies, forces and stress) in
meV units, e.g. ``mae_f`` 0.0231 becomes ``mae_f (meV/Å)`` 23.1. Other metrics
(loss, relative errors, rates, counts) are shown as they are.
"""

ERROR_PREFIXES = ("mae_", "rmse_", "q95_")

# Quantity suffix of an error metric -> (display unit, factor from library units).
DISPLAY_UNITS = {
    "f": ("meV/Å", 1000.0),
    "e": ("meV", 1000.0),
    "e_per_atom": ("meV/atom", 1000.0),
    "stress": ("meV/Å³", 1000.0),
}


def display_unit(name: str) -> tuple[str, float] | None:
    """The display unit and factor of a metric name, or None if it is shown as
    it is (e.g. ``"mae_f" -> ("meV/Å", 1000.0)``, ``"loss" -> None``)."""
    for prefix in ERROR_PREFIXES:
        if name.startswith(prefix):
            return DISPLAY_UNITS.get(name[len(prefix) :])
    return None


def for_display(name: str, value):
    """``(name with its unit, value in that unit)`` for people to read."""
    unit = display_unit(name)
    if unit is None or not isinstance(value, int | float):
        return name, value
    label, factor = unit
    return f"{name} ({label})", value * factor


SUMMARY_METRICS = ("mae_e_per_atom", "mae_f", "rmse_f", "mae_e", "rmse_e", "mae_stress")


def summarize_metrics(
    metrics: dict[str, float], names: tuple[str, ...] = SUMMARY_METRICS
) -> str:
    """The metrics of ``names`` that ``metrics`` has, in display units, in one
    line (e.g. ``"mae_f (meV/Å) 23.1, mae_e (meV) 4.2"``)."""
    shown = [for_display(name, metrics[name]) for name in names if name in metrics]
    return ", ".join(f"{label} {value:.4g}" for label, value in shown)
