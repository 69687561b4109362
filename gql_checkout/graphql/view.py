"""The Strawberry ASGI view: context per request, transport errors as coded GraphQL errors."""

from __future__ import annotations

import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import GraphQLError, OperationType
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.streaming import HTTPStreamTransport
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from gql_checkout.domain.errors import GatewayError, RateLimited, ValidationError
from gql_checkout.graphql import compiled, compiled_mutations, over_http
from gql_checkout.graphql.compiled_mutations import MutationPlan
from gql_checkout.graphql.compiled_selections import Unsupported
from gql_checkout.graphql.context import GraphQLContext
from gql_checkout.graphql.documents import Documents, root_fields
from gql_checkout.graphql.extensions import code_errors
from gql_checkout.graphql.observability import UNLABELLED
from gql_checkout.graphql.persisted import (
    NOT_FOUND,
    PersistedQueries,
    PersistedQueryNotFound,
    TrustedDocuments,
)
from gql_checkout.graphql.schema import GatewaySchema
from gql_checkout.graphql.websockets import OperationContexts
from gql_checkout.http import ide, raw_asgi
from gql_checkout.http.metrics import Metrics
from gql_checkout.services.checkout_sessions import CheckoutService
from gql_checkout.services.merchants import MerchantService
from gql_checkout.services.webhooks import WebhookService

_TRANSPORT_CODES = {HTTPStatus.BAD_REQUEST: ValidationError.code}
_MEMBER_TYPES = (
    ("query", str, "a string"),
    ("operationName", str, "a string"),
    ("variables", dict, "an object"),
)


_PLAN_HEADERS = frozenset({b"content-type", b"accept", *over_http.PREFLIGHT_HEADERS})


class GraphQLView(GraphQL[GraphQLContext, None]):
    schema: GatewaySchema
    graphql_transport_ws_handler_class = OperationContexts
    stream_transport_classes_by_protocol: Mapping[str, type[HTTPStreamTransport]] = {
        GRAPHQL_SSE_PROTOCOL: over_http.EventStreamAlone
    }

    def __init__(
        self,
        schema: GatewaySchema,
        *,
        checkout: CheckoutService,
        merchants: MerchantService,
        metrics: Metrics,
        webhooks: WebhookService,
        trusted_documents: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(schema, **options)
        self._persisted = PersistedQueries(schema.documents)
        # Strawberry builds its stream transports anew at each look-up: once is enough.
        self._streams = tuple(self._stream_transport_map.values())
        self._trusted = TrustedDocuments(trusted_documents) if trusted_documents else None
        self._checkout = checkout
        self._merchants = merchants
        self._metrics = metrics
        self._webhooks = webhooks

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> GraphQLContext:
        return self._context(request.scope, raw_asgi.headers(request.scope, _PLAN_HEADERS))

    def _context(self, scope: Scope, headers: dict[bytes, str]) -> GraphQLContext:
        """Who is calling, from the headers a poll reads anyway (one place for both paths)."""
        return GraphQLContext.create(
            service=self._checkout,
            merchants=self._merchants,
            metrics=self._metrics,
            webhooks=self._webhooks,
            merchant_id_header=headers.get(b"x-merchant-id"),
            authorization=headers.get(b"authorization"),
            client=raw_asgi.client_host(scope),
        )

    def parse_json(self, data: str | bytes) -> Any:
        # Strawberry's own check lets through bodies that parse but are not objects
        # (`null`, `1`) and bytes that are not UTF-8; both then fail as a 500.
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise HTTPException(400, "Unable to parse request body as JSON") from None
        items = parsed if isinstance(parsed, list) else [parsed]
        if not all(isinstance(item, dict) for item in items):
            raise HTTPException(
                400, "The request body must be a JSON object, or a list of them for a batch."
            )
        for item in items:
            # Strawberry checks these for a single operation only; in a batch a query
            # that is not a string crashed the parser cache.
            for key, kinds, expected in _MEMBER_TYPES:
                if item.get(key) is not None and not isinstance(item[key], kinds):
                    raise HTTPException(400, f'"{key}" must be {expected}.')
        return parsed

    async def on_ws_connect(self, context: GraphQLContext) -> UnsetType | dict[str, object] | None:
        """connection_init is checked when it arrives: bad or missing credentials close the
        socket with 4403 (graphql/websockets.py then runs each operation with them)."""
        try:
            await context.check_connection()
        except GatewayError:
            raise ConnectionRejectionError from None
        acknowledged: UnsetType = UNSET  # a plain connection_ack, without a payload
        return acknowledged

    async def render_graphql_ide(self, request: Request) -> Response:
        # GraphiQL from the gateway's own vendored assets: it works offline (http/ide.py).
        return HTMLResponse(ide.page())

    def encode_json(self, data: object) -> str:
        # Text, not bytes: graphql-transport-ws messages must travel as text frames.
        return orjson.dumps(data).decode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        headers = raw_asgi.headers(scope, _PLAN_HEADERS)
        if over_http.prefers_graphql_response(headers.get(b"accept", "")):
            send = over_http.negotiated(send)
        context = self._context(scope, headers)
        method = scope["method"]
        if method == "GET":
            try:
                body = over_http.body_from_query_string(scope["query_string"])
            except ValidationError as error:
                await _coded_error(send, error, error.status)
                return
            if body is None:  # GraphiQL's page, or Strawberry's own 400
                await self._general(scope, receive, send, context)
                return
            if not _preflighted(headers):
                await _coded_error(send, ValidationError(detail=_GET_NEEDS), HTTPStatus.BAD_REQUEST)
                return
            # From here on the query is answered as the same POST would be.
            scope = _as_post(scope)
            headers[b"content-type"] = "application/json"
        elif method == "POST":
            body = await raw_asgi.read_body(receive)
        else:
            await self._general(scope, receive, send, context)
            return
        try:
            if self._trusted is not None and not await self._merchants.carries_api_key(
                authorization=context.authorization
            ):
                body = self._trusted.resolve(body)
            else:
                body = self._persisted.resolve(body)
        except PersistedQueryNotFound:
            answer = orjson.dumps(NOT_FOUND)
            await raw_asgi.respond(send, HTTPStatus.OK.value, raw_asgi.json_headers(answer), answer)
            return
        except ValidationError as error:
            await _coded_error(send, error, error.status)
            return
        receive = raw_asgi.replaying(body, receive)
        try:
            single = compiled.request_body(body, headers.get(b"content-type"))
        except Unsupported:
            single = None  # a batch, or more than a plain body: Strawberry reads it
        admitted = None
        if single is not None:
            try:
                admitted = self.schema.documents.admit(single[0])
            except GraphQLError as error:
                # Refused by a limit, or not GraphQL: answered as Strawberry would, without
                # the ~1 ms of its machinery (a cheap request stays cheap).
                await _refuse(send, context, error)
                return
        compiler = self.schema.compiler
        mutation = None
        if (
            compiler is not None
            and single is not None
            and admitted is not None
            # Whatever Accept lists, unless Strawberry would stream the answer (SSE,
            # multipart) for it: then the answer is Strawberry's to give.
            and not self._streamed(headers.get(b"accept", ""))
        ):
            # A poll: a compiled plan answers it if it can (a write, once charged below).
            _, operation_name, variables = single
            try:
                plan = compiler.plan_for(admitted, operation_name)
                if isinstance(plan, MutationPlan):
                    mutation = plan  # run once the write is charged, below
                if not isinstance(plan, compiled.Plan):
                    raise Unsupported
                context.read_cost = plan.cost
                answer = orjson.dumps(await compiled.run_plan(plan, variables, context))
            except Unsupported:
                pass  # the same context: a reader already checked and charged stays so
            else:
                compiler.answered += 1
                await raw_asgi.respond(
                    send, HTTPStatus.OK.value, raw_asgi.json_headers(answer), answer
                )
                return
        # Not before: a plan answers only queries, and a poll need not look twice.
        if method == "GET" and _is_mutation(self.schema.documents, single):
            refusal = ValidationError(detail="Mutations are sent with POST, not GET.")
            await _coded_error(send, refusal, HTTPStatus.METHOD_NOT_ALLOWED, allow=b"POST")
            return
        try:
            await self._charge(context, body)
        except RateLimited as error:
            answer = orjson.dumps(
                {"errors": [{"message": error.detail, "extensions": {"code": error.code}}]}
            )
            retry = (b"retry-after", str(error.retry_after_seconds).encode())
            await raw_asgi.respond(
                send, error.status.value, [*raw_asgi.json_headers(answer), retry], answer
            )
            return
        if mutation is not None and compiler is not None and single is not None:
            try:
                prepared = compiled_mutations.prepare(mutation, self.schema._schema, single[2])
            except Unsupported:
                pass  # a variable or argument that does not coerce: Strawberry reports it
            else:
                answer = orjson.dumps(
                    await compiled_mutations.run_mutation(mutation, prepared, context)
                )
                compiler.written += 1
                await raw_asgi.respond(
                    send, HTTPStatus.OK.value, raw_asgi.json_headers(answer), answer
                )
                return
        await self._general(scope, receive, send, context)

    def _streamed(self, accept: str) -> bool:
        return bool(accept) and any(stream.accepts(accept) for stream in self._streams)

    async def _charge(self, context: GraphQLContext, body: bytes) -> None:
        """Counts every root field of every operation in the request against the caller's
        read and write limits, before any of it runs: RateLimited refuses it whole.

        A request whose caller is not known yet (no credentials, a bad key) is charged
        nothing here: its resolvers report that as they would have."""
        reads = writes = 0
        for query, operation_name in _operations(body):
            try:
                admitted = self.schema.documents.admit(query)
            except GraphQLError:
                continue  # refused before it runs: Strawberry reports it, costing nothing
            fields = root_fields(admitted.document, operation_name)
            if fields is None:
                continue
            if fields.operation is OperationType.MUTATION:
                writes += fields.count
            else:
                reads += fields.count
        context.read_cost, context.write_cost = reads, writes
        for resolve, cost in ((context.reader, reads), (context.writer, writes)):
            if cost:
                try:
                    await resolve()
                except RateLimited:
                    raise
                except GatewayError:
                    pass

    async def _general(
        self, scope: Scope, receive: Receive, send: Send, context: GraphQLContext | None = None
    ) -> None:
        """Strawberry's answer, with transport errors in the coded GraphQL error shape."""
        request = Request(scope=scope, receive=receive)
        try:
            if context is None:
                response = await self.run(request)
            else:
                response = await self.run(request, context=context)
        except HTTPException as error:
            # Strawberry answers a body it cannot read (bad JSON, no query, wrong method)
            # in plain text; clients get the same coded error shape as everywhere else.
            status = HTTPStatus(error.status_code)
            body = {
                "errors": [
                    {
                        "message": error.reason,
                        "extensions": {"code": _TRANSPORT_CODES.get(status, status.name)},
                    }
                ]
            }
            response = Response(
                orjson.dumps(body), status_code=status, media_type="application/json"
            )
        await response(scope, receive, send)


def _operations(body: bytes) -> list[tuple[str, str | None]]:
    """(query, operationName) of each operation of a JSON body; what is not one is left
    to Strawberry to refuse."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    found = []
    for item in data if isinstance(data, list) else [data]:
        if isinstance(item, dict) and isinstance(item.get("query"), str):
            name = item.get("operationName")
            found.append((item["query"], name if isinstance(name, str) else None))
    return found


async def _refuse(send: Send, context: GraphQLContext, error: GraphQLError) -> None:
    """The answer Strawberry gives a document the admission refused: no data, the coded
    error (tests/graphql/test_hostile_documents.py holds the two to the same bytes)."""
    started = time.perf_counter()
    errors = [error]
    code_errors(errors)
    answer = orjson.dumps({"data": None, "errors": [errors[0].formatted]})
    context.metrics.observe_graphql(
        operation_type=UNLABELLED,
        root_fields=UNLABELLED,
        code=str((errors[0].extensions or {}).get("code")),
        started=started,
    )
    await raw_asgi.respond(send, HTTPStatus.OK.value, raw_asgi.json_headers(answer), answer)


_GET_NEEDS = (
    "A query over GET needs a header a cross-site form cannot send: X-Merchant-Id,"
    " Authorization, a JSON Content-Type, apollo-require-preflight or X-Requested-With."
)


def _preflighted(headers: dict[bytes, str]) -> bool:
    return any(name in headers for name in over_http.PREFLIGHT_HEADERS) or headers.get(
        b"content-type", ""
    ).startswith("application/json")


def _as_post(scope: Scope) -> Scope:
    """A GET's scope as the POST of its JSON body: what Strawberry and the plans read."""
    kept = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
    return {
        **scope,
        "method": "POST",
        "query_string": b"",
        "headers": [*kept, (b"content-type", b"application/json")],
    }


def _is_mutation(documents: Documents, single: tuple[str, str | None, Any] | None) -> bool:
    if single is None:
        return False
    try:
        admitted = documents.admit(single[0])
    except GraphQLError:
        return False  # refused anyway, whatever it holds
    fields = root_fields(admitted.document, single[1])
    return fields is not None and fields.operation is OperationType.MUTATION


async def _coded_error(
    send: Send, error: GatewayError, status: HTTPStatus, *, allow: bytes | None = None
) -> None:
    """A request refused before any operation ran, in the coded GraphQL error shape."""
    errors = [GraphQLError(error.detail, original_error=error)]
    code_errors(errors)
    answer = orjson.dumps({"errors": [errors[0].formatted]})
    headers = raw_asgi.json_headers(answer)
    if allow is not None:
        headers.append((b"allow", allow))
    await raw_asgi.respond(send, status.value, headers, answer)
