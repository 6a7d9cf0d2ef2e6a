"""The config of one of mlip 0.2's networks (its zip's "config") read into the
options of ours, naming what ours cannot compute."""

from collections.abc import Mapping
from typing import Any


class MlipOptions:
    """mlip's config options, taken one by one by the caller (``values``);
    options with one supported value and options without effect are taken at
    once."""

    def __init__(
        self,
        architecture: str,
        values: Mapping[str, Any],
        fixed: Mapping[str, Any],
        ignored: tuple[str, ...],
    ):
        """Args:
        architecture: The network's name, for the error messages.
        values: mlip's config options (those absent take mlip's defaults).
        fixed: Options ours lacks, with the one value (mlip's default) it computes.
        ignored: Options without effect on the function computed.

        Raises:
            ValueError: Naming an option of ``fixed`` with another value.
        """
        self.architecture = architecture
        self.values = dict(values)
        for option, supported in fixed.items():
            value = self.values.pop(option, supported)
            if value != supported:
                raise self.unsupported(option, value, repr(supported))
        for option in ignored:
            self.values.pop(option, None)

    def unsupported(self, option: str, value: Any, supported: str) -> ValueError:
        """The error for ``option=value`` (only ``supported`` convert)."""
        return ValueError(
            f"the {self.architecture} option {option}={value!r} is not supported "
            f"(only {supported})"
        )

    def check_choices(self, choices: Mapping[str, tuple]) -> None:
        """Raises ValueError naming an option whose value is not among its
        ``choices`` (options absent are fine)."""
        for option, allowed in choices.items():
            if option in self.values and self.values[option] not in allowed:
                raise self.unsupported(option, self.values[option], str(allowed))

    def renamed(self, names: Mapping[str, str]) -> dict[str, Any]:
        """The options left, under our names (``names``: mlip's -> ours).

        Raises:
            ValueError: Naming the options left that ``names`` lacks.
        """
        unknown = sorted(set(self.values) - set(names))
        if unknown:
            raise ValueError(
                f"{self.architecture} config options {unknown} are not known"
            )
        return {names[option]: value for option, value in self.values.items()}
