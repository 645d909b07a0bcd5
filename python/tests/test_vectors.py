"""Every shared vector through the Python API: CSV, pyarrow and Polars sources, list,
NumPy and Arrow queries, the Arrow and NumPy answers, and the interval table."""

from __future__ import annotations

import csv
import io

import numpy as np
import pyarrow as pa
import pytest

import gpucredit
from conftest import VECTOR_CASES, events_table, policy_of, read_expected, read_queries, read_rows, run_cli

GOOD = [c for c in VECTOR_CASES if (c / "expected.csv").exists()]
BAD = [c for c in VECTOR_CASES if (c / "expect-error").exists()]
ids = lambda case: case.name  # noqa: E731


def test_the_vectors_are_there():
    assert len(GOOD) >= 20 and len(BAD) >= 5


@pytest.mark.parametrize("case", GOOD, ids=ids)
def test_csv_source(case):
    ledger = gpucredit.Ledger(case / "events.csv", policy=policy_of(case))
    accounts, timestamps = read_queries(case / "queries.csv")
    expected = read_expected(case / "expected.csv")
    assert ledger.balances(accounts, timestamps).to_pylist() == expected
    masked = ledger.balances_numpy(np.array(accounts, dtype=object), np.array(timestamps))
    assert [None if m else int(v) for v, m in zip(masked.data, np.ma.getmaskarray(masked))] == expected
    assert [ledger.balance(a, t) for a, t in zip(accounts, timestamps)] == expected


@pytest.mark.parametrize("case", GOOD, ids=ids)
def test_arrow_sources(case):
    import polars as pl

    table = events_table(read_rows(case / "events.csv"))
    accounts, timestamps = read_queries(case / "queries.csv")
    expected = read_expected(case / "expected.csv")
    queries = gpucredit.read_queries(case / "queries.csv")
    assert queries["account"].to_pylist() == accounts and queries["timestamp"].to_pylist() == timestamps
    for source in (table, pl.from_arrow(table), table.to_reader(max_chunksize=3)):
        ledger = gpucredit.Ledger(source, policy=policy_of(case))
        got = ledger.balances(queries["account"], queries["timestamp"])
        assert got.type == pa.int64()
        assert got.to_pylist() == expected
        assert ledger.balances(pa.array(accounts, pa.large_string()), pa.array(timestamps)).to_pylist() == expected
        assert ledger.balances(np.array(accounts), np.array(timestamps)).to_pylist() == expected


@pytest.mark.parametrize("case", GOOD, ids=ids)
def test_intervals_equal_the_cli(case, cli, tmp_path):
    out = tmp_path / "intervals.csv"
    done = run_cli(cli, "intervals", "--events", str(case / "events.csv"), "--out", str(out), "--policy", policy_of(case))
    assert done.returncode == 0, done.stderr
    with open(out, newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    expected = [[r[0], r[1], *(int(v) for v in r[2:])] for r in rows]
    table = gpucredit.Ledger(case / "events.csv", policy=policy_of(case)).intervals()
    # One rule for both: the slope column exactly when the ledger has jobs (SPEC section 10).
    jobs = any(r[0] == "run" for r in read_rows(case / "events.csv"))
    assert header == ["account", "credit_id", "begin", "end", "amount"] + (["slope"] if jobs else [])
    assert table.column_names == header
    got = [list(r.values()) for r in table.to_pylist()]
    assert got == expected


@pytest.mark.parametrize("case", BAD, ids=ids)
def test_bad_csv_raises_what_the_cli_prints(case, cli, tmp_path):
    events = case / "events.csv"
    with pytest.raises(gpucredit.InputError) as info:
        gpucredit.Ledger(events, policy=policy_of(case))
    error = info.value
    assert error.source == str(events)
    assert isinstance(error.line, int) and error.line >= 1
    assert error.row is None
    out = tmp_path / "out.csv"
    done = run_cli(cli, "balances", "--events", str(events), "--queries", str(case / "queries.csv"), "--out", str(out))
    assert done.returncode == 2
    assert done.stderr.strip() == str(error)
    assert str(error) == f"{events}:{error.line}: {error.reason}"


def _arrow_representable(rows):
    try:
        return all(len(r) == 6 and all(-(2**63) <= int(v) < 2**63 for v in r[3:5]) for r in rows) and all(
            r[5] == "" or -(2**63) <= int(r[5]) < 2**63 for r in rows
        )
    except ValueError:
        return False


@pytest.mark.parametrize("case", BAD, ids=ids)
def test_bad_rows_through_arrow_name_the_row(case):
    text = (case / "events.csv").read_text(encoding="utf-8")
    header, *_ = text.splitlines()
    rows = [r for r in csv.reader(io.StringIO(text))][1:]
    if header != "op,account,credit_id,timestamp,amount,expiration" or not _arrow_representable(rows):
        pytest.skip("not representable as an int64 Arrow table")
    with pytest.raises(gpucredit.InputError) as csv_info:
        gpucredit.Ledger(case / "events.csv", policy=policy_of(case))
    with pytest.raises(gpucredit.InputError) as info:
        gpucredit.Ledger(events_table(rows), policy=policy_of(case), name="frame")
    error = info.value
    assert error.source == "frame" and error.line is None
    assert error.row == csv_info.value.line - 2  # header on line 1, rows from 0
    assert error.reason == csv_info.value.reason
    assert str(error) == f"frame: row {error.row}: {error.reason}"
