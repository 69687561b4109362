"""GraphQL over HTTP: application/graphql-response+json and its status codes, queries over
GET with a preflight-forcing header, mutations over GET refused (graphql/over_http.py)."""

from __future__ import annotations

import httpx
import pytest

from testkit.documents import create_session
from testkit.merchants import MerchantCredentials

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

GRAPHQL_RESPONSE = "application/graphql-response+json"
STATUS = "query Poll($id: ID!) { checkoutSession(id: $id) { checkoutSessionStatus } }"


def _accept(value: str, merchant: MerchantCredentials) -> dict[str, str]:
    return {"Accept": value, **merchant.read_headers}


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE};q=0.5", "application/json"),
        ("*/*", "application/json"),
        ("", "application/json"),
    ],
)
async def test_the_media_type_is_the_one_the_client_prefers(
    client: httpx.AsyncClient, merchant: MerchantCredentials, accept: str, media_type: str
) -> None:
    session = await create_session(client, merchant.api_key)
    body = {"query": STATUS, "variables": {"id": session["id"]}}

    response = await client.post("/graphql", json=body, headers=_accept(accept, merchant))

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.json() == {"data": {"checkoutSession": {"checkoutSessionStatus": "INITIATED"}}}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "{ checkoutSession(id: "}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": STATUS, "variables": {"id": 4.5}}, "VALIDATION_ERROR"),
    ],
    ids=["parse", "validation", "variables"],
)
async def test_request_errors_are_400_without_data_for_graphql_response_json(
    client: httpx.AsyncClient, merchant: MerchantCredentials, body: dict[str, object], code: str
) -> None:
    strict = await client.post("/graphql", json=body, headers=_accept(GRAPHQL_RESPONSE, merchant))
    legacy = await client.post("/graphql", json=body, headers=_accept("application/json", merchant))

    assert strict.status_code == 400
    assert strict.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert "data" not in strict.json()
    assert [e["extensions"]["code"] for e in strict.json()["errors"]] == [code]
    assert legacy.status_code == 200
    assert legacy.json()["errors"] == strict.json()["errors"]


async def test_a_field_error_is_still_200_with_data(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    body = {"query": STATUS, "variables": {"id": "00000000-0000-4000-8000-000000000000"}}

    response = await client.post("/graphql", json=body, headers=_accept(GRAPHQL_RESPONSE, merchant))

    assert response.status_code == 200
    assert response.json()["data"] == {"checkoutSession": None}
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["SESSION_NOT_FOUND"]


async def test_a_query_over_get_is_answered_like_the_same_post(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    params = {"query": STATUS, "variables": f'{{"id": "{session["id"]}"}}', "operationName": "Poll"}

    got = await client.get("/graphql", params=params, headers=merchant.read_headers)
    posted = await client.post(
        "/graphql",
        json={"query": STATUS, "variables": {"id": session["id"]}, "operationName": "Poll"},
        headers=merchant.read_headers,
    )

    assert got.status_code == 200
    assert got.content == posted.content


async def test_a_mutation_over_get_is_405_and_runs_nothing(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    mutation = f'mutation {{ cancelCheckoutSession(id: "{session["id"]}") {{ id }} }}'

    response = await client.get(
        "/graphql", params={"query": mutation}, headers=merchant.write_headers
    )
    read = await client.get(f"/v1/checkout-sessions/{session['id']}", headers=merchant.read_headers)

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert read.status_code == 200  # still open


async def test_bad_json_in_get_parameters_is_a_validation_error(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    response = await client.get(
        "/graphql", params={"query": STATUS, "variables": "{nope"}, headers=merchant.read_headers
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"
