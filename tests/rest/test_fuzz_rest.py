"""Schemathesis against the REST shim, in process, through gql_checkout/openapi.json.

Every response must be documented there (status, content type, headers, body schema)
and none may be a 5xx. The generic run fuzzes every operation with schema-valid and
schema-invalid input; the seeded runs read real sessions in every state, so the 200,
304, 403, 410 and 401 answers are reached and compared with the contract's table.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from gql_checkout.settings import Settings
from testkit.clock import Clock
from testkit.merchants import MerchantCredentials
from tests.fuzzing import CANONICAL_UUID, FUZZ_SETTINGS, UUID_LIKE, Kind, Seed, seeded_app

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SESSION_PATH = "/v1/checkout-sessions/{checkoutSessionId}"
# Valid input may be refused for its credentials or the session's state, never with a 400.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "410"]
            }
        }
    }
)
STATUS_OF = {
    Kind.OPEN: "INITIATED",
    Kind.EXPIRED: "INITIATED",
    Kind.COMPLETED: "COMPLETED",
    Kind.FAILED: "FAILED",
    Kind.CANCELED: "CANCELED",
    Kind.PARENT: "INITIATED",
    Kind.CHILD: "INITIATED",
    Kind.PAID_PARENT: "COMPLETED",
    Kind.PAID_CHILD: "COMPLETED",
}
CHILD_OF = {Kind.PARENT: Kind.CHILD, Kind.PAID_PARENT: Kind.PAID_CHILD}
# The seeded runs send real credentials and ids that may be invalid on purpose, and
# assert the exact answer themselves; these two checks would judge them as generated.
SEEDED_EXCLUSIONS = [ignored_auth, positive_data_acceptance]


@pytest.fixture
def fuzzed(settings: Settings, clock: Clock) -> tuple[OpenApiSchema, Seed]:
    app, seed = seeded_app(settings, clock)
    # Loaded from the app itself: what is fuzzed is what /openapi.json serves.
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG), seed


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(
    fuzzed: tuple[OpenApiSchema, Seed], mode: GenerationMode
) -> None:
    schema, _seed = fuzzed

    @FUZZ_SETTINGS
    @given(case=schema.as_strategy(mode))
    def check(case: Case[Any]) -> None:
        case.call_and_validate()

    check()


def _expected_read(seed: Seed, case: Case[Any]) -> tuple[int, str | None]:
    """The contract's answer to a read of a seeded (or unknown) id: (status, code)."""
    reader = case.headers["X-Merchant-Id"] if case.headers else None
    authorization = case.headers.get("Authorization") if case.headers else None
    checkout_session_id = case.path_parameters["checkoutSessionId"] if case.path_parameters else ""
    credentials = {
        seed.merchant.merchant_id: seed.merchant,
        seed.other_merchant.merchant_id: seed.other_merchant,
    }
    if not CANONICAL_UUID.fullmatch(checkout_session_id):
        return 400, "VALIDATION_ERROR"
    if authorization is not None:
        keys = {f"Bearer {c.api_key}": c for c in credentials.values()}
        if authorization not in keys:
            return 401, "UNAUTHENTICATED"
        if keys[authorization].merchant_id != reader:
            return 403, "FORBIDDEN"
    if checkout_session_id == str(seed.foreign_session.id):
        owner = seed.other_merchant.merchant_id
        return (200, None) if reader == owner else (403, "FORBIDDEN")
    kind = seed.kind_of(checkout_session_id)
    if kind is None:
        return 404, "SESSION_NOT_FOUND"
    if reader != seed.merchant.merchant_id:
        return 403, "FORBIDDEN"
    code = {401: "SESSION_EXPIRED", 410: "SESSION_CANCELED"}.get(kind.read_status)
    return kind.read_status, code


def _check_session_body(seed: Seed, case: Case[Any], body: dict[str, Any]) -> None:
    rendered = body["data"]["checkoutSession"]
    assert case.path_parameters is not None
    assert rendered["id"] == case.path_parameters["checkoutSessionId"]
    # Generated as a boolean, or already serialised to its query-string form.
    init = str((case.query or {}).get("init")).lower() == "true"
    assert ("appearance" in rendered) is init
    assert ("cardCategories" in rendered) is init
    kind = seed.kind_of(rendered["id"])
    if kind is None:  # the foreign session
        return
    assert rendered["checkoutSessionStatus"] == STATUS_OF[kind]
    child = CHILD_OF.get(kind)
    expected_child = str(seed.sessions[child].id) if child else None
    assert (rendered["childSession"] or {}).get("id") == expected_child


def test_reads_of_seeded_sessions_answer_as_the_contract_says(
    fuzzed: tuple[OpenApiSchema, Seed],
) -> None:
    schema, seed = fuzzed
    operation = schema[SESSION_PATH]["GET"]
    readers: list[MerchantCredentials] = [seed.merchant, seed.other_merchant]
    ids = st.one_of(st.sampled_from(seed.session_ids), st.uuids().map(str), UUID_LIKE)

    @FUZZ_SETTINGS
    @given(data=st.data(), checkout_session_id=ids, reader=st.sampled_from(readers))
    def check(data: st.DataObject, checkout_session_id: str, reader: MerchantCredentials) -> None:
        headers = {"X-Merchant-Id": reader.merchant_id}
        key = data.draw(st.sampled_from([None, *readers]), label="API key of")
        if key is not None:
            headers["Authorization"] = f"Bearer {key.api_key}"
        case = data.draw(
            operation.as_strategy(
                path_parameters={"checkoutSessionId": checkout_session_id}, headers=headers
            )
        )

        response = case.call_and_validate(excluded_checks=SEEDED_EXCLUSIONS)

        status, code = _expected_read(seed, case)
        if status == 200 and response.status_code == 304:
            assert case.headers is not None
            assert "If-None-Match" in case.headers
            return
        answer = (response.status_code, response.json().get("code"))
        assert answer == (status, code), case.as_curl_command()
        if status == 200:
            _check_session_body(seed, case, response.json())

    check()


def test_hcp_auth_admits_exactly_the_open_sessions(fuzzed: tuple[OpenApiSchema, Seed]) -> None:
    schema, seed = fuzzed
    operation = schema["/v1/hcp/auth"]["GET"]
    tokens = st.sampled_from(sorted(seed.hcp_tokens.items()))

    @FUZZ_SETTINGS
    @given(data=st.data(), seeded=tokens)
    def check(data: st.DataObject, seeded: tuple[str, str]) -> None:
        checkout_session_id, token = seeded
        case = data.draw(operation.as_strategy(headers={"Authorization": f"Bearer {token}"}))

        response = case.call_and_validate(excluded_checks=SEEDED_EXCLUSIONS)

        kind = seed.kind_of(checkout_session_id)
        if kind is None or kind.is_open:
            assert response.status_code == 204
            assert response.headers["x-checkout-session-id"] == [checkout_session_id]
        else:
            assert response.status_code == 401
            assert response.json()["code"] == "UNAUTHENTICATED"

    check()
