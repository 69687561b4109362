"""gql_checkout: a GraphQL gateway for hosted-checkout-page sessions."""

__version__ = "0.1.0"
