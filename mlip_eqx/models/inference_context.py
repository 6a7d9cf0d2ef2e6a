"""InferenceContext: which data set's readout head and reference energies a
multi-head force field predicts with."""

import dataclasses

from mlip_eqx.data.dataset_info import DatasetInfo


@dataclasses.dataclass(frozen=True)
class InferenceContext:
    """The data set (head) that every structure is predicted with, by name or
    by index, as in the original library.

    Attach it with :meth:`ForceField.replace_inference_context
    <mlip_eqx.models.force_field.ForceField.replace_inference_context>`; the
    predictors, batched inference, the ASE calculator and the simulation engines
    then use it for every structure (instead of each graph's ``dataset_idx``).

    Attributes:
        dataset_name: A name of ``DatasetInfo.dataset_name``.
        dataset_idx: The data set's index; if both are given they must agree.
    """

    dataset_name: str | None = None
    dataset_idx: int | None = None

    def resolve(self, dataset_info: DatasetInfo) -> "InferenceContext":
        """The context with both fields filled in for ``dataset_info``'s data sets.

        Raises:
            ValueError: The name is unknown, the index out of range, the two
                disagree, or neither is given.
        """
        index = self.dataset_idx
        if self.dataset_name is not None:
            named = dataset_info.dataset_index(self.dataset_name)
            if index is not None and index != named:
                raise ValueError(
                    f"InferenceContext: dataset_name {self.dataset_name!r} is data "
                    f"set {named}, but dataset_idx={index} was given."
                )
            index = named
        if index is None:
            raise ValueError("InferenceContext: give dataset_name or dataset_idx.")
        if not 0 <= index < dataset_info.num_datasets:
            raise ValueError(
                f"InferenceContext: dataset_idx={index} is out of range; the model "
                f"has {dataset_info.num_datasets} data sets "
                f"{list(dataset_info.dataset_names)}."
            )
        return InferenceContext(dataset_info.dataset_names[index], index)
