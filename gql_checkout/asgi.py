"""The ASGI entry point uvicorn imports (``--factory``): settings from the environment."""

from __future__ import annotations

import gc

from starlette.applications import Starlette

from gql_checkout.app import create_app
from gql_checkout.settings import Settings

# Young collections after 5,000 net new objects, not 700. Each one moves what the requests
# in flight hold into an older generation, and enough of that makes a full collection,
# which walks every remembered row too: with the default, 10 s of polling made 9 full
# collections of 37-55 ms each (p99 31-48 ms); with this, none, young ones <= 2.5 ms
# (p99 8 ms). bench.perf measures it; docs/performance.md.
GC_THRESHOLDS = (5_000, 10, 10)


def app_from_env() -> Starlette:
    app = create_app(Settings.from_env())
    # What startup built (schema, SQLAlchemy, ~85k objects) lives as long as the server:
    # kept out of the collector, a full collection takes ~0 ms instead of ~30 ms, a pause
    # every request in flight would wait out.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return app
