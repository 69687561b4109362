"""The checkout domain: what a session and a merchant are, the one error tree, input
validation and the public field table. Imports no transport and no storage
(import-linter's contracts in pyproject.toml hold it to that)."""
