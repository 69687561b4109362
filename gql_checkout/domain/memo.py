"""The poll path's memo: a value is kept once its key has been asked for twice.

Pages poll the sessions being paid, every second or two, so the few rows, tokens and
ids they read are worth remembering. A key asked for once (a session read by a
report, or reads spread over a million sessions) is not: keeping it evicts a remembered
value, and that churn costs more than it saves. REST polls spread evenly over 1,000,000
sessions, paired A/B of three servers, 8 rounds (docs/performance.md): 6,538 req/s and
162 µs of CPU a request with ``functools.lru_cache`` memos, 7,381 and 144 µs with no
memos, 7,198 and 148 µs with this one (likely: evicting a row frees objects that have
long left the CPU's caches).

A key's first call only marks its hash's slot in a table of bytes (16 slots for each
value the memo keeps); a later call that finds its slot marked keeps the value. A key
whose slot another key marked is kept early, never wrong (values are found by the key
itself). The table is cleared once twice as many keys as the memo keeps have marked it:
at most 1 in 8 keys asked for once is kept, and up to twice ``maxsize`` polled keys are
seen again before a clearing. Nothing is allocated for a key asked for once. (Earlier
doorkeepers: a slot holding the last hash seen there starved polled keys that shared
one, ~14% of 5,000; an ordered dict of hashes allocates and frees two objects a miss.)

The oldest kept value goes first when the memo is full: a hit is then one dict lookup
in C (73 ns here, as fast as ``lru_cache``; an LRU's reordering in Python made it 199 ns,
~2.4 µs a REST poll), and as only keys asked for again are kept, a memo larger than the
polled sessions does not evict at all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Every poll-path memo holds this many values: more than the sessions a server's pages
# poll at once (10,000 in bench.perf), so those are never evicted.
POLLED_KEYS = 16_384


class RepeatMemo(OrderedDict[K, V]):
    """``function``'s values for up to ``maxsize`` keys; called as the function is."""

    __slots__ = ("_function", "_marked", "_marks", "_maxsize", "_slot_mask")

    # A hit is the dict's own lookup; only a miss runs Python, in ``__missing__``.
    __call__ = OrderedDict.__getitem__

    def __init__(self, function: Callable[[K], V], maxsize: int = POLLED_KEYS) -> None:
        super().__init__()
        if maxsize < 1:
            raise ValueError("a memo keeps at least one value")
        self._function = function
        self._maxsize = maxsize
        slots = 1 << (16 * maxsize - 1).bit_length()  # a power of two: a hash's slot is a mask
        self._slot_mask = slots - 1
        self._marked = bytearray(slots)
        self._marks = 0

    def __missing__(self, key: K) -> V:
        value = self._function(key)
        slot = hash(key) & self._slot_mask
        if self._marked[slot]:
            self[key] = value
            if len(self) > self._maxsize:
                self.popitem(last=False)
        else:
            self._marked[slot] = 1
            self._marks += 1
            if self._marks >= 2 * self._maxsize:
                self._marked = bytearray(len(self._marked))
                self._marks = 0
        return value
