"""Persisted documents: Apollo's automatic persisted queries, and trusted documents.

**Automatic persisted queries** (``extensions.persistedQuery``).
A client sends ``{"version": 1, "sha256Hash": "<hex>"}`` in the body's extensions,
without the document; a hash the gateway does not know is answered 200 with
``PersistedQueryNotFound`` (code ``PERSISTED_QUERY_NOT_FOUND``), and the client sends it
again with the document, which registers it once its SHA-256 matches (else
``VALIDATION_ERROR``); from then on the hash alone runs it. Strawberry has none of this
(upstream issue 1707), so the view resolves the hash to the document here, before
anything else reads the body: the compiled plans, the limits and Strawberry all see a
plain request.

Only documents the admission accepts (graphql/documents.py: size, tokens, merge work) are
remembered, at most ``MAX_PERSISTED`` of them, least recently used first out: the store
holds at most that many documents of at most ``max_bytes`` each.

**Trusted documents** (``GQL_CHECKOUT_TRUSTED_DOCUMENTS``, GraphQL Code Generator's
``persisted-documents.json``): a caller without a merchant API key names a listed
document by ``documentId`` (``sha256:<hex>`` or the hex alone) or by the persisted-query
hash, or sends one whose SHA-256 is listed; anything else is ``PERSISTED_QUERY_NOT_FOUND``
and is never parsed. Such a caller registers nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson
from graphql import GraphQLError

from gql_checkout.domain.errors import ValidationError
from gql_checkout.graphql.documents import Documents

MAX_PERSISTED = 1_024
NOT_FOUND = {
    "errors": [
        {
            "message": "PersistedQueryNotFound",
            "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
        }
    ]
}


class PersistedQueryNotFound(Exception):
    """The hash is not registered: the client is to send the document with it."""


class PersistedQueries:
    def __init__(self, documents: Documents) -> None:
        self._documents = documents
        self._by_hash: OrderedDict[str, str] = OrderedDict()

    def resolve(self, body: bytes) -> bytes:
        """``body`` with its persisted query's document in place (and the extension
        gone); ``body`` itself when it has none. Raises PersistedQueryNotFound, or
        ValidationError for a malformed extension or a hash that is not the document's."""
        if b"persistedQuery" not in body:  # the common case, without parsing
            return body
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body  # not JSON: Strawberry says so
        if not isinstance(data, dict) or not isinstance(data.get("extensions"), dict):
            return body
        extensions: dict[str, Any] = data["extensions"]
        persisted = extensions.get("persistedQuery")
        if persisted is None:
            return body
        digest = _digest(persisted)
        query = data.get("query")
        if query is None:
            found = self._by_hash.get(digest)
            if found is None:
                raise PersistedQueryNotFound
            self._by_hash.move_to_end(digest)
            query = found
        elif not isinstance(query, str):
            return body  # Strawberry reports the type
        else:
            if not hmac.compare_digest(hashlib.sha256(query.encode()).hexdigest(), digest):
                raise ValidationError.on(
                    "extensions.persistedQuery.sha256Hash", "is not the SHA-256 of the query"
                )
            self._register(digest, query)
        resolved = {**data, "query": query}
        rest = {key: value for key, value in extensions.items() if key != "persistedQuery"}
        if rest:
            resolved["extensions"] = rest
        else:
            del resolved["extensions"]
        return orjson.dumps(resolved)

    def _register(self, digest: str, query: str) -> None:
        try:
            self._documents.admit(query)
        except GraphQLError:
            return  # refused documents are answered, never remembered
        self._by_hash[digest] = query
        self._by_hash.move_to_end(digest)
        if len(self._by_hash) > MAX_PERSISTED:
            self._by_hash.popitem(last=False)


def _digest(persisted: object) -> str:
    if (
        not isinstance(persisted, dict)
        or persisted.get("version") != 1
        or not isinstance(persisted.get("sha256Hash"), str)
    ):
        raise ValidationError.on(
            "extensions.persistedQuery", 'must be {"version": 1, "sha256Hash": "<hex>"}'
        )
    digest: str = persisted["sha256Hash"].lower()
    if len(digest) != 64 or not all(char in "0123456789abcdef" for char in digest):
        raise ValidationError.on("extensions.persistedQuery.sha256Hash", "must be 64 hex digits")
    return digest


class TrustedDocuments:
    def __init__(self, by_hash: Mapping[str, str]) -> None:
        self._by_hash = by_hash

    def resolve(self, body: bytes) -> bytes:
        """``body`` with each operation's listed document in place; raises
        PersistedQueryNotFound for an operation that names or holds none of them."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body  # not JSON: Strawberry says so, parsing no document
        items = data if isinstance(data, list) else [data]
        resolved = [self._resolved(item) for item in items]
        return orjson.dumps(resolved if isinstance(data, list) else resolved[0])

    def _resolved(self, item: object) -> object:
        if not isinstance(item, dict):
            return item  # Strawberry refuses the shape
        given = item.get("extensions")
        extensions: dict[str, Any] = given if isinstance(given, dict) else {}
        persisted = extensions.get("persistedQuery")
        document_id = item.get("documentId")
        if isinstance(document_id, str):
            digest = document_id.removeprefix("sha256:").lower()
        elif isinstance(persisted, dict) and isinstance(persisted.get("sha256Hash"), str):
            digest = persisted["sha256Hash"].lower()
        elif isinstance(item.get("query"), str):
            digest = hashlib.sha256(item["query"].encode()).hexdigest()
        else:
            raise PersistedQueryNotFound
        document = self._by_hash.get(digest)
        if document is None:
            raise PersistedQueryNotFound
        rest = {key: value for key, value in extensions.items() if key != "persistedQuery"}
        found = {
            key: value for key, value in item.items() if key not in ("documentId", "extensions")
        }
        found["query"] = document
        if rest:
            found["extensions"] = rest
        return found
