"""HTTP plumbing shared by the transports: the request middleware, problem+json, health,
metrics, logs, the OpenAPI document and raw ASGI helpers."""
