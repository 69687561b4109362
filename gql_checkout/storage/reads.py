"""The reads outside transactions: sessions (with their current children) and merchant
profiles by id, through the engine. ``sqlite_reads.SqliteReads`` is the same interface on
an SQLite file, run on the event loop; the container picks one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from gql_checkout.domain.checkout_sessions import CheckoutSession
from gql_checkout.domain.merchants import Merchant, MerchantProfile
from gql_checkout.storage import repository
from gql_checkout.storage.engine import sqlite_file
from gql_checkout.storage.sqlite_reads import SqliteReads


class Reads(Protocol):
    async def sessions(self, ids: Sequence[UUID]) -> dict[UUID, CheckoutSession]:
        """The sessions found, and their current children, by id."""

    async def profiles(self, ids: Sequence[UUID]) -> dict[UUID, MerchantProfile]:
        """The merchants' profiles found, by merchant id."""

    async def merchants_by_api_key_hash(self, hashes: Sequence[str]) -> dict[str, Merchant]:
        """The merchants found, by the hash of their API key."""

    def close(self) -> None:
        """Releases what the reader holds beyond the engine."""


class EngineReads:
    """Each read a statement on a pooled connection of the engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        # Autocommit: each read is one statement, its own snapshot; no BEGIN and ROLLBACK
        # round trips around it.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def sessions(self, ids: Sequence[UUID]) -> dict[UUID, CheckoutSession]:
        async with self._engine.connect() as conn:
            return await repository.get_sessions_with_current_children(
                conn, checkout_session_ids=ids
            )

    async def profiles(self, ids: Sequence[UUID]) -> dict[UUID, MerchantProfile]:
        async with self._engine.connect() as conn:
            return await repository.get_merchant_profiles(conn, merchant_ids=ids)

    async def merchants_by_api_key_hash(self, hashes: Sequence[str]) -> dict[str, Merchant]:
        async with self._engine.connect() as conn:
            result = await conn.execute(
                repository.MERCHANTS_BY_API_KEY_HASHES, {"ids": list(hashes)}
            )
            return repository.merchants_by_api_key_hash_from_rows(result)

    def close(self) -> None:
        """The engine's pool is the container's to dispose."""


def create_reads(engine: AsyncEngine) -> Reads:
    """SQLite's reader on the loop for a database file, else the engine's."""
    return SqliteReads(engine) if sqlite_file(engine.url) else EngineReads(engine)
