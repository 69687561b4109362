"""The rules: reads and transitions of checkout sessions, merchants and their API keys,
hcpTokens and rate limits. REST and GraphQL call these and nothing below them."""
