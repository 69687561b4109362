"""A merchant's credentials as a client holds them, and the hcpToken secret of test servers."""

from __future__ import annotations

from dataclasses import dataclass

TEST_SECRET = "test-secret-" + "x" * 40


@dataclass(frozen=True)
class MerchantCredentials:
    merchant_id: str
    api_key: str

    @property
    def read_headers(self) -> dict[str, str]:
        return {"X-Merchant-Id": self.merchant_id}

    @property
    def write_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}
