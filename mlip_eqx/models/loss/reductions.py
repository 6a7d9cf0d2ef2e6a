"""Metrics that reduce exactly over batches, devices and steps.

A step does not return averages: it returns each metric as the parts that combine
exactly (sums and counts, a maximum, the values behind a quantile), and the host
turns them into numbers once, after all steps of an epoch. So a metric does not
depend on how the structures were packed into batches, on the padding, or on the
number of devices: the mean force error is the mean over every force component of
the set, the RMSE is the root of the mean squared error of the set, and a
padding-only batch adds zero to a sum and zero to its count.

Each metric declares how it reduces:

- :class:`Mean`: ``sum(total) / sum(count)``; with vectors, the sum over entries of
  ``total_i / count_i`` (a loss that adds several separately normalised terms).
- :class:`RootMean`: ``sqrt(sum(total) / sum(count))`` (RMSE, relative RMSE).
- :class:`Sum`: a count, e.g. of skipped updates.
- :class:`Last`: the value of the last step, e.g. the learning rate.
- :class:`Max`: the largest value.
- :class:`Quantile`: a quantile of all real values of the set.

Inside a step, :meth:`Metric.over_batches` reduces the batches of one device (a
leading axis) and :meth:`Metric.over_devices` reduces over the mesh axis; on the
host, :func:`reduce_metrics` merges the steps and returns plain floats.
"""

import abc
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike


def _safe_ratio(numerator: ArrayLike, denominator: ArrayLike, xp) -> ArrayLike:
    """numerator / denominator, 0 where the denominator is 0 (``xp``: np or jnp)."""
    is_zero = denominator == 0
    return xp.where(is_zero, 0.0, numerator / xp.where(is_zero, 1.0, denominator))


def _gather_over_devices(values: ArrayLike, axis_name: str) -> Array:
    """The values of every device of ``axis_name``, stacked along a new leading
    axis in device order, the same on every device (a psum of one-hot slots)."""
    values = jnp.asarray(values)
    num_devices = jax.lax.axis_size(axis_name)
    slots = jnp.zeros((num_devices,) + values.shape, values.dtype)
    slots = slots.at[jax.lax.axis_index(axis_name)].set(values)
    return jax.lax.psum(slots, axis_name)


class Metric(eqx.Module):
    """A metric in a form that combines exactly over batches, devices and steps."""

    @abc.abstractmethod
    def over_batches(self) -> "Metric":
        """Reduces a leading axis of stacked batches (inside a step)."""

    @abc.abstractmethod
    def over_devices(self, axis_name: str) -> "Metric":
        """Reduces over the devices of a mesh axis (inside ``shard_map``)."""

    @staticmethod
    @abc.abstractmethod
    def merge(items: Sequence["Metric"]) -> "Metric":
        """Combines the values of consecutive steps (on the host, numpy)."""

    @abc.abstractmethod
    def compute(self, xp=jnp) -> ArrayLike:
        """The metric's value; ``xp`` is ``jax.numpy`` (inside jit, the default)
        or ``numpy`` (on the host, in float64)."""

    def result(self) -> float:
        """The final number, computed on the host in float64."""
        host = jax.tree.map(lambda leaf: np.asarray(leaf, np.float64), self)
        return float(host.compute(np))


class Mean(Metric):
    """``sum(total) / sum(count)``, summed over entries for vector metrics.

    Attributes:
        total: Sum of the values (scalar, or one entry per term).
        count: Number (or total weight) of the values, the shape of ``total``.
    """

    total: ArrayLike
    count: ArrayLike

    def over_batches(self) -> "Mean":
        return Mean(jnp.sum(self.total, axis=0), jnp.sum(self.count, axis=0))

    def over_devices(self, axis_name: str) -> "Mean":
        return Mean(*jax.lax.psum((self.total, self.count), axis_name))

    @staticmethod
    def merge(items: Sequence["Mean"]) -> "Mean":
        return Mean(
            np.sum([np.asarray(m.total, np.float64) for m in items], axis=0),
            np.sum([np.asarray(m.count, np.float64) for m in items], axis=0),
        )

    def compute(self, xp=jnp) -> ArrayLike:
        return xp.sum(_safe_ratio(self.total, self.count, xp))


class RootMean(Metric):
    """``sqrt(sum(total) / sum(count))``: a root mean square.

    Attributes:
        total: Sum of the squared values.
        count: Number (or total weight) of the values.
    """

    total: ArrayLike
    count: ArrayLike

    def over_batches(self) -> "RootMean":
        return RootMean(jnp.sum(self.total, axis=0), jnp.sum(self.count, axis=0))

    def over_devices(self, axis_name: str) -> "RootMean":
        return RootMean(*jax.lax.psum((self.total, self.count), axis_name))

    @staticmethod
    def merge(items: Sequence["RootMean"]) -> "RootMean":
        mean = Mean.merge([Mean(m.total, m.count) for m in items])
        return RootMean(mean.total, mean.count)

    def compute(self, xp=jnp) -> ArrayLike:
        return xp.sqrt(xp.sum(_safe_ratio(self.total, self.count, xp)))


class Sum(Metric):
    """The sum of the values of every batch and step (e.g. skipped updates)."""

    value: ArrayLike

    def over_batches(self) -> "Sum":
        return Sum(jnp.sum(self.value, axis=0))

    def over_devices(self, axis_name: str) -> "Sum":
        return Sum(jax.lax.psum(self.value, axis_name))

    @staticmethod
    def merge(items: Sequence["Sum"]) -> "Sum":
        return Sum(np.sum([np.asarray(m.value, np.float64) for m in items], axis=0))

    def compute(self, xp=jnp) -> ArrayLike:
        return self.value


class Last(Metric):
    """The value of the last batch of the last device of the last step (e.g. the
    learning rate or a loss weight)."""

    value: ArrayLike

    def over_batches(self) -> "Last":
        return Last(jnp.asarray(self.value)[-1])

    def over_devices(self, axis_name: str) -> "Last":
        return Last(_gather_over_devices(self.value, axis_name)[-1])

    @staticmethod
    def merge(items: Sequence["Last"]) -> "Last":
        return items[-1]

    def compute(self, xp=jnp) -> ArrayLike:
        return self.value


class Max(Metric):
    """The largest value over every batch and step."""

    value: ArrayLike

    def over_batches(self) -> "Max":
        return Max(jnp.max(self.value, axis=0))

    def over_devices(self, axis_name: str) -> "Max":
        return Max(jax.lax.pmax(self.value, axis_name))

    @staticmethod
    def merge(items: Sequence["Max"]) -> "Max":
        return Max(np.max([np.asarray(m.value) for m in items], axis=0))

    def compute(self, xp=jnp) -> ArrayLike:
        return self.value


class Quantile(Metric):
    """A quantile of every real value of the set (exact: the values are kept).

    Attributes:
        values: The values, any shape.
        mask: True for the real values, the shape of ``values``.
        quantile: Which quantile, in [0, 1].
    """

    values: ArrayLike
    mask: ArrayLike
    quantile: float = eqx.field(static=True)

    def over_batches(self) -> "Quantile":
        return Quantile(
            jnp.reshape(self.values, -1), jnp.reshape(self.mask, -1), self.quantile
        )

    def over_devices(self, axis_name: str) -> "Quantile":
        values = _gather_over_devices(self.values, axis_name)
        mask = _gather_over_devices(self.mask, axis_name)
        return Quantile(jnp.reshape(values, -1), jnp.reshape(mask, -1), self.quantile)

    @staticmethod
    def merge(items: Sequence["Quantile"]) -> "Quantile":
        values = np.concatenate([np.reshape(m.values, -1) for m in items])
        mask = np.concatenate([np.reshape(m.mask, -1) for m in items])
        return Quantile(values, mask, items[0].quantile)

    def compute(self, xp=jnp) -> ArrayLike:
        mask = xp.asarray(self.mask, bool)
        kept = xp.where(mask, self.values, xp.nan)
        return xp.where(xp.any(mask), xp.nanquantile(kept, self.quantile), 0.0)


Metrics = dict[str, Metric]


def metrics_over_batches(metrics: Metrics) -> Metrics:
    """Reduces the leading (stacked batches) axis of every metric."""
    return {name: metric.over_batches() for name, metric in metrics.items()}


def metrics_over_devices(metrics: Metrics, axis_name: str) -> Metrics:
    """Reduces every metric over the devices of ``axis_name``."""
    return {name: metric.over_devices(axis_name) for name, metric in metrics.items()}


def reduce_metrics(steps: Sequence[Metrics]) -> dict[str, float]:
    """The numbers of the metrics of consecutive steps, merged as each declares.

    Args:
        steps: The metrics of every step (device or host arrays), in order.

    Returns:
        One float per metric name (names of the first step).
    """
    if not steps:
        return {}
    host = jax.device_get(list(steps))
    return {
        name: type(metric).merge([step[name] for step in host]).result()
        for name, metric in host[0].items()
    }


def metric_values(metrics: Metrics) -> dict[str, Array]:
    """The values of the metrics of one batch or step, as arrays (jit-compatible)."""
    return {name: metric.compute() for name, metric in metrics.items()}
