"""Parsing of ids: the canonical text of a UUID, in either case, and nothing else."""

from __future__ import annotations

from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gql_checkout.domain.errors import ValidationError
from gql_checkout.domain.validation import parse_uuid


@given(uuid=st.uuids(), upper=st.booleans())
def test_the_canonical_text_of_a_uuid_parses_to_that_uuid(uuid: UUID, upper: bool) -> None:
    text = str(uuid).upper() if upper else str(uuid)

    parsed = parse_uuid(text, field="id")

    assert parsed == uuid
    assert str(parsed) == str(uuid)
    assert hash(parsed) == hash(uuid)


@pytest.mark.parametrize(
    "text",
    [
        "0f3c2b1a9d8e4f7a8b6c5d4e3f2a1b0c",  # no hyphens
        "{0f3c2b1a-9d8e-4f7a-8b6c-5d4e3f2a1b0c}",
        "urn:uuid:0f3c2b1a-9d8e-4f7a-8b6c-5d4e3f2a1b0c",
        "0f3c2b1a-9d8e-4f7a-8b6c-5d4e3f2a1b0g",
        "0f3c2b1a-9d8e-4f7a-8b6c-5d4e3f2a1b0",
    ],
)
def test_other_forms_are_not_uuids(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_uuid(text, field="id")
