"""GraphQL over HTTP (the graphql/graphql-over-http spec): the media type a client
prefers, the status codes of ``application/graphql-response+json``, and queries over GET.

Every answer of the view (a compiled plan's, a refusal, a limit, Strawberry's) is written
as ``application/json`` first; ``negotiated`` rewrites it for a client that prefers
``application/graphql-response+json``: that media type, and a request error (the
document did not parse or validate, a variable did not coerce: no data, no error with a
path) is 400 without ``data``. ``application/json`` keeps 200, as clients expect.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

import orjson
from starlette.types import Message, Send
from strawberry.http.streaming import SSETransport

from gql_checkout.domain.errors import ValidationError

GRAPHQL_RESPONSE = "application/graphql-response+json"
_JSON = "application/json"
_GRAPHQL_RESPONSE_TYPE = f"{GRAPHQL_RESPONSE}; charset=utf-8".encode()
# A cross-site form can send none of these: a GET that carries one is no CSRF.
PREFLIGHT_HEADERS = frozenset(
    {b"x-merchant-id", b"authorization", b"apollo-require-preflight", b"x-requested-with"}
)
GET_PARAMETERS = ("query", "variables", "operationName", "extensions", "documentId")


def prefers_graphql_response(accept: str) -> bool:
    """Whether ``accept`` ranks ``application/graphql-response+json`` above
    ``application/json`` (by q-value, then by order); no Accept, or ``*/*``, keeps JSON."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")):
        media, _, parameters = part.partition(";")
        media = media.strip().lower()
        if media not in (GRAPHQL_RESPONSE, _JSON):
            continue
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, -position, media)
    return best is not None and best[2] == GRAPHQL_RESPONSE


def negotiated(send: Send) -> Send:
    """``send`` for a client that prefers ``application/graphql-response+json``."""
    start: dict[str, Any] = {}

    async def send_negotiated(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body" or not start:
            await send(message)
            return
        headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
        content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        status, body = start["status"], message.get("body", b"")
        if content_type.startswith(_JSON.encode()) and not message.get("more_body"):
            status, body = _graphql_response(status, body)
            headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
            headers.append((b"content-type", _GRAPHQL_RESPONSE_TYPE))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "status": status, "headers": headers})
        start.clear()
        await send({**message, "body": body})

    return send_negotiated


def _graphql_response(status: int, body: bytes) -> tuple[int, bytes]:
    if body.startswith(b'{"data":{'):  # data that is not null: as it is (every poll)
        return status, body
    try:
        result = orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, body
    if not isinstance(result, dict) or result.get("data") is not None:
        return status, body
    errors = result.get("errors")
    if not errors or any(isinstance(e, dict) and "path" in e for e in errors):
        return status, body  # a field error: the operation ran
    if all(_code(error) == "PERSISTED_QUERY_NOT_FOUND" for error in errors):
        return status, body  # 200, as Apollo's protocol says: the client sends the document

    return (400 if status == 200 else status), orjson.dumps({"errors": errors})


def body_from_query_string(query_string: bytes) -> bytes | None:
    """The JSON body of a GET request's parameters, or None if it names no operation
    (GraphiQL's page is a GET too). ``variables`` and ``extensions`` are JSON text."""
    parameters: dict[str, str] = {}
    for part in query_string.split(b"&"):
        key, _, raw = part.partition(b"=")
        parameters.setdefault(_decoded(key), _decoded(raw))
    if not {"query", "extensions", "documentId"} & parameters.keys():
        return None
    body: dict[str, Any] = {}
    for name in GET_PARAMETERS:
        value = parameters.get(name)
        if value is None:
            continue
        if name in ("variables", "extensions"):
            try:
                body[name] = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise ValidationError.on(name, "must be JSON") from None
        else:
            body[name] = value
    return orjson.dumps(body)


def _code(error: object) -> object:
    extensions = error.get("extensions") if isinstance(error, dict) else None
    return extensions.get("code") if isinstance(extensions, dict) else None


@lru_cache(maxsize=256)
def _decoded(raw: bytes) -> str:
    """A query-string component, as a form encodes it; remembered, since a page's polls
    repeat the same document (only the variables change): decoding it is ~60 µs."""
    return unquote_plus(raw.decode("latin-1"))


class EventStreamAlone(SSETransport):
    """GraphQL over SSE (graphql-sse's distinct connections) for a client that asks for
    ``text/event-stream`` and no JSON: a query whose Accept also admits JSON, as urql's
    default does, is answered with JSON."""

    def accepts(self, accept: str) -> bool:
        types = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
        return "text/event-stream" in types and not types & _JSON_TYPES


_JSON_TYPES = frozenset({"application/json", GRAPHQL_RESPONSE, "*/*", "application/*"})
