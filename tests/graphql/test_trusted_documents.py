"""Trusted documents (GQL_CHECKOUT_TRUSTED_DOCUMENTS): callers without an API key run only
the listed documents; an API key may still send any (graphql/persisted.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.settings import Settings, SettingsError
from testkit.clock import Clock
from testkit.documents import create_session
from testkit.merchants import MerchantCredentials

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

LISTED = "query Poll($id: ID!) { checkoutSession(id: $id) { checkoutSessionStatus } }"
DIGEST = hashlib.sha256(LISTED.encode()).hexdigest()
NOT_FOUND = ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.fixture
async def trusted(
    app: Starlette, settings: Settings, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database, with one trusted document."""
    locked = create_app(replace(settings, trusted_documents={DIGEST: LISTED}), clock=clock)
    transport = httpx.ASGITransport(app=locked)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await locked.state.container.stop()


def _codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


@pytest.mark.parametrize(
    "naming",
    [
        {"documentId": f"sha256:{DIGEST}"},
        {"documentId": DIGEST},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": DIGEST}}},
        {"query": LISTED},
    ],
    ids=["document-id", "bare-hex", "persisted-query", "the-document-itself"],
)
@pytest.mark.anyio
@sqlite_only
async def test_a_listed_document_runs_for_a_caller_without_an_api_key(
    client: httpx.AsyncClient,
    trusted: httpx.AsyncClient,
    merchant: MerchantCredentials,
    naming: dict[str, object],
) -> None:
    session = await create_session(client, merchant.api_key)
    body = {**naming, "variables": {"id": session["id"]}}

    response = await trusted.post("/graphql", json=body, headers=merchant.read_headers)

    assert response.json() == {"data": {"checkoutSession": {"checkoutSessionStatus": "INITIATED"}}}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Bearer a.b.c"}],
    ids=["none", "a-bad-key", "an-hcp-token"],
)
@pytest.mark.anyio
@sqlite_only
async def test_any_other_document_is_refused_unparsed(
    trusted: httpx.AsyncClient, merchant: MerchantCredentials, headers: dict[str, str]
) -> None:
    # Not even GraphQL: a parse would say GRAPHQL_PARSE_FAILED.
    response = await trusted.post(
        "/graphql", json={"query": "{ not graphql"}, headers={**merchant.read_headers, **headers}
    )
    unknown = await trusted.post(
        "/graphql", json={"documentId": "sha256:" + "0" * 64}, headers=merchant.read_headers
    )

    assert response.status_code == 200
    assert _codes(response) == NOT_FOUND
    assert _codes(unknown) == NOT_FOUND


@pytest.mark.anyio
@sqlite_only
async def test_an_api_key_may_send_any_document(
    client: httpx.AsyncClient, trusted: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    query = "query($id: ID!) { checkoutSession(id: $id) { id } }"

    response = await trusted.post(
        "/graphql",
        json={"query": query, "variables": {"id": session["id"]}},
        headers=merchant.write_headers,
    )

    assert response.json() == {"data": {"checkoutSession": {"id": session["id"]}}}


def test_a_manifest_whose_hash_is_not_its_documents_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({"0" * 64: LISTED}))
    good = tmp_path / "good.json"
    good.write_text(json.dumps({DIGEST: LISTED}))

    with pytest.raises(SettingsError, match="not the SHA-256"):
        Settings.from_env({"GQL_CHECKOUT_TRUSTED_DOCUMENTS": str(manifest)})
    assert Settings.from_env({"GQL_CHECKOUT_TRUSTED_DOCUMENTS": str(good)}).trusted_documents == {
        DIGEST: LISTED
    }
