"""RepeatMemo: a value is kept from a key's second call on, the oldest evicted first."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gql_checkout.domain.memo import RepeatMemo


class Counted:
    """A function that returns a new object per call and counts its calls by key."""

    def __init__(self) -> None:
        self.calls: Counter[object] = Counter()

    def __call__(self, key: object) -> list[object]:
        self.calls[key] += 1
        return [key]


def test_a_value_is_kept_from_the_second_call_on() -> None:
    function = Counted()
    memo = RepeatMemo(function, 4)
    first = memo("a")
    assert len(memo) == 0  # asked for once: not kept
    second = memo("a")
    assert len(memo) == 1
    assert memo("a") is second is not first
    assert function.calls["a"] == 2


# Small ints hash to themselves: keys of distinct slots, whatever PYTHONHASHSEED is.


def test_keys_asked_for_once_keep_nothing() -> None:
    function = Counted()
    memo = RepeatMemo(function, 4)
    for key in range(1, 1_001):
        assert memo(key) == [key]
    assert len(memo) == 0
    assert sum(function.calls.values()) == 1_000


def test_keys_that_share_a_slot_are_kept_early() -> None:
    function = Counted()
    memo = RepeatMemo(function, 4)  # 64 slots
    assert memo(64) == [64]
    assert memo(128) == [128]  # 64 marked its slot: kept at once
    assert memo(128) == [128]
    assert memo(64) == [64]
    assert function.calls == {64: 2, 128: 1}


def test_keys_polled_in_turn_are_all_kept() -> None:
    function = Counted()
    memo = RepeatMemo(function, 500)
    keys = [f"session {number}" for number in range(500)]
    for _ in range(3):
        for key in keys:
            memo(key)
    assert len(memo) == 500
    assert set(function.calls.values()) <= {1, 2}  # 1: kept early


def test_the_oldest_kept_value_is_evicted_first() -> None:
    function = Counted()
    memo = RepeatMemo(function, 2)
    for key in (1, 1, 2, 2, 1, 3, 3):  # 3 kept: 1, kept first, goes
        memo(key)
    assert len(memo) == 2
    calls = function.calls.copy()
    memo(2)
    memo(3)
    assert function.calls == calls  # both answered from the memo
    memo(1)
    assert function.calls[1] == calls[1] + 1


class SameHash:
    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SameHash) and other.name == self.name


def test_keys_with_one_hash_keep_their_own_values() -> None:
    memo: RepeatMemo[SameHash, str] = RepeatMemo(lambda key: key.name, 8)
    one, two = SameHash("one"), SameHash("two")
    assert memo(one) == "one"
    assert memo(two) == "two"  # its hash was noted by one's call: kept at once
    assert memo(one) == "one"
    assert memo(two) == "two"
    assert memo(one) == "one"


def test_a_memo_keeps_at_least_one_value() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RepeatMemo(str, 0)


@given(st.lists(st.integers(min_value=-20, max_value=20), max_size=200), st.integers(1, 6))
def test_answers_are_the_functions_and_the_size_is_bounded(keys: list[int], size: int) -> None:
    memo: RepeatMemo[int, int] = RepeatMemo(lambda key: key * 3, size)
    for key in keys:
        assert memo(key) == key * 3
        assert len(memo) <= size
