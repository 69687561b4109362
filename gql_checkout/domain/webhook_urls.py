"""Which webhook URLs and addresses a delivery may reach (the SSRF policy, section 11).

In production only ``https`` URLs are accepted, and every address a delivery connects
to must be public: the address is checked at every delivery, after DNS
(``services/webhook_transport.py``), and a literal address already when the endpoint
is registered. ``GQL_CHECKOUT_WEBHOOK_ALLOW_PRIVATE_URLS=true`` turns the address check
off (receivers inside the cluster); development allows ``http`` and any address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from gql_checkout.domain.errors import ValidationError

MAX_URL_LENGTH = 2_000
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    https_only: bool
    public_addresses_only: bool

    @classmethod
    def for_environment(cls, *, production: bool, allow_private: bool) -> UrlPolicy:
        return cls(https_only=production, public_addresses_only=production and not allow_private)


DEVELOPMENT = UrlPolicy(https_only=False, public_addresses_only=False)


def parse_webhook_url(value: str, *, policy: UrlPolicy, field: str = "url") -> str:
    """An absolute http(s) URL without credentials or fragment, allowed by ``policy``."""
    url = value.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise ValidationError.on(field, f"must have 1 to {MAX_URL_LENGTH} characters")
    if any(char.isspace() or ord(char) < 0x20 for char in url):
        raise ValidationError.on(field, "must not contain white space or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError.on(field, "is not a valid URL") from None
    allowed_schemes = ("https",) if policy.https_only else ("https", "http")
    if parts.scheme.lower() not in allowed_schemes:
        raise ValidationError.on(field, f"must be an {' or '.join(allowed_schemes)} URL")
    host = parts.hostname
    if not host:
        raise ValidationError.on(field, "must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValidationError.on(field, "must not carry credentials (sign with the secret)")
    if parts.fragment:
        raise ValidationError.on(field, "must not have a fragment")
    if port == 0:
        raise ValidationError.on(field, "must not use port 0")
    if policy.public_addresses_only:
        literal = _literal_address(host)
        if literal is not None and not is_public_address(literal):
            raise ValidationError.on(field, "must not point at a private or reserved address")
    return url


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_public_address(address: IPAddress) -> bool:
    """Whether a delivery may connect to ``address``: a global unicast address, never
    loopback, private, link-local, multicast, reserved or unspecified, in any IPv4-in-IPv6
    form (mapped, 6to4, Teredo, NAT64 are judged by the IPv4 address they carry)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # IPv4-compatible (::a.b.c.d, deprecated), which some stacks still route.
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None
