"""The HTTP client deliveries are sent with, and the address check behind it.

Where the policy wants public addresses only, every new connection resolves its host
once (``loop.getaddrinfo``), refuses it unless every address is public
(``domain.webhook_urls.is_public_address``), and connects to the address it checked:
a name cannot resolve to a public address for the check and to a private one for the
connection (DNS rebinding). TLS still verifies the certificate of the URL's host name
(httpcore passes the origin's host as SNI and for verification), and the ``Host`` header
is the URL's. A kept-alive connection was checked when it was opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

import httpcore
import httpx

from gql_checkout.domain.webhook_urls import is_public_address

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class UnsafeAddress(httpcore.ConnectError):
    """The host resolves to an address deliveries may not reach."""


class PublicAddressesOnly(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await checked_address(host, port)
        return await self._inner.connect_tcp(
            address,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeAddress("deliveries do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def checked_address(host: str, port: int) -> str:
    """The address to connect to for ``host``; UnsafeAddress unless all it resolves to
    is public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )
    except OSError as error:
        raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    refused = [address for address in addresses if not is_public_address(address)]
    if not addresses or refused:
        raise UnsafeAddress(
            f"{host} resolves to {refused[0] if refused else 'nothing'}, which is not a "
            "public address (GQL_CHECKOUT_WEBHOOK_ALLOW_PRIVATE_URLS=true allows it)"
        )
    return str(addresses[0])


def delivery_client(
    *, timeout_seconds: float, max_connections: int, public_addresses_only: bool
) -> httpx.AsyncClient:
    """One client for all deliveries: kept-alive connections, no redirects, no proxies
    from the environment (a proxy would connect where the check did not look)."""
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=30.0,
    )
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    if public_addresses_only:
        # httpx takes no network backend itself: its pool is rebuilt with the same
        # settings and ours (httpcore's documented API).
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PublicAddressesOnly(),
        )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": "gql-checkout-webhooks/1"},
    )
