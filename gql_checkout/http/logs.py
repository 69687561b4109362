"""Structured JSON logs; every record carries the request id it was written under."""

from __future__ import annotations

import logging
from typing import Any

from gql_checkout.http.request_id import current_request_id

ACCESS_LOGGER = "gql_checkout.access"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class WebSocketHandshakeLines(logging.Filter):
    """Drops the line uvicorn writes to its *error* log for every websocket handshake
    (``... "WebSocket /graphql" [accepted]``). It is an access-log line, so it follows
    the access log (off by default): 10,000 pages opening their subscriptions were 10,000
    INFO lines and 4% of the CPU the handshakes took (bench.connections, py-spy)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(_HANDSHAKE))


_HANDSHAKE = '%s - "WebSocket %s"'


def logging_config(level: str = "INFO", *, access_log: bool = False) -> dict[str, Any]:
    """A dictConfig for the app and for uvicorn's own loggers (passed as its log_config)."""
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "filters": ["request_id"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": RequestIdFilter},
            "websocket_handshakes": {"()": WebSocketHandshakeLines},
        },
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {"default": handler},
        "loggers": {
            "": {"handlers": ["default"], "level": level},
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {
                "level": level,
                "filters": [] if access_log else ["websocket_handshakes"],
            },
            # Our own access log carries the request id; uvicorn's does not.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            ACCESS_LOGGER: {"level": level if access_log else "WARNING"},
            # httpx logs every webhook attempt at INFO; the dispatcher logs its own outcome
            # with the event and delivery ids (and formatting the line twice costs).
            "httpx": {"level": "WARNING"},
        },
    }
