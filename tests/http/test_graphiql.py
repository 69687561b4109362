"""GraphiQL works offline: its page loads only the gateway's own vendored files."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from html.parser import HTMLParser

import httpx
import pytest
from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.http import ide
from gql_checkout.settings import Environment, Settings
from testkit.clock import Clock

pytestmark = pytest.mark.anyio

HTML = {"Accept": "text/html"}
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
README = ide.STATIC_DIR / "README.md"


class Page(HTMLParser):
    """What a browser would fetch for the page, and what it would run inline."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.inline_scripts: list[str] = []
        self.policy: str | None = None
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            if values.get("src") is not None:
                self.scripts.append(str(values["src"]))
            else:
                self._in_inline_script = True
                self.inline_scripts.append("")
        elif tag == "link" and values.get("rel") == "stylesheet":
            self.stylesheets.append(str(values["href"]))
        elif tag == "meta" and values.get("http-equiv") == "Content-Security-Policy":
            self.policy = values["content"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script:
            self.inline_scripts[-1] += data

    @property
    def assets(self) -> list[str]:
        return self.scripts + self.stylesheets

    def directive(self, name: str) -> list[str]:
        assert self.policy is not None
        for directive in self.policy.split(";"):
            words = directive.split()
            if words and words[0] == name:
                return words[1:]
        raise AssertionError(f"no {name} in {self.policy!r}")


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture
async def page(client: httpx.AsyncClient) -> Page:
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == ide.page()
    return parse(response.text)


@pytest.fixture
async def production(
    app: Starlette, settings: Settings, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    locked = create_app(replace(settings, environment=Environment.PRODUCTION), clock=clock)
    transport = httpx.ASGITransport(app=locked)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await locked.state.container.stop()


async def test_the_page_loads_only_local_scripts_and_styles(page: Page) -> None:
    assert len(page.scripts) == 3  # react, react-dom, graphiql
    assert len(page.stylesheets) == 1
    for url in page.assets:
        assert url.startswith(ide.STATIC_PREFIX), url
        assert not url.startswith("//")
        assert "http://" not in url
        assert "https://" not in url
    assert len(page.inline_scripts) == 1
    assert "GraphiQL.createFetcher" in page.inline_scripts[0]


async def test_every_asset_is_served_for_a_year(client: httpx.AsyncClient, page: Page) -> None:
    for url in page.assets:
        response = await client.get(url)

        assert response.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert response.headers["content-type"] == MEDIA_TYPES[suffix]
        assert len(response.content) > 10_000
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        vendored = ide.STATIC_DIR / url.removeprefix(ide.STATIC_PREFIX)
        assert response.content == vendored.read_bytes()


async def test_the_policy_allows_only_this_origin_and_the_page_script(page: Page) -> None:
    assert page.directive("default-src") == ["'none'"]
    hashes = [
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in page.inline_scripts
    ]
    assert page.directive("script-src") == ["'self'", *hashes]
    assert page.directive("style-src") == ["'self'", "'unsafe-inline'"]
    assert page.directive("connect-src") == ["'self'"]
    for name in ("img-src", "font-src"):
        assert page.directive(name) == ["'self'", "data:"]


async def test_unknown_assets_are_404(client: httpx.AsyncClient) -> None:
    for path in (
        "graphiql-3.9.0/graphiql.js",
        "graphiql-3.9.0/graphiql.min.js.map",
        "graphiql-3.9.0/LICENSE",  # on disk beside the assets, still not served
        "README.md",
        "graphiql-3.9.0/",
        "",
    ):
        response = await client.get(ide.STATIC_PREFIX + path)

        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/%2e%2e/ide.py",  # gql_checkout/http/ide.py
        "..%2F..%2Fide.py",
        "graphiql-3.9.0/%2e%2e/%2e%2e/%2e%2e/app.py",  # gql_checkout/app.py
        "%2Fetc%2Fpasswd",  # an absolute path
        "/etc/passwd",
        "graphiql-3.9.0/%2e%2e/react-18.3.1/react.production.min.js",
    ],
)
async def test_paths_out_of_the_folder_are_refused(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(ide.STATIC_PREFIX + path)

    assert "/graphql/static/" in response.request.url.raw_path.decode()  # not normalised away
    assert response.status_code == 404
    assert "def page" not in response.text
    assert "root:" not in response.text


async def test_production_serves_neither_the_page_nor_its_assets(
    production: httpx.AsyncClient,
) -> None:
    locked = await production.get("/graphql", headers=HTML)

    assert locked.status_code != 200
    assert "graphiql" not in locked.text.lower()
    for asset in ide.ASSETS.values():
        assert (await production.get(asset.url)).status_code == 404


def test_the_vendored_files_are_the_ones_documented() -> None:
    """README.md's table lists every served file with its checksum: an update that
    forgets the notes (or the notes that forget a file) fails here."""
    documented = dict(
        re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", README.read_text(), re.M)
    )

    assert set(documented) == set(ide.ASSETS)
    for path, sha256 in documented.items():
        assert hashlib.sha256((ide.STATIC_DIR / path).read_bytes()).hexdigest() == sha256
        assert (ide.STATIC_DIR / path).parent.joinpath("LICENSE").is_file()
