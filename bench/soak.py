"""Soak: a bounded mixed load against a real server, then proof that no write was lost.

    .venv/bin/python -m bench.soak [--seconds N] [--database sqlite|postgresql]
                                 [--concurrency C] [--subscribers S] [--seed N]

The soak itself lives in testkit/soak.py, which tests/e2e/test_soak.py runs briefly too.
"""

from __future__ import annotations

from testkit.soak import main

if __name__ == "__main__":
    main()
