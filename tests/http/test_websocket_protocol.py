"""The light queue and flag `serve`'s websocket protocol puts in place of asyncio's: they
behave as uvicorn needs them to (tests/e2e drive the protocol itself with real clients)."""

from __future__ import annotations

import asyncio

import pytest

from gql_checkout.http.websocket_protocol import Flag, Inbox

pytestmark = pytest.mark.anyio


async def test_the_inbox_hands_messages_over_in_order_and_waits_for_the_next() -> None:
    inbox = Inbox()
    inbox.put_nowait("first")
    inbox.put_nowait("second")
    assert not inbox.empty()
    assert [await inbox.get(), await inbox.get()] == ["first", "second"]
    assert inbox.empty()

    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    inbox.put_nowait("third")
    assert await reader == "third"


async def test_a_message_put_for_a_reader_that_was_cancelled_waits_for_the_next() -> None:
    inbox = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("kept")
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert await inbox.get() == "kept"


async def test_the_flag_holds_writers_while_cleared_and_releases_them_all_when_set() -> None:
    flag = Flag()
    await asyncio.wait_for(flag.wait(), timeout=1)  # set from the start: writable

    flag.clear()
    writers = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(writer.done() for writer in writers)
    flag.set()
    await asyncio.wait_for(asyncio.gather(*writers), timeout=1)
