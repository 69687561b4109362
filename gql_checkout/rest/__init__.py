"""The REST shim: GET /v1/checkout-sessions/{id} and GET /v1/hcp/auth."""
