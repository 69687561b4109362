"""The domain imports no transport: the core modules never import a web or GraphQL library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gql_checkout

PACKAGE = Path(gql_checkout.__file__).resolve().parent
CORE_MODULES = [
    "domain",
    "service",
    "merchants",
    "repository",
    "validation",
    "errors",
    "tokens",
    "clock",
    "bus",
    "services",
]
TRANSPORTS = frozenset({"strawberry", "starlette", "graphql", "uvicorn"})


def transport_imports(source: str) -> list[str]:
    """The absolute imports in ``source`` whose top-level package is a transport."""
    imported: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.append(node.module)
    return [name for name in imported if name.partition(".")[0] in TRANSPORTS]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_modules_import_no_transport(module: str) -> None:
    source = (PACKAGE / f"{module}.py").read_text()

    assert transport_imports(source) == []


def test_the_check_sees_every_import_form() -> None:
    # given: the forms a transport import can take, hidden in functions and TYPE_CHECKING too
    source = """
import os, starlette.requests
from strawberry import type
from graphql.error import GraphQLError
from . import graphql
from gql_checkout.graphql import schema
if TYPE_CHECKING:
    import uvicorn as server
def later():
    import strawberry.types
"""

    assert transport_imports(source) == [
        "starlette.requests",
        "strawberry",
        "graphql.error",
        "uvicorn",
        "strawberry.types",
    ]
