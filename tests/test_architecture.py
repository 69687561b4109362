"""The layers of pyproject.toml's import-linter contracts hold, and the contracts bite.

`make lint` runs lint-imports too; here the suite also proves that a module which climbs
a layer (the domain importing a transport) breaks a contract, on a copy of the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import gql_checkout

ROOT = Path(gql_checkout.__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("gql_checkout", "tests", "bench", "testkit")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_every_contract_is_kept() -> None:
    result = _lint_imports(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_domain_module_that_imports_a_transport_breaks_the_layers(tmp_path: Path) -> None:
    # given: a copy of the code in which the domain reaches up into the GraphQL adapter
    root = _copy(tmp_path)
    (root / "gql_checkout" / "domain" / "leak.py").write_text(
        "from gql_checkout.graphql.types import CheckoutSessionType\n"
    )

    result = _lint_imports(root)

    assert result.returncode != 0
    assert "gql_checkout.domain.leak -> gql_checkout.graphql.types" in result.stdout


def test_a_benchmark_helper_imported_by_a_test_breaks_independence(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "tests" / "test_leak.py").write_text("import bench.perf\n")

    result = _lint_imports(root)

    assert result.returncode != 0
    assert "tests.test_leak -> bench.perf" in result.stdout
