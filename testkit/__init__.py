"""What the tests and the benchmarks share: real servers and a real PostgreSQL, GraphQL
documents, a test clock, and the load generator with its ledger. Neither tests/ nor bench/
imports the other; both import this."""
