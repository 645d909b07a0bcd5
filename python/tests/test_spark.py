"""gpucredit.spark on Spark's local mode (local[2]): every vector equals its expected
answers, a skewed random fleet equals the single-process Ledger, bad input fails with
the package's message.

Skipped when pyspark or Java is missing, unless GPUCREDIT_REQUIRE_SPARK=1 (CI sets it)."""

from __future__ import annotations

import os
import random
import shutil
import sys

import pyarrow as pa
import pyarrow.csv
import pytest

import gpucredit
from conftest import VECTOR_CASES, policy_of, read_expected, read_queries

REQUIRED = os.environ.get("GPUCREDIT_REQUIRE_SPARK") == "1"


@pytest.fixture(scope="module")
def spark():
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        if REQUIRED:
            pytest.fail("GPUCREDIT_REQUIRE_SPARK=1 but pyspark is not installed")
        pytest.skip("pyspark is not installed")
    if shutil.which("java") is None:
        if REQUIRED:
            pytest.fail("GPUCREDIT_REQUIRE_SPARK=1 but no Java runtime is installed")
        pytest.skip("no Java runtime")
    os.environ["PYSPARK_PYTHON"] = sys.executable  # executors import gpucredit from this environment
    session = (SparkSession.builder.master("local[2]").appName("gpucredit-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
               .config("spark.driver.memory", "1g").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _events(case) -> pa.Table:
    table = pyarrow.csv.read_csv(
        case / "events.csv",
        convert_options=pyarrow.csv.ConvertOptions(column_types={
            "op": pa.string(), "account": pa.string(), "credit_id": pa.string(), "timestamp": pa.int64(),
            "amount": pa.int64(), "expiration": pa.int64()}, strings_can_be_null=False),
    )
    return table.append_column("seq", pa.array(range(table.num_rows), pa.int64()))


def _queries(accounts, times) -> pa.Table:
    return pa.table({"account": pa.array(accounts, pa.string()), "timestamp": pa.array(times, pa.int64())})


CASES = [c for c in VECTOR_CASES if (c / "expected.csv").exists()]


def test_every_vector_equals_its_expected_answers(spark):
    from gpucredit import spark as gs

    for case in CASES:
        accounts, times = read_queries(case / "queries.csv")
        rows = gs.balances(spark.createDataFrame(_events(case)), spark.createDataFrame(_queries(accounts, times)),
                           policy_of(case), buckets=3).collect()
        assert [r.account for r in rows] == accounts, case.name
        assert [r.timestamp for r in rows] == times, case.name
        assert [r.balance for r in rows] == read_expected(case / "expected.csv"), case.name


def test_a_skewed_fleet_equals_the_single_process_ledger(spark):
    from gpucredit import spark as gs

    rng = random.Random(7)
    rows = []
    for i in range(6000):
        # One account holds most of the events: its bucket is far larger than the others.
        account = "giant" if rng.random() < 0.7 else f"org-{rng.randrange(300)}"
        t = rng.randrange(100_000)
        if rng.random() < 0.35:
            rows.append(("add", account, f"c{i}", t, rng.randrange(1, 5000), rng.randrange(100, 30_000)))
        elif rng.random() < 0.9:
            rows.append(("use", account, "", t, rng.randrange(1, 400), None))
        else:
            rows.append(("run", account, f"job{i}", t, rng.randrange(1, 5), rng.randrange(0, 200)))
    names = ["op", "account", "credit_id", "timestamp", "amount", "expiration"]
    events = pa.table({n: pa.array([r[k] for r in rows], pa.int64() if k >= 3 else pa.string())
                       for k, n in enumerate(names)})
    events = events.append_column("seq", pa.array(range(len(rows)), pa.int64()))
    accounts = [rng.choice(["giant", "nobody"] + [f"org-{a}" for a in range(300)]) for _ in range(20_000)]
    times = [rng.randrange(-1000, 140_000) for _ in range(20_000)]
    for policy in ("drain", "reject"):
        want = gpucredit.Ledger.from_arrow(events.select(names), policy=policy).balances(accounts, times).to_pylist()
        got = gs.balances(spark.createDataFrame(events), spark.createDataFrame(_queries(accounts, times)), policy,
                          buckets=4).collect()
        assert [r.balance for r in got] == want, policy


def test_bad_input_fails_with_the_package_message(spark):
    from gpucredit import spark as gs

    events = pa.table({"op": ["add", "add"], "account": ["a", "b"], "credit_id": ["c", "d"],
                       "timestamp": pa.array([1, 2], pa.int64()), "amount": pa.array([5, -1], pa.int64()),
                       "expiration": pa.array([10, 10], pa.int64()), "seq": pa.array([0, 1], pa.int64())})
    queries = _queries(["a", "b"], [3, 3])
    with pytest.raises(Exception) as raised:
        gs.balances(spark.createDataFrame(events), spark.createDataFrame(queries), buckets=1).collect()
    assert "InputError" in str(raised.value) and "negative amount" in str(raised.value), str(raised.value)[-2000:]
    with pytest.raises(ValueError, match="order column"):
        gs.balances(spark.createDataFrame(events.drop(["seq"])), spark.createDataFrame(queries))
