"""The gql-checkout command line (the contract's section 4)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging.config
import signal
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TypeVar

from gql_checkout.container import Container, build_container
from gql_checkout.demo import DemoData, seed_demo
from gql_checkout.http.logs import logging_config
from gql_checkout.settings import Settings, SettingsError
from gql_checkout.storage.migrate import migrate

T = TypeVar("T")


def _with_container(settings: Settings, work: Callable[[Container], Awaitable[T]]) -> T:
    async def run() -> T:
        wired = build_container(settings)
        try:
            await migrate(wired.engine)
            return await work(wired)
        finally:
            await wired.stop()

    return asyncio.run(run())


def _print_json(data: object) -> None:
    print(json.dumps(data))


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from gql_checkout.http import websocket_protocol

    if not args.no_migrate:
        _migrate(settings, args)
    # uvicorn shuts down gracefully on SIGTERM, then raises it again with this handler back
    # in place: a stop that was asked for ends with status 0, as Ctrl-C's does (and
    # `make run` then has no failure to report).
    signal.signal(signal.SIGTERM, _exit_after_shutdown)
    uvicorn.run(
        "gql_checkout.asgi:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        server_header=False,
        log_config=logging_config(access_log=settings.access_log),
        access_log=False,
        timeout_graceful_shutdown=10,
        # Per connection (bench.connections, 1,000 subscriptions): permessage-deflate's zlib
        # contexts cost ~100 KiB, and events of a few hundred bytes gain little from them;
        # the sans-I/O protocol of the websockets library is ~7 KiB lighter than the other,
        # and ours keeps no more of its handshake than it needs (http/websocket_protocol.py).
        ws=websocket_protocol.NAME,
        ws_per_message_deflate=False,
    )


def _exit_after_shutdown(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _migrate(settings: Settings, _args: argparse.Namespace) -> None:
    async def nothing_more(_wired: Container) -> None:
        """_with_container has migrated already."""

    _with_container(settings, nothing_more)


def _create_merchant(settings: Settings, args: argparse.Namespace) -> None:
    async def work(wired: Container) -> tuple[str, str]:
        merchant, api_key = await wired.merchants.create_merchant(name=args.name)
        return str(merchant.id), api_key

    merchant_id, api_key = _with_container(settings, work)
    _print_json({"merchantId": merchant_id, "apiKey": api_key})


def _demo(settings: Settings, args: argparse.Namespace) -> None:
    async def seed(container: Container) -> DemoData:
        return await seed_demo(container, secret=settings.hcp_secrets[0], fresh_session=args.banner)

    demo = _with_container(settings, seed)
    if args.banner:
        _print_banner(demo, base_url=f"http://{args.host}:{args.port}")
        return
    _print_json(
        {
            "merchantId": demo.merchant_id,
            "apiKey": demo.api_key,
            "sessionIds": demo.session_ids,
        }
    )


def _print_banner(demo: DemoData, *, base_url: str) -> None:
    print(
        f"""
Demo data is ready. Paste this into another shell (README's walkthrough uses it):

export BASE_URL={base_url} MERCHANT_ID={demo.merchant_id} \\
  API_KEY={demo.api_key} \\
  SESSION_ID={demo.fresh_session_id}

Demo merchant id: {demo.merchant_id}
Demo session id:  {demo.fresh_session_id} (open; {demo.session_ids["parent"]} has a child)
GraphiQL:         {base_url}/graphql

curl -s -H 'X-Merchant-Id: {demo.merchant_id}' \\
  '{base_url}/v1/checkout-sessions/{demo.fresh_session_id}?init=true'
""",
        flush=True,
    )


def _dispatch_webhooks(settings: Settings, _args: argparse.Namespace) -> None:
    """Delivers webhooks until SIGTERM or Ctrl-C (beside, or instead of, the servers')."""

    async def run() -> None:
        wired = build_container(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await migrate(wired.engine)
            await wired.start(deliver_webhooks=True)
            print("gql-checkout: delivering webhooks (SIGTERM or Ctrl-C stops)", flush=True)
            await stop.wait()
        finally:
            await wired.stop()

    logging.config.dictConfig(logging_config(access_log=False))
    asyncio.run(run())


def _export_schema(_settings: Settings | None, _args: argparse.Namespace) -> None:
    from gql_checkout.graphql.schema import build_schema

    sys.stdout.write(build_schema().as_str() + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gql-checkout", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the ASGI app with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--no-migrate", action="store_true", help="do not apply migrations before serving"
    )
    serve.set_defaults(handler=_serve)
    commands.add_parser("migrate", help="create or upgrade the database schema").set_defaults(
        handler=_migrate
    )
    merchants = commands.add_parser("merchants", help="manage merchants")
    merchant_commands = merchants.add_subparsers(dest="merchant_command", required=True)
    create = merchant_commands.add_parser("create", help="create a merchant and its API key")
    create.add_argument("--name", required=True)
    create.set_defaults(handler=_create_merchant)
    demo = commands.add_parser("demo", help="seed demo data (idempotent)")
    demo.add_argument(
        "--banner", action="store_true", help="print a human-readable banner instead of JSON"
    )
    demo.add_argument("--host", default="127.0.0.1", help="host shown in the banner")
    demo.add_argument("--port", type=int, default=8000, help="port shown in the banner")
    demo.set_defaults(handler=_demo)
    webhooks = commands.add_parser("webhooks", help="outbound webhooks")
    webhook_commands = webhooks.add_subparsers(dest="webhook_command", required=True)
    webhook_commands.add_parser(
        "dispatch",
        help="deliver webhooks until stopped (serve does too, unless GQL_CHECKOUT_WEBHOOKS=off)",
    ).set_defaults(handler=_dispatch_webhooks)
    commands.add_parser("export-schema", help="print the GraphQL SDL").set_defaults(
        handler=_export_schema, needs_settings=False
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = None
    if getattr(args, "needs_settings", True):
        try:
            settings = Settings.from_env()
        except SettingsError as error:
            print(f"gql-checkout: {error}", file=sys.stderr)
            sys.exit(2)
    args.handler(settings, args)


if __name__ == "__main__":
    main()
