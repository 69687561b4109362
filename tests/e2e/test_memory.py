"""Padded, distinct documents do not grow a real server's memory without bound.

Before the document limits, 300 distinct 1 MB documents (comments do not count as tokens)
grew a server by ~600 MiB, never returned: graphql-core's doubly linked token chains are
only freed by full collections, and the parser and plan caches kept whole texts.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from testkit.server import rss_kib, running_server

pytestmark = pytest.mark.server

DOCUMENTS = 300


def _padded(number: int, size: int) -> str:
    """A distinct document of about ``size`` bytes, padded by a comment (one token)."""
    return f"# {number} {'x' * size}\n{{ __typename }}"


def test_distinct_padded_documents_leave_memory_bounded(tmp_path: Path) -> None:
    extra = {"GQL_CHECKOUT_READS_PER_CLIENT": "off"}
    with (
        running_server(tmp_path, extra_env=extra) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as client,
    ):
        assert server.process is not None
        headers = {"X-Merchant-Id": "00000000-0000-4000-8000-000000000001"}
        for number in range(20):  # warm up: imports, caches, allocator arenas
            client.post("/graphql", json={"query": _padded(number, 60_000)}, headers=headers)
        before = rss_kib(server.process.pid)

        for number in range(20, 20 + DOCUMENTS):
            # under the 64 KiB limit: parsed and remembered
            kept = client.post("/graphql", json={"query": _padded(number, 60_000)}, headers=headers)
            # ~900 KB (the body limit is 1 MiB): refused before it is parsed
            refused = client.post(
                "/graphql", json={"query": _padded(number, 900_000)}, headers=headers
            )
            assert kept.json() == {"data": {"__typename": "Query"}}
            assert refused.json()["errors"][0]["extensions"]["code"] == (
                "GRAPHQL_VALIDATION_FAILED"
            )
        after = rss_kib(server.process.pid)

    # The caches keep 256 documents of ~60 KB (~15 MiB of source text) and nothing of the
    # large ones; 300 of those kept whole, as before, would be ~270 MiB.
    assert after - before < 64 * 1024, f"RSS grew {(after - before) // 1024} MiB"
