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
from conftest import VECTOR_CASES, policy_of, read_expected, read_queries, read_rows, run_cli

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


def test_bad_input_raises_the_package_error_on_the_driver(spark):
    from gpucredit import spark as gs

    events = pa.table({"op": ["add", "add", "add"], "account": ["a", "b", "c"], "credit_id": ["c", "d", "e"],
                       "timestamp": pa.array([1, 2, 3], pa.int64()), "amount": pa.array([5, 7, -1], pa.int64()),
                       "expiration": pa.array([10, 10, 10], pa.int64()), "seq": pa.array([10, 11, 12], pa.int64())})
    queries = _queries(["a", "b"], [3, 3])
    for call in (lambda ev: gs.balances(ev, spark.createDataFrame(queries), buckets=2),
                 lambda ev: gs.intervals(ev, buckets=2),
                 lambda ev: gs.report(ev, 0, 10, 5, buckets=2)):
        with pytest.raises(gpucredit.InputError) as raised:
            call(spark.createDataFrame(events))
        error = raised.value
        assert error.source == "events" and error.row == 12 and error.account == "c", str(error)
        assert "negative amount" in error.reason and "order 12" in str(error) and "'c'" in str(error), str(error)
    with pytest.raises(ValueError, match="order column"):
        gs.balances(spark.createDataFrame(events.drop(["seq"])), spark.createDataFrame(queries))
    with pytest.raises(TypeError, match="timestamp"):
        gs.intervals(spark.createDataFrame(events).withColumn("timestamp", spark_functions().col("timestamp").cast("string")))
    with pytest.raises(gpucredit.InputError, match="after"):
        gs.report(spark.createDataFrame(events), 10, 0, 1)


def spark_functions():
    from pyspark.sql import functions

    return functions


def _fields(rows) -> list[list[str]]:
    """Rows as the CLI writes their fields: integers in full, empty for null."""
    return [["" if v is None else str(v) for v in row] for row in rows]


def _readable(case) -> bool:
    try:
        _events(case)
        return True
    except pa.ArrowInvalid:
        return False


def test_intervals_and_report_equal_the_cli_on_every_vector(spark, cli, tmp_path):
    from gpucredit import spark as gs

    checked = 0
    for case in CASES:
        if not _readable(case):
            continue
        events = _events(case)
        policy = policy_of(case)
        df = spark.createDataFrame(events)
        cli_rows = tmp_path / f"{case.name}.csv"
        run = run_cli(cli, "intervals", "--events", str(case / "events.csv"), "--out", str(cli_rows), "--policy", policy)
        assert run.returncode == 0, run.stderr
        want = [row if len(row) == 6 else [*row, "0"] for row in read_rows(cli_rows)]  # slope only with jobs
        got = _fields(gs.intervals(df, policy, buckets=3).collect())
        assert sorted(got) == sorted(want), case.name

        times = events.column("timestamp").to_pylist() or [0]
        lo, hi = max(min(times) - 1, -(2**63)), min(max(times) + 1, 2**63 - 1)
        every = max(1, (hi - lo) // 6)
        out = tmp_path / f"{case.name}-report"
        run = run_cli(cli, "report", "--events", str(case / "events.csv"), "--from", str(lo), "--to", str(hi),
                      "--every", str(every), "--policy", policy, "--out", str(out))
        assert run.returncode == 0, run.stderr
        result = gs.report(df, lo, hi, every, policy, buckets=3)
        got_balances = _fields(result.balances.collect())
        assert sorted(got_balances) == sorted(read_rows(out / "balances.csv")), case.name
        got_summary = _fields(result.summary.collect())
        assert sorted(got_summary) == sorted(read_rows(out / "summary.csv")), case.name
        checked += 1
    assert checked >= 30


def test_a_task_uses_the_gpus_spark_gave_it():
    from types import SimpleNamespace

    from gpucredit.spark import task_devices

    assert task_devices({}) is None
    assert task_devices({"gpu": SimpleNamespace(addresses=[])}) is None
    assert task_devices({"gpu": SimpleNamespace(addresses=["1"])}) == "1"
    assert task_devices({"gpu": SimpleNamespace(addresses=["0", " 2"]), "fpga": None}) == "0,2"
