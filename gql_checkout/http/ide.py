"""GraphiQL, the development IDE of ``GET /graphql``, served with no third-party origin.

``page()`` is the HTML the GraphQL view answers a browser with. It loads only the files
of ``static/graphiql/``: the npm releases of graphiql, react and react-dom, copied there
unchanged (``static/graphiql/README.md`` says which, under what licence and how to update
them). ``routes`` serves those files and nothing else, each at a URL that holds its
package's version, so a browser may keep it for a year: an update changes the URL. Both
are for development only; ``app.py`` mounts neither in production.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

STATIC_DIR = Path(__file__).with_name("static") / "graphiql"
STATIC_PREFIX = "/graphql/static/"
GRAPHQL_PATH = "/graphql"
_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


@dataclass(frozen=True)
class Asset:
    path: str  # under STATIC_DIR: "<package>-<version>/<file>"
    media_type: str

    @property
    def url(self) -> str:
        return STATIC_PREFIX + self.path


REACT = Asset("react-18.3.1/react.production.min.js", _JS)
REACT_DOM = Asset("react-dom-18.3.1/react-dom.production.min.js", _JS)
GRAPHIQL = Asset("graphiql-3.9.0/graphiql.min.js", _JS)
GRAPHIQL_CSS = Asset("graphiql-3.9.0/graphiql.min.css", _CSS)
# The only files served: a request names one of these keys or gets 404, so no path
# (``..``, an absolute path, a LICENSE or README beside them) ever reaches the disk.
ASSETS = {asset.path: asset for asset in (REACT, REACT_DOM, GRAPHIQL, GRAPHIQL_CSS)}


@cache
def _content(path: str) -> bytes:
    return (STATIC_DIR / path).read_bytes()


async def asset(request: Request) -> Response:
    found = ASSETS.get(request.path_params["path"])
    if found is None:
        raise HTTPException(404, "No such GraphiQL asset.")
    return Response(_content(found.path), media_type=found.media_type, headers=_IMMUTABLE)


routes = [Route(STATIC_PREFIX + "{path:path}", asset, methods=["GET"])]

_DEFAULT_QUERY = """\
# gql_checkout GraphiQL (development only)
#
# Reads and subscriptions, in Headers below:
#   {"X-Merchant-Id": "<uuid>"}
# Mutations:
#   {"Authorization": "Bearer <apiKey>"}
# `make run` prints both. Ctrl-Enter runs.

query Session($id: ID!) {
  checkoutSession(id: $id) {
    id
    checkoutSessionStatus
    amount
    currency
    expiresAt
  }
}
"""
_DEFAULT_HEADERS = '{\n  "X-Merchant-Id": ""\n}'


def _js_string(text: str) -> str:
    """A JavaScript string literal that cannot end the <script> element holding it."""
    return json.dumps(text).replace("</", "<\\/")


# Same origin as the page: the HTTP endpoint, and the websocket one for subscriptions
# (graphql-transport-ws, bundled in graphiql.min.js). A websocket carries no headers of
# the browser's: GraphiQL sends the Headers tab's JSON as the connection_init payload,
# where the gateway reads the merchant as "merchantId", so a subscription's payload also
# gets X-Merchant-Id under that name.
_BOOT_SCRIPT = f"""
"use strict";
(function () {{
  var url = new URL({_js_string(GRAPHQL_PATH)}, window.location.href);
  var graphiqlFetcher = GraphiQL.createFetcher({{
    url: url.href,
    subscriptionUrl: url.href.replace(/^http/, "ws"),
  }});

  function isSubscription(params, opts) {{
    var ast = opts && opts.documentAST;
    return Boolean(ast) && ast.definitions.some(function (definition) {{
      return definition.kind === "OperationDefinition" &&
        definition.operation === "subscription" &&
        (!params.operationName ||
          (definition.name && definition.name.value === params.operationName));
    }});
  }}

  function fetcher(params, opts) {{
    var headers = (opts && opts.headers) || {{}};
    var merchant = Object.keys(headers).find(function (name) {{
      return name.toLowerCase() === "x-merchant-id";
    }});
    if (merchant && !("merchantId" in headers) && isSubscription(params, opts)) {{
      var payload = Object.assign({{ merchantId: headers[merchant] }}, headers);
      opts = Object.assign({{}}, opts, {{ headers: payload }});
    }}
    return graphiqlFetcher(params, opts);
  }}

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {{
      fetcher: fetcher,
      defaultQuery: {_js_string(_DEFAULT_QUERY)},
      defaultHeaders: {_js_string(_DEFAULT_HEADERS)},
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      defaultEditorToolsVisibility: true,
      inputValueDeprecation: true,
    }})
  );
}})();
"""
_STYLE = """
html, body { height: 100%; margin: 0; overflow: hidden; }
#graphiql { height: 100vh; }
"""


def _sha256_source(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


# 'self' and the one inline script, by its hash: no other origin, no other inline script,
# no eval. Styles allow 'unsafe-inline' (still no other origin): GraphiQL's dialogs add a
# <style> element at run time (react-remove-scroll), which a hash cannot name.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"script-src 'self' {_sha256_source(_BOOT_SCRIPT)}",
        "style-src 'self' 'unsafe-inline'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
    )
)


@cache
def page() -> str:
    """The complete GraphiQL page: local scripts and styles only, against /graphql."""
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta http-equiv="Content-Security-Policy" content="{escape(CONTENT_SECURITY_POLICY)}">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>gql_checkout GraphiQL</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="{escape(GRAPHIQL_CSS.url)}">
    <style>{_STYLE}</style>
  </head>
  <body>
    <div id="graphiql">Loading…</div>
    <script src="{escape(REACT.url)}"></script>
    <script src="{escape(REACT_DOM.url)}"></script>
    <script src="{escape(GRAPHIQL.url)}"></script>
    <script>{_BOOT_SCRIPT}</script>
  </body>
</html>
"""
