"""The committed schema.graphql is generated from the code and holds the contract's types."""

from __future__ import annotations

from pathlib import Path

import graphql
import pytest

from gql_checkout.graphql.schema import build_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"

# Section 7 of the contract: field -> (type, {argument: type}).
REQUIRED_FIELDS: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
    "CheckoutSession": {
        "id": ("ID!", {}),
        "checkoutSessionStatus": ("CheckoutSessionStatus!", {}),
        "isExpired": ("Boolean!", {}),
        "createdAt": ("DateTime!", {}),
        "expiresAt": ("DateTime!", {}),
        "amount": ("Int!", {}),
        "currency": ("String!", {}),
        "merchantReference": ("String", {}),
        "paymentMethod": ("PaymentMethod", {}),
        "childSession": ("CheckoutSession", {}),
        "parentSession": ("CheckoutSession", {}),
        "appearance": ("Appearance", {}),
        "cardCategories": ("[CardCategory!]!", {}),
        "hcpToken": ("String!", {}),
    },
    "Query": {"checkoutSession": ("CheckoutSession", {"id": "ID!"})},
    "Mutation": {
        "createCheckoutSession": ("CheckoutSession!", {"input": "CreateCheckoutSessionInput!"}),
        "cancelCheckoutSession": ("CheckoutSession!", {"id": "ID!"}),
        "completeCheckoutSession": (
            "CheckoutSession!",
            {"id": "ID!", "paymentMethod": "PaymentMethodInput!"},
        ),
        "failCheckoutSession": ("CheckoutSession!", {"id": "ID!", "reason": "String"}),
    },
    "Subscription": {"checkoutSessionUpdated": ("CheckoutSession!", {"id": "ID!"})},
}
REQUIRED_INPUT_FIELDS = {
    "CreateCheckoutSessionInput": {
        "amount": "Int!",
        "currency": "String!",
        "merchantReference": "String",
        # Non-null with a default: omitting it still means 3600.
        "expiresInSeconds": "Int!",
        "parentSessionId": "ID",
        "idempotencyKey": "String",
    },
    "PaymentMethodInput": {"type": "String!", "brand": "String", "last4": "String"},
}


@pytest.fixture(scope="module")
def committed() -> graphql.GraphQLSchema:
    return graphql.build_schema(SCHEMA_FILE.read_text())


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text() == build_schema().as_str() + "\n", (
        "schema.graphql is stale: run `gql-checkout export-schema > schema.graphql`"
    )


@pytest.mark.parametrize("type_name", REQUIRED_FIELDS)
def test_the_contracts_fields_are_in_the_schema(
    committed: graphql.GraphQLSchema, type_name: str
) -> None:
    object_type = committed.get_type(type_name)
    assert isinstance(object_type, graphql.GraphQLObjectType), f"no type {type_name}"

    found = {
        name: (
            str(object_type.fields[name].type),
            {arg: str(value.type) for arg, value in object_type.fields[name].args.items()},
        )
        for name in REQUIRED_FIELDS[type_name]
        if name in object_type.fields
    }

    assert found == REQUIRED_FIELDS[type_name]


@pytest.mark.parametrize("type_name", REQUIRED_INPUT_FIELDS)
def test_the_contracts_inputs_are_in_the_schema(
    committed: graphql.GraphQLSchema, type_name: str
) -> None:
    input_type = committed.get_type(type_name)
    assert isinstance(input_type, graphql.GraphQLInputObjectType), f"no input {type_name}"

    found = {
        name: str(field.type)
        for name, field in input_type.fields.items()
        if name in REQUIRED_INPUT_FIELDS[type_name]
    }

    assert found == REQUIRED_INPUT_FIELDS[type_name]


def test_expires_in_seconds_defaults_to_an_hour(committed: graphql.GraphQLSchema) -> None:
    input_type = committed.get_type("CreateCheckoutSessionInput")
    assert isinstance(input_type, graphql.GraphQLInputObjectType)

    # A schema built from SDL keeps the default in the AST (graphql-core 3.3).
    node = input_type.fields["expiresInSeconds"].ast_node
    assert node is not None
    assert node.default_value is not None
    assert graphql.print_ast(node.default_value) == "3600"


def test_the_status_enum_has_exactly_the_contracts_states(
    committed: graphql.GraphQLSchema,
) -> None:
    status = committed.get_type("CheckoutSessionStatus")
    categories = committed.get_type("CardCategory")

    assert isinstance(status, graphql.GraphQLEnumType)
    assert set(status.values) == {"INITIATED", "COMPLETED", "FAILED", "CANCELED"}
    assert isinstance(categories, graphql.GraphQLEnumType)
    assert categories.values, "CardCategory needs values"


def test_date_time_is_a_scalar(committed: graphql.GraphQLSchema) -> None:
    assert isinstance(committed.get_type("DateTime"), graphql.GraphQLScalarType)
