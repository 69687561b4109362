"""The GraphQL adapter: Strawberry types, loaders, context, schema and view."""
