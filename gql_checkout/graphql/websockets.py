"""graphql-transport-ws with a context of its own for each operation.

Strawberry builds one context per connection and runs every operation of the socket with
it: its instant, its DataLoaders and the identity it checked once. Over one socket a
canceled session then still read as INITIATED, a revoked API key still wrote, and the
rate limits counted the first operation only. Here each operation starts from a fresh
copy of the connection's context (``GraphQLContext.for_operation``), as an HTTP request
does. A subscription whose document compiles runs by its plan
(graphql/compiled_subscriptions.py), and holds no task between its events; the others run
by Strawberry.
"""

from __future__ import annotations

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
from gql_checkout.graphql.compiled_subscriptions import (
    Delivery,
    SubscriptionPlan,
    start_subscription,
)
from gql_checkout.graphql.context import GraphQLContext


class OperationContexts(BaseGraphQLTransportWSHandler[GraphQLContext, None]):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._connection = self.context
        self._deliveries: dict[str, Delivery] = {}  # the compiled subscriptions, by id

    async def run_operation(self, operation: Any) -> None:
        # Strawberry reads ``self.context`` when the operation starts, before its first
        # await: the context set here is the one this operation runs with.
        self.context = context = self._connection.for_operation()
        compiler = getattr(self.schema, "compiler", None)
        query, name = operation.query, operation.operation_name
        if compiler is not None and isinstance(query, str) and isinstance(name, str | None):
            plan = compiler.plan(query, name)
            if isinstance(plan, SubscriptionPlan):
                delivery = await start_subscription(plan, compiler.renderings, operation, context)
                if delivery is not None:
                    # Its task ends here, and is let go (a done task kept is ~0.7 KiB a
                    # socket): the watcher calls the delivery from now on.
                    self._deliveries[operation.id] = delivery
                    operation.task = None
                    return
        await super().run_operation(operation)

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        self.connection_init_timeout_task = None  # canceled, or done: not kept for the socket

    def forget_id(self, id: str) -> None:
        super().forget_id(id)
        self._deliveries.pop(id, None)  # a delivery that sent its complete

    async def cleanup_operation(self, operation_id: str) -> None:
        delivery = self._deliveries.pop(operation_id, None)
        if delivery is None:
            await super().cleanup_operation(operation_id)  # cancels the operation's task
            return
        delivery.stop()
        self.operations.pop(operation_id, None)

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
