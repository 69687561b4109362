"""Webhook signing secrets: made, sealed for storage, opened to sign.

A signing secret must be at hand, in full, to sign every delivery, so a hash cannot
stand in for it (as it does for API keys). It is stored sealed with AES-256-GCM under
a key derived (HKDF-SHA256) from the hcpToken secret: a copy of the database alone
(a backup, a replica, a leaked dump) does not let anyone forge deliveries. Any of the
configured hcpToken secrets opens a sealed secret, so rotating GQL_CHECKOUT_HCP_SECRET
the usual way (new one first, old one kept) keeps every endpoint working.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_PREFIX = "whsec_"  # noqa: S105 (the form of every secret, not one)
_SEALED_PREFIX = "v1."
_NONCE_BYTES = 12
_INFO = b"gql_checkout webhook endpoint secrets v1"


def new_secret() -> str:
    """``whsec_`` and the base64 of 32 random bytes (Standard Webhooks' form)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class SecretBox:
    def __init__(self, server_secrets: Sequence[str]) -> None:
        if not server_secrets:
            raise ValueError("at least one server secret is needed")
        self._keys = [AESGCM(_derive(secret)) for secret in server_secrets]

    def seal(self, secret: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[0].encrypt(nonce, secret.encode(), _INFO)
        return _SEALED_PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str) -> str:
        """The secret; ValueError if no configured server secret sealed it."""
        if not sealed.startswith(_SEALED_PREFIX):
            raise ValueError("not a sealed webhook secret")
        raw = base64.b64decode(sealed.removeprefix(_SEALED_PREFIX))
        nonce, ciphertext = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        for key in self._keys:
            try:
                return key.decrypt(nonce, ciphertext, _INFO).decode()
            except InvalidTag:
                continue
        raise ValueError("no configured GQL_CHECKOUT_HCP_SECRET opens this webhook secret")


def _derive(server_secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        server_secret.encode()
    )
