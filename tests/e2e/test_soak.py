"""A short run of bench/soak.py: mixed load on a real server, then nothing may be missing.

The second test shows the check can fail: writes the server never made, recorded as
acknowledged, must be reported as lost.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from testkit.documents import create_session
from testkit.ledger import COMPLETED, Findings, Ledger, verify
from testkit.load import NO_RATE_LIMITS
from testkit.merchants import MerchantCredentials
from testkit.server import running_server
from testkit.soak import run_soak

pytestmark = [pytest.mark.server]


def test_a_short_soak_loses_no_write_and_answers_no_5xx() -> None:
    result = run_soak(seconds=5, database="sqlite", concurrency=8, subscribers=2, seed=7)

    report = result.report()
    assert result.findings.lost_creates == [], report
    assert result.findings.lost_transitions == [], report
    assert result.stats.errors["5xx"] == 0, report
    assert result.ok, report
    # The load did what a soak must (bounds loose enough for a slow machine): it wrote,
    # raced, and watched sessions to their end.
    assert result.ledger.creates >= 20, report
    assert result.ledger.transitions >= 10, report
    assert result.stats.refusals["INVALID_STATE_TRANSITION"] >= 1, report
    assert result.stats.subscriptions_completed >= 1, report
    assert result.findings.sessions_read == result.ledger.creates


def test_the_check_reports_writes_that_are_not_there(tmp_path: Path) -> None:
    with running_server(tmp_path, extra_env=NO_RATE_LIMITS) as server:
        merchant = server.create_merchant()
        findings, real, phantom = asyncio.run(_verify_a_doctored_ledger(server.base_url, merchant))

    assert findings.lost_creates == [f"{phantom}: acknowledged create, not found"]
    assert findings.lost_transitions == [f"{real}: acknowledged COMPLETED, stored INITIATED"]
    assert not findings.ok


async def _verify_a_doctored_ledger(
    base_url: str, merchant: MerchantCredentials
) -> tuple[Findings, str, str]:
    ledger = Ledger()
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        # given: a session that exists but was never completed, and one that never existed
        real = (await create_session(client, merchant.api_key))["id"]
        phantom = str(uuid.uuid4())
        ledger.created(real, parent_id=None, at=0.0)
        ledger.transitioned(real, COMPLETED, at=0.0, payment_method=None)
        ledger.created(phantom, parent_id=None, at=0.0)

        # when
        findings, _stored = await verify(client, merchant_id=merchant.merchant_id, ledger=ledger)
    return findings, real, phantom
