"""hcpToken: a JWT (HS256) bound to one session and its merchant, expiring with it.

The claims hold no issue time or nonce, so a session's token is the same on every
read (and its ETag stays put while the session does not change). Whether the
session is still open is checked against the database by the service, not here.

Tokens are verified by PyJWT. They are signed here, in the same bytes PyJWT would write
(tests/services/test_hcp_auth.py compares them): every poll answers with its session's token, and
``jwt.encode`` spends ~23 µs checking arguments and encoding a header that never changes.
Here the header is encoded once, and so is the HMAC's start: the key and the header are
hashed once, and each token copies that state (``hmac.digest`` took 3.3 µs a token, as
OpenSSL 3 sets up the key every time; a copy and an update take 2.1). The ids go to
orjson as UUIDs, which it writes in C as ``str`` would (``UUID.__str__`` is Python: 0.8
µs each); asyncpg's own UUID class is not one orjson knows, and goes through ``str``. A
token not remembered (polls spread over 1,000,000 sessions) takes 4.0 µs, not 6.8.
A session stores the token it was created with (migration 0003), so reads sign only for
rows older than that and for sessions whose key no longer signs (``signed_with_current_key``).
"""

from __future__ import annotations

import hashlib
import hmac
from binascii import b2a_base64
from dataclasses import dataclass
from datetime import datetime
from math import ceil
from uuid import UUID

import jwt
import orjson

from gql_checkout.domain.errors import Unauthenticated
from gql_checkout.domain.memo import RepeatMemo

_ALGORITHM = "HS256"
_AUDIENCE = "gql-checkout:hcp"


@dataclass(frozen=True, slots=True)
class HcpClaims:
    checkout_session_id: UUID
    merchant_id: UUID


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _base64url(data: bytes) -> bytes:
    # What base64.urlsafe_b64encode does, less its two Python calls, then unpadded.
    return b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def _key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class HcpTokens:
    """Signs with the first secret; verifies with any (rotation: add new first, drop old later)."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        if not secrets:
            raise ValueError("at least one hcpToken secret is needed")
        # The header segment as PyJWT writes it for this key (it never changes), and the
        # signature's HMAC with the key and that segment already hashed.
        header = jwt.encode(
            {}, secrets[0], algorithm=_ALGORITHM, headers={"kid": _key_id(secrets[0])}
        )
        self._header_text = header.partition(".")[0] + "."
        self._signed_header = self._header_text.encode()
        self._signature_start = hmac.new(secrets[0].encode(), self._signed_header, "sha256")
        self._verifying = {_key_id(secret): secret for secret in secrets}
        # A token depends only on fields that never change and on the key, so it can be
        # remembered: polls then skip the HMAC and JSON work.
        self._signed = RepeatMemo(self._sign)

    def signed_with_current_key(self, token: str) -> bool:
        """Whether ``token`` carries the header this key signs with (its algorithm and key
        id): a token stored earlier is answered as it is only while its key still signs."""
        return token.startswith(self._header_text)

    def sign(self, *, checkout_session_id: UUID, merchant_id: UUID, expires_at: datetime) -> str:
        return self._signed((checkout_session_id, merchant_id, expires_at))

    def _sign(self, fields: tuple[UUID, UUID, datetime]) -> str:
        checkout_session_id, merchant_id, expires_at = fields
        claims = {
            "sub": checkout_session_id,
            "mid": merchant_id,
            "aud": _AUDIENCE,
            "exp": ceil(expires_at.timestamp()),
        }
        payload = _base64url(orjson.dumps(claims, default=str))
        signature = self._signature_start.copy()
        signature.update(payload)
        return (self._signed_header + payload + b"." + _base64url(signature.digest())).decode()

    def verify(self, token: str, *, now: datetime) -> HcpClaims:
        """Checks signature, audience and expiry at ``now`` (the service's clock)."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            secret = self._verifying.get(kid) if isinstance(kid, str) else None
            if secret is None:
                raise Unauthenticated("The hcpToken was not signed by a known key.")
            claims = jwt.decode(
                token,
                secret,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                options={"require": ["sub", "mid", "exp", "aud"], "verify_exp": False},
            )
            if not isinstance(claims["exp"], int) or claims["exp"] <= now.timestamp():
                raise Unauthenticated("The hcpToken has expired.")
            return HcpClaims(
                checkout_session_id=_uuid_claim(claims["sub"]),
                merchant_id=_uuid_claim(claims["mid"]),
            )
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Unauthenticated("The hcpToken is not valid.") from None

    @staticmethod
    def looks_like_token(credential: str) -> bool:
        """Whether a bearer credential is shaped as an hcpToken (a JWT: three dot-separated
        segments) rather than an API key (``gqlc_sk_`` and URL-safe base64, no dot)."""
        return credential.count(".") == 2


def _uuid_claim(value: object) -> UUID:
    # A validly signed claim of another type (a list, a number) is a bad token, not a crash:
    # UUID() raises AttributeError for anything but a string.
    if not isinstance(value, str):
        raise ValueError("a UUID claim must be a string")
    return UUID(value)
