"""Shared helpers: where the vectors and the CLI are, and CSV reading for tests."""

from __future__ import annotations

import csv
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VECTORS = pathlib.Path(os.environ.get("GPUCREDIT_VECTORS", ROOT / "tests" / "vectors"))
VECTOR_CASES = sorted(p for p in VECTORS.iterdir() if p.is_dir())


def cli_path() -> str | None:
    """The gpucredit CLI: $GPUCREDIT_CLI, else the one pip installed beside this Python."""
    if os.environ.get("GPUCREDIT_CLI"):
        return os.environ["GPUCREDIT_CLI"]
    beside = pathlib.Path(sys.executable).parent / "gpucredit"
    if beside.exists():
        return str(beside)
    return shutil.which("gpucredit")


@pytest.fixture(scope="session")
def cli() -> str:
    path = cli_path()
    if path is None:
        if os.environ.get("GPUCREDIT_REQUIRE_CLI"):
            pytest.fail("GPUCREDIT_REQUIRE_CLI is set but no gpucredit CLI was found")
        pytest.skip("no gpucredit CLI (set GPUCREDIT_CLI)")
    return path


def run_cli(cli: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli, *args], capture_output=True, text=True, check=False)


def read_rows(path: pathlib.Path) -> list[list[str]]:
    """The data rows of a CSV file (header dropped), as strings."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return [r for r in rows[1:] if r]


def read_queries(path: pathlib.Path) -> tuple[list[str], list[int]]:
    rows = read_rows(path)
    return [r[0] for r in rows], [int(r[1]) for r in rows]


def read_expected(path: pathlib.Path) -> list[int | None]:
    return [int(r[2]) if r[2] != "" else None for r in read_rows(path)]


def policy_of(case: pathlib.Path) -> str:
    p = case / "policy"
    return p.read_text().strip() if p.exists() else "drain"


def events_table(rows: list[list[str]]):
    """Events rows (as strings) as a pyarrow Table with SPEC section 7's columns."""
    import pyarrow as pa

    def opt(v: str) -> int | None:
        return int(v) if v != "" else None

    return pa.table(
        {
            "op": pa.array([r[0] for r in rows], pa.string()),
            "account": pa.array([r[1] for r in rows], pa.string()),
            "credit_id": pa.array([r[2] if r[2] != "" else None for r in rows], pa.string()),
            "timestamp": pa.array([int(r[3]) for r in rows], pa.int64()),
            "amount": pa.array([int(r[4]) for r in rows], pa.int64()),
            "expiration": pa.array([opt(r[5]) for r in rows], pa.int64()),
        }
    )
