"""Frozen settings read from the environment (the contract's section 3)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

import limits

from gql_checkout.services.merchants import MerchantHeader
from gql_checkout.services.webhook_config import DEFAULT_RETRY_SCHEDULE, WebhookConfig
from gql_checkout.storage.engine import sqlite_file

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./gql_checkout.db"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class SettingsError(RuntimeError):
    """The environment does not describe a runnable gateway; the message says why."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Abuse limits; each field can be set as GQL_CHECKOUT_<FIELD NAME IN CAPITALS>."""

    max_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2_000
    # A document's size, comments and white space included (the token limit counts
    # neither), and the field pairs its validation may compare (graphql/documents.py).
    max_document_bytes: int = 64 * 1024
    max_merge_work: int = 2_000
    max_body_bytes: int = 1024 * 1024
    max_batch: int = 10
    max_subscriptions_per_connection: int = 20
    connection_init_timeout_seconds: float = 10.0
    request_timeout_seconds: float = 10.0
    # `limits` notation; None switches a limit off. A page polls about once a second.
    reads_per_client: str | None = "600/minute"
    writes_per_merchant: str | None = "1200/minute"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    environment: Environment
    # The first secret signs; all of them verify (rotation without downtime).
    hcp_secrets: tuple[str, ...]
    limits: Limits = Limits()
    # OpenTelemetry spans per operation and resolver (needs the `otel` extra installed).
    otel_tracing: bool = False
    # One JSON line per request. Off by default: nginx in front logs every request with
    # the same X-Request-Id, and formatting a line costs ~15% of a poll's CPU here.
    access_log: bool = False
    # Hot `checkoutSession` queries run by compiled plans (gql_checkout/graphql/compiled.py);
    # off, every operation goes through Strawberry's executor. The answers are the same.
    compiled_queries: bool = True
    # Whether X-Merchant-Id (or connection_init's merchantId) alone lets a read through:
    # `trusted` (the contract), or `api-key-only` (a read needs an API key or an hcpToken).
    merchant_header: MerchantHeader = MerchantHeader.TRUSTED
    # When set, GET /metrics needs `Authorization: Bearer <this>` (for a port nginx does
    # not hide); unset, it answers everyone, as behind the shipped nginx.
    metrics_token: str | None = None
    # GQL_CHECKOUT_TRUSTED_DOCUMENTS: a persisted-documents.json manifest, by SHA-256. When
    # set, a caller without an API key runs only these documents (graphql/persisted.py).
    trusted_documents: Mapping[str, str] | None = None
    # Outbound webhooks (section 11): whether this process delivers them, and how.
    webhooks: WebhookConfig = WebhookConfig()  # noqa: RUF009 (frozen: one shared default)

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        database_url = env.get("GQL_CHECKOUT_DATABASE_URL", DEFAULT_DATABASE_URL)
        raw_environment = env.get("GQL_CHECKOUT_ENV", Environment.DEVELOPMENT.value)
        try:
            environment = Environment(raw_environment)
        except ValueError:
            raise SettingsError(
                f"GQL_CHECKOUT_ENV must be 'development' or 'production', not {raw_environment!r}"
            ) from None
        hcp_secrets = _parse_secrets(env.get("GQL_CHECKOUT_HCP_SECRET", ""))
        if not hcp_secrets:
            if environment is Environment.PRODUCTION:
                raise SettingsError(
                    "GQL_CHECKOUT_HCP_SECRET is required in production: set one or more "
                    "comma-separated secrets of at least 32 characters (the first signs)"
                )
            hcp_secrets = (_development_secret(database_url),)
        return cls(
            database_url=database_url,
            environment=environment,
            hcp_secrets=hcp_secrets,
            limits=_limits_from_env(env),
            otel_tracing=_flag(env, "GQL_CHECKOUT_OTEL_TRACING"),
            access_log=_flag(env, "GQL_CHECKOUT_ACCESS_LOG"),
            compiled_queries=_flag(env, "GQL_CHECKOUT_COMPILED_QUERIES", default=True),
            merchant_header=_merchant_header(env.get("GQL_CHECKOUT_MERCHANT_HEADER", "")),
            metrics_token=_metrics_token(env.get("GQL_CHECKOUT_METRICS_TOKEN", "")),
            trusted_documents=_trusted_documents(env.get("GQL_CHECKOUT_TRUSTED_DOCUMENTS", "")),
            webhooks=_webhook_config(env),
        )


MIN_SECRET_LENGTH = 32


def _flag(env: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    value = env.get(name, "").strip().lower()
    return default if not value else value in {"1", "true", "yes", "on"}


_OFF = "off"


def _limits_from_env(env: Mapping[str, str]) -> Limits:
    overrides: dict[str, object] = {}
    for limit in fields(Limits):
        name = f"GQL_CHECKOUT_{limit.name.upper()}"
        raw = env.get(name)
        if raw is None:
            continue
        default = limit.default
        try:
            if isinstance(default, int):
                value: object = int(raw)
            elif isinstance(default, float):
                value = float(raw)
            else:
                value = None if raw.strip().lower() == _OFF else raw.strip()
                if value is not None:
                    limits.parse(str(value))
        except ValueError:
            raise SettingsError(f"{name}: {raw!r} is not a valid value") from None
        if isinstance(value, int | float) and value <= 0:
            raise SettingsError(f"{name} must be positive")
        overrides[limit.name] = value
    return Limits(**overrides)  # type: ignore[arg-type]


def _webhook_config(env: Mapping[str, str]) -> WebhookConfig:
    raw_deliver = env.get("GQL_CHECKOUT_WEBHOOKS", "on").strip().lower()
    if raw_deliver not in {"on", "off", "true", "false", "1", "0", "yes", "no", ""}:
        raise SettingsError(f"GQL_CHECKOUT_WEBHOOKS must be 'on' or 'off', not {raw_deliver!r}")
    timeout = _positive_seconds(env, "GQL_CHECKOUT_WEBHOOK_TIMEOUT_SECONDS", 10.0)
    sweep = _positive_seconds(env, "GQL_CHECKOUT_EXPIRY_SWEEP_SECONDS", 30.0)
    raw_schedule = env.get("GQL_CHECKOUT_WEBHOOK_RETRY_SCHEDULE", "").strip()
    schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    if raw_schedule:
        try:
            schedule = tuple(float(part) for part in raw_schedule.split(","))
        except ValueError:
            raise SettingsError(
                "GQL_CHECKOUT_WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds, "
                f"not {raw_schedule!r}"
            ) from None
        if any(not 0 <= delay <= 30 * 86_400 for delay in schedule):
            raise SettingsError("GQL_CHECKOUT_WEBHOOK_RETRY_SCHEDULE: delays are 0 to 30 days")
    return WebhookConfig(
        deliver=raw_deliver in {"on", "true", "1", "yes", ""},
        timeout_seconds=timeout,
        retry_schedule=schedule,
        allow_private_urls=_flag(env, "GQL_CHECKOUT_WEBHOOK_ALLOW_PRIVATE_URLS"),
        expiry_sweep_seconds=sweep,
    )


def _positive_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number of seconds") from None
    if not 0 < value <= 86_400:
        raise SettingsError(f"{name} must be more than 0 and at most 86400 seconds")
    return value


def _merchant_header(raw: str) -> MerchantHeader:
    value = raw.strip().lower()
    if not value:
        return MerchantHeader.TRUSTED
    try:
        return MerchantHeader(value)
    except ValueError:
        choices = " or ".join(repr(mode.value) for mode in MerchantHeader)
        raise SettingsError(
            f"GQL_CHECKOUT_MERCHANT_HEADER must be {choices}, not {raw!r}"
        ) from None


MIN_METRICS_TOKEN_LENGTH = 16


_TRUSTED = "GQL_CHECKOUT_TRUSTED_DOCUMENTS"


def _trusted_documents(raw: str) -> Mapping[str, str] | None:
    """GraphQL Code Generator's persisted-documents.json: ``{"<sha256 hex>": "<document>"}``,
    every hash checked against its document."""
    if not raw.strip():
        return None
    try:
        manifest = json.loads(Path(raw.strip()).read_text())
    except (OSError, ValueError) as error:
        raise SettingsError(
            f"GQL_CHECKOUT_TRUSTED_DOCUMENTS: cannot read {raw!r}: {error}"
        ) from None
    if not isinstance(manifest, dict):
        raise SettingsError(f"{_TRUSTED} must hold a JSON object")
    documents = {}
    for digest, document in manifest.items():
        if not isinstance(document, str) or hashlib.sha256(document.encode()).hexdigest() != (
            digest.lower()
        ):
            raise SettingsError(f"{_TRUSTED}: {digest[:80]!r} is not the SHA-256 of its document")
        documents[digest.lower()] = document
    return MappingProxyType(documents)


def _metrics_token(raw: str) -> str | None:
    token = raw.strip()
    if not token:
        return None
    # Sent as `Authorization: Bearer <token>`: one run of visible ASCII characters.
    if not all("!" <= char <= "~" for char in token):
        raise SettingsError(
            "GQL_CHECKOUT_METRICS_TOKEN must be visible ASCII characters without spaces"
        )
    if len(token) < MIN_METRICS_TOKEN_LENGTH:
        raise SettingsError(
            f"GQL_CHECKOUT_METRICS_TOKEN needs at least {MIN_METRICS_TOKEN_LENGTH} characters"
        )
    return token


def _parse_secrets(raw: str) -> tuple[str, ...]:
    parsed = tuple(part.strip() for part in raw.split(",") if part.strip())
    short = [index for index, secret in enumerate(parsed) if len(secret) < MIN_SECRET_LENGTH]
    if short:
        raise SettingsError(
            f"GQL_CHECKOUT_HCP_SECRET: every secret needs at least {MIN_SECRET_LENGTH} "
            f"characters (secret #{short[0] + 1} is shorter)"
        )
    return parsed


def _development_secret(database_url: str) -> str:
    """A secret generated once and kept beside the SQLite file, so tokens survive restarts."""
    path = _secret_path(database_url)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        # O_EXCL: two processes starting together agree on the first secret written.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


def _secret_path(database_url: str) -> Path:
    database = sqlite_file(database_url)
    if database is not None:
        return Path(database).with_name(Path(database).name + ".hcp-secret")
    return Path(".gql_checkout.hcp-secret")
