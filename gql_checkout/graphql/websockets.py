"""graphql-transport-ws with a context of its own for each operation.

Strawberry builds one context per connection and runs every operation of the socket with
it: its instant, its DataLoaders and the identity it checked once. Over one socket a
canceled session then still read as INITIATED, a revoked API key still wrote, and the
rate limits counted the first operation only. Here each operation starts from a fresh
copy of the connection's context (``GraphQLContext.for_operation``), as an HTTP request
does. A subscription whose document compiles runs by its plan
(graphql/compiled_subscriptions.py), the others by Strawberry.
"""

from __future__ import annotations

import contextlib
from typing import Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ErrorMessage,
    SubscribeMessage,
)

from gql_checkout.domain.errors import RateLimited
from gql_checkout.graphql.compiled_subscriptions import SubscriptionPlan, run_subscription
from gql_checkout.graphql.context import GraphQLContext


class OperationContexts(BaseGraphQLTransportWSHandler[GraphQLContext, None]):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._connection = self.context

    async def run_operation(self, operation: Any) -> None:
        # Strawberry reads ``self.context`` when the operation starts, before its first
        # await: the context set here is the one this operation runs with.
        self.context = context = self._connection.for_operation()
        compiler = getattr(self.schema, "compiler", None)
        query, name = operation.query, operation.operation_name
        if compiler is not None and isinstance(query, str) and isinstance(name, str | None):
            plan = compiler.plan(query, name)
            if isinstance(plan, SubscriptionPlan):
                try:
                    if await run_subscription(plan, compiler.renderings, operation, context):
                        return
                except Exception as error:
                    # As Strawberry's run_operation ends on one (a socket gone mid-send).
                    await self.handle_task_exception(error)
                    with contextlib.suppress(Exception):
                        await operation.send_operation_message(
                            {"id": operation.id, "type": "complete"}
                        )
                    self.operations.pop(operation.id, None)
                    raise
        await super().run_operation(operation)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and limit is not None
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            # Strawberry's own refusal carries no code; clients get the contract's.
            error = GraphQLError(
                f"No more than {limit} operations at once on one connection.",
                extensions={"code": RateLimited.code},
            )
            refusal = ErrorMessage(id=message["id"], type="error", payload=[error.formatted])
            await self.send_message(refusal)
            return
        await super().handle_subscribe(message)
