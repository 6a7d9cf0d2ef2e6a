import pytest

from mlip_eqx.data.prefetch import prefetch


def test_prefetch_yields_all_items_in_order():
    assert list(prefetch(iter(range(50)), 3)) == list(range(50))


def test_errors_reach_the_consumer_in_place():
    def items():
        yield 1
        yield 2
        raise RuntimeError("broken item 3")

    received = []
    with pytest.raises(RuntimeError, match="broken item 3"):
        for item in prefetch(items(), 1):
            received.append(item)
    assert received == [1, 2]


def test_early_stop_and_bad_buffer_size():
    iterator = prefetch(iter(range(10**6)), 2)
    assert next(iterator) == 0
    iterator.close()
    with pytest.raises(ValueError, match="buffer_size"):
        list(prefetch(iter([]), 0))
