"""Section 6 of the contract: the REST shim GET /v1/checkout-sessions/{id}."""

from __future__ import annotations

import re
import uuid
from http import HTTPStatus
from typing import Any

import httpx
import pytest

from testkit.clock import Clock
from testkit.documents import (
    CANCEL_MUTATION,
    CARD,
    COMPLETE_MUTATION,
    FAIL_MUTATION,
    create_session,
    graphql,
    session_in_state,
)
from testkit.merchants import MerchantCredentials

pytestmark = pytest.mark.anyio

PROBLEM_JSON = "application/problem+json"
PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "requestId"}
DEFAULT_APPEARANCE = {
    "theme": "LIGHT",
    "primaryColor": "#0A66C2",
    "backgroundColor": "#FFFFFF",
    "textColor": "#1A1A1A",
    "fontFamily": "system-ui, sans-serif",
    "borderRadiusPx": 8,
    "logoUrl": None,
}
DEFAULT_CARD_CATEGORIES = ["VISA", "MASTERCARD", "AMERICAN_EXPRESS"]
# The request ids the middleware generates: 32 hex digits (uuid4().hex).
GENERATED_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


def _path(checkout_session_id: str) -> str:
    return f"/v1/checkout-sessions/{checkout_session_id}"


def _rendered(session: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The REST rendering of a session ``create_session`` made at the clock's start."""
    return {
        "id": session["id"],
        "checkoutSessionStatus": "INITIATED",
        "isExpired": False,
        "createdAt": "2026-01-01T12:00:00Z",
        "expiresAt": "2026-01-01T13:00:00Z",
        "amount": 1000,
        "currency": "EUR",
        "merchantReference": None,
        "paymentMethod": None,
        "metadata": {},
        "childSession": None,
        **overrides,
    }


def _problem(response: httpx.Response, status: HTTPStatus, code: str) -> dict[str, Any]:
    """Checks the problem+json frame of an error response and returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert set(body) - {"errors"} == PROBLEM_KEYS
    assert body["status"] == status
    assert body["title"] == status.phrase
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["requestId"] == response.headers["x-request-id"]
    return body


async def _mutate(
    client: httpx.AsyncClient, merchant: MerchantCredentials, document: str, **variables: Any
) -> None:
    body = await graphql(client, document, variables, merchant.write_headers)
    assert "errors" not in body, body


# --- the error table, in its order ------------------------------------------------------

FIELD_ERRORS = {
    "id-not-a-uuid": {"field": "checkoutSessionId", "message": "must be a UUID"},
    "merchant-id-missing": {"field": "X-Merchant-Id", "message": "is required"},
    "merchant-id-malformed": {"field": "X-Merchant-Id", "message": "must be a UUID"},
    "init-maybe": {"field": "init", "message": "must be true or false"},
}


@pytest.mark.parametrize("case", FIELD_ERRORS)
async def test_invalid_requests_are_400_with_field_errors(
    client: httpx.AsyncClient, merchant: MerchantCredentials, case: str
) -> None:
    # given: an existing session, so only the invalid part of the request can fail it
    session = await create_session(client, merchant.api_key)
    path = _path("not-a-uuid" if case == "id-not-a-uuid" else session["id"])
    headers = {"merchant-id-missing": {}, "merchant-id-malformed": {"X-Merchant-Id": "acme"}}

    response = await client.get(
        path + ("?init=maybe" if case == "init-maybe" else ""),
        headers=headers.get(case, merchant.read_headers),
    )

    body = _problem(response, HTTPStatus.BAD_REQUEST, "VALIDATION_ERROR")
    assert body["errors"] == [FIELD_ERRORS[case]]


@pytest.mark.parametrize("query", ["?init=", "?init", "?other=1&init=maybe"])
async def test_an_init_that_is_not_true_or_false_is_400(
    client: httpx.AsyncClient, merchant: MerchantCredentials, query: str
) -> None:
    session = await create_session(client, merchant.api_key)

    response = await client.get(_path(session["id"]) + query, headers=merchant.read_headers)

    body = _problem(response, HTTPStatus.BAD_REQUEST, "VALIDATION_ERROR")
    assert body["errors"] == [FIELD_ERRORS["init-maybe"]]


async def test_every_validation_error_is_reported_at_once(client: httpx.AsyncClient) -> None:
    response = await client.get(_path("42") + "?init=yes")

    body = _problem(response, HTTPStatus.BAD_REQUEST, "VALIDATION_ERROR")
    assert body["errors"] == [
        FIELD_ERRORS[case] for case in ("id-not-a-uuid", "merchant-id-missing", "init-maybe")
    ]


async def test_validation_comes_before_the_lookup(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    response = await client.get(
        _path(str(uuid.uuid4())) + "?init=maybe", headers=merchant.read_headers
    )

    _problem(response, HTTPStatus.BAD_REQUEST, "VALIDATION_ERROR")


async def test_an_unknown_session_is_a_whole_404_problem(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    response = await client.get(_path(str(uuid.uuid4())), headers=merchant.read_headers)

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json() == {
        "type": "/problems/session-not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "No checkout session has this id.",
        "code": "SESSION_NOT_FOUND",
        "requestId": response.headers["x-request-id"],
    }


@pytest.mark.parametrize(
    ("owner", "state", "status", "code"),
    [
        # 403 wins over the 410 and 401 the owner would get
        ("other", "open", HTTPStatus.FORBIDDEN, "FORBIDDEN"),
        ("other", "canceled", HTTPStatus.FORBIDDEN, "FORBIDDEN"),
        ("other", "expired", HTTPStatus.FORBIDDEN, "FORBIDDEN"),
        ("merchant", "canceled", HTTPStatus.GONE, "SESSION_CANCELED"),
        ("merchant", "expired", HTTPStatus.UNAUTHORIZED, "SESSION_EXPIRED"),
    ],
)
async def test_owner_then_state_decide_the_error(
    client: httpx.AsyncClient,
    clock: Clock,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
    owner: str,
    state: str,
    status: HTTPStatus,
    code: str,
) -> None:
    owning = merchant if owner == "merchant" else other_merchant
    session = await session_in_state(client, owning, state, clock)

    response = await client.get(_path(session["id"]), headers=merchant.read_headers)

    _problem(response, status, code)


async def test_expiry_is_at_expires_at_and_a_401_carries_www_authenticate(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    clock.advance(seconds=3599)
    still_open = await client.get(_path(session["id"]), headers=merchant.read_headers)

    clock.advance(seconds=1)  # now == expiresAt: expired
    response = await client.get(_path(session["id"]), headers=merchant.read_headers)

    assert still_open.status_code == HTTPStatus.OK
    _problem(response, HTTPStatus.UNAUTHORIZED, "SESSION_EXPIRED")
    assert response.headers["www-authenticate"].startswith("Bearer ")


CLOSED: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "completed": (COMPLETE_MUTATION, {"paymentMethod": CARD}, {"paymentMethod": CARD}),
    "failed": (FAIL_MUTATION, {"reason": "card declined"}, {}),
}


@pytest.mark.parametrize("status", CLOSED)
async def test_closed_sessions_are_returned_even_past_their_expiry(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials, status: str
) -> None:
    document, variables, fields = CLOSED[status]
    session = await create_session(client, merchant.api_key)
    await _mutate(client, merchant, document, id=session["id"], **variables)
    clock.advance(hours=2)

    response = await client.get(_path(session["id"]), headers=merchant.read_headers)

    assert response.status_code == HTTPStatus.OK, response.text
    assert response.json()["data"]["checkoutSession"] == _rendered(
        session, checkoutSessionStatus=status.upper(), **fields
    )


# --- the two shapes ----------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?init=false"])
async def test_without_init_appearance_and_card_categories_are_absent(
    client: httpx.AsyncClient, merchant: MerchantCredentials, query: str
) -> None:
    session = await create_session(client, merchant.api_key)

    response = await client.get(_path(session["id"]) + query, headers=merchant.read_headers)

    assert response.status_code == HTTPStatus.OK
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "data": {
            "checkoutSession": _rendered(session),
            "hcpToken": session["hcpToken"],
        }
    }


@pytest.mark.parametrize("init", ["true", "TRUE"])
async def test_init_adds_appearance_and_card_categories(
    client: httpx.AsyncClient, merchant: MerchantCredentials, init: str
) -> None:
    session = await create_session(client, merchant.api_key)

    response = await client.get(
        _path(session["id"]) + f"?init={init}", headers=merchant.read_headers
    )

    assert response.status_code == HTTPStatus.OK
    assert response.json() == {
        "data": {
            "checkoutSession": _rendered(
                session, appearance=DEFAULT_APPEARANCE, cardCategories=DEFAULT_CARD_CATEGORIES
            ),
            "hcpToken": session["hcpToken"],
        }
    }


async def test_a_child_session_is_embedded(
    client: httpx.AsyncClient, clock: Clock, merchant: MerchantCredentials
) -> None:
    parent = await create_session(client, merchant.api_key)
    clock.advance(seconds=30)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"], amount=5)

    response = await client.get(_path(parent["id"]), headers=merchant.read_headers)

    assert response.status_code == HTTPStatus.OK
    assert response.json()["data"]["checkoutSession"] == _rendered(
        parent,
        # expiresAt is min(own 13:00:30, parent's 13:00:00): a child never outlives its parent
        childSession=_rendered(child, amount=5, createdAt="2026-01-01T12:00:30Z"),
    )


# --- ETag --------------------------------------------------------------------------------


async def test_etag_round_trip(client: httpx.AsyncClient, merchant: MerchantCredentials) -> None:
    session = await create_session(client, merchant.api_key)
    path = _path(session["id"])

    first = await client.get(path, headers=merchant.read_headers)
    again = await client.get(path, headers=merchant.read_headers)
    etag = first.headers["etag"]
    not_modified = await client.get(path, headers={**merchant.read_headers, "If-None-Match": etag})
    stale = await client.get(path, headers={**merchant.read_headers, "If-None-Match": '"stale"'})

    assert re.fullmatch(r'"[^"]+"', etag), "a strong ETag: quoted, no W/ prefix"
    assert first.headers["cache-control"] == "no-cache, private"
    assert again.headers["etag"] == etag
    assert not_modified.status_code == HTTPStatus.NOT_MODIFIED
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert stale.status_code == HTTPStatus.OK
    assert stale.json() == first.json()


@pytest.mark.parametrize(
    ("document", "variables", "target"),
    [
        pytest.param(CANCEL_MUTATION, {}, "child", id="cancel-child"),
        pytest.param(COMPLETE_MUTATION, {"paymentMethod": CARD}, "child", id="complete-child"),
        pytest.param(COMPLETE_MUTATION, {"paymentMethod": CARD}, "parent", id="complete"),
        pytest.param(FAIL_MUTATION, {"reason": "declined"}, "parent", id="fail"),
    ],
)
async def test_the_etag_changes_with_the_session(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    document: str,
    variables: dict[str, Any],
    target: str,
) -> None:
    # given: a parent with a child; closing either changes what GET of the parent shows
    parent = await create_session(client, merchant.api_key)
    child = await create_session(client, merchant.api_key, parentSessionId=parent["id"])
    path = _path(parent["id"])
    before = await client.get(path, headers=merchant.read_headers)

    closed = child if target == "child" else parent
    await _mutate(client, merchant, document, id=closed["id"], **variables)
    after = await client.get(
        path, headers={**merchant.read_headers, "If-None-Match": before.headers["etag"]}
    )

    assert after.status_code == HTTPStatus.OK
    assert after.headers["etag"] != before.headers["etag"]


# --- X-Request-Id ------------------------------------------------------------------------


async def test_a_valid_request_id_is_echoed_on_success_and_error(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)
    request_id = "req-2026.01:abc_DEF"

    found = await client.get(
        _path(session["id"]), headers={**merchant.read_headers, "X-Request-Id": request_id}
    )
    missing = await client.get(
        _path(str(uuid.uuid4())), headers={**merchant.read_headers, "X-Request-Id": request_id}
    )

    assert found.headers["x-request-id"] == request_id
    assert missing.headers["x-request-id"] == request_id
    assert _problem(missing, HTTPStatus.NOT_FOUND, "SESSION_NOT_FOUND")["requestId"] == request_id


@pytest.mark.parametrize("request_id", [None, "x" * 300, "has spaces in it", "", "ümlaut"])
async def test_an_absent_or_invalid_request_id_is_generated(
    client: httpx.AsyncClient, request_id: str | None
) -> None:
    headers = {} if request_id is None else {b"X-Request-Id": request_id.encode()}

    first = await client.get(_path("not-a-uuid"), headers=headers)
    second = await client.get(_path("not-a-uuid"), headers=headers)

    body = _problem(first, HTTPStatus.BAD_REQUEST, "VALIDATION_ERROR")
    assert GENERATED_REQUEST_ID.match(first.headers["x-request-id"])
    assert body["requestId"] == first.headers["x-request-id"]
    assert second.headers["x-request-id"] != first.headers["x-request-id"]


# --- Authorization on reads --------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        ("own", HTTPStatus.OK, None),
        ("other", HTTPStatus.FORBIDDEN, "FORBIDDEN"),
        ("Bearer gqlc_sk_garbage", HTTPStatus.UNAUTHORIZED, "UNAUTHENTICATED"),
        ("Basic dXNlcjpwYXNz", HTTPStatus.UNAUTHORIZED, "UNAUTHENTICATED"),
        ("Bearer", HTTPStatus.UNAUTHORIZED, "UNAUTHENTICATED"),
    ],
)
async def test_an_api_key_on_a_read_must_be_valid_and_the_merchants(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    other_merchant: MerchantCredentials,
    authorization: str,
    status: HTTPStatus,
    code: str | None,
) -> None:
    session = await create_session(client, merchant.api_key)
    keys = {"own": merchant.api_key, "other": other_merchant.api_key}
    if authorization in keys:
        authorization = f"Bearer {keys[authorization]}"

    response = await client.get(
        _path(session["id"]), headers={**merchant.read_headers, "Authorization": authorization}
    )

    if code is None:
        assert response.status_code == status
        assert response.json()["data"]["checkoutSession"] == _rendered(session)
    else:
        _problem(response, status, code)
    if status is HTTPStatus.UNAUTHORIZED:
        assert response.headers["www-authenticate"].startswith("Bearer ")


# --- routing -----------------------------------------------------------------------------


async def test_an_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")

    body = _problem(response, HTTPStatus.NOT_FOUND, "NOT_FOUND")
    assert "errors" not in body


async def test_post_to_a_session_is_405(
    client: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    session = await create_session(client, merchant.api_key)

    response = await client.post(_path(session["id"]), headers=merchant.read_headers, json={})

    _problem(response, HTTPStatus.METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["allow"]
