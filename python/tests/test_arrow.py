"""Arrow and NumPy in and out: producers, string and integer layouts, time units,
Parquet, and what is lent rather than copied."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import gpucredit

EVENTS = {
    "op": ["add", "add", "use", "use", "add", "use"],
    "account": ["org-17", "org-17", "org-17", "org-17", "acme, inc.", "acme, inc."],
    "credit_id": ["plan", "promo", None, None, "prepaid", None],
    "timestamp": [0, 100, 150, 300, 0, 10],
    "amount": [3000, 500, 200, 450, 100000, 1200],
    "expiration": [1000, 100, None, None, 5000, None],
}
QUERIES = [("org-17", 0), ("org-17", 100), ("org-17", 150), ("org-17", 201), ("org-17", 300), ("org-17", 1001),
           ("acme, inc.", 9), ("acme, inc.", 10), ("nobody", 10)]
EXPECTED = [3000, 3500, 3300, 3000, 2550, None, 100000, 98800, None]


def events(**types):
    return pa.table({k: pa.array(v, types.get(k)) for k, v in EVENTS.items()})


def answers(ledger):
    accounts, times = zip(*QUERIES)
    return ledger.balances(list(accounts), list(times)).to_pylist()


def test_plain_table():
    ledger = gpucredit.Ledger(events())
    assert (ledger.event_count, ledger.account_count, ledger.backend in gpucredit.backends()) == (6, 2, True)
    assert ledger.accounts() == ["org-17", "acme, inc."]
    assert answers(ledger) == EXPECTED


@pytest.mark.parametrize("text", [pa.string(), pa.large_string(), pa.string_view()])
@pytest.mark.parametrize("integer", [pa.int64(), pa.int32(), pa.uint32(), pa.uint64(), pa.float64()])
def test_column_types(text, integer):
    table = events(op=text, account=text, credit_id=text, timestamp=integer, amount=integer, expiration=integer)
    assert answers(gpucredit.Ledger(table)) == EXPECTED


def test_dictionary_columns_chunks_and_offsets():
    table = events()
    table = table.set_column(1, "account", table["account"].dictionary_encode())
    table = table.set_column(0, "op", table["op"].dictionary_encode())
    sliced = pa.concat_tables([table.slice(0, 2), table.slice(2, 3), table.slice(5)])  # offsets into shared buffers
    assert sliced.column("account").num_chunks == 3
    assert answers(gpucredit.Ledger(sliced)) == EXPECTED
    # other columns are ignored; credit_id and expiration may be left out when unneeded
    uses_only = pa.table({"op": ["use"], "account": ["a"], "timestamp": [1], "amount": [1], "note": ["x"]})
    assert gpucredit.Ledger(uses_only).balance("a", 1) is None


def test_polars_pandas_duckdb_and_record_batch_reader():
    pl = pytest.importorskip("polars")
    pd = pytest.importorskip("pandas")
    table = events()
    assert answers(gpucredit.Ledger(pl.from_arrow(table))) == EXPECTED
    assert answers(gpucredit.Ledger(table.to_pandas())) == EXPECTED  # float expiration with NaN for use
    assert answers(gpucredit.Ledger(pd.DataFrame(EVENTS))) == EXPECTED
    assert answers(gpucredit.Ledger(table.to_reader(max_chunksize=2))) == EXPECTED
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.register("ev", table)
    relation = con.sql("select * from ev order by timestamp")  # a DuckDB result, not a table
    assert answers(gpucredit.Ledger(relation, name="duckdb")) == EXPECTED


def test_query_inputs():
    pl = pytest.importorskip("polars")
    ledger = gpucredit.Ledger(events())
    accounts = [a for a, _ in QUERIES]
    times = [t for _, t in QUERIES]
    for acc in (accounts, tuple(accounts), np.array(accounts), np.array(accounts, dtype=object),
                np.array([a.encode() for a in accounts]), pa.array(accounts), pa.array(accounts).dictionary_encode(),
                pa.chunked_array([accounts[:4], accounts[4:]]), pl.Series(accounts)):
        for ts in (times, np.array(times, dtype=np.int32), np.array(times, dtype=np.uint16), pa.array(times),
                   pa.chunked_array([times[:2], times[2:]]), pl.Series(times)):
            assert ledger.balances(acc, ts).to_pylist() == EXPECTED
    assert ledger.balances("org-17", [0, 1001]).to_pylist() == [3000, None]  # one account, many times
    assert ledger.balances(["org-17", "acme, inc."], 10).to_pylist() == [3000, 98800]  # many accounts, one time
    assert ledger.balances([], np.array([], dtype=np.int64)).to_pylist() == []
    assert ledger.balances(np.array(["é" * 30, "org-17"]), [0, 0]).to_pylist() == [None, 3000]


def test_numpy_answer_is_masked():
    ledger = gpucredit.Ledger(events())
    got = ledger.balances_numpy([a for a, _ in QUERIES], [t for _, t in QUERIES])
    assert got.dtype == np.int64
    assert got.mask.tolist() == [v is None for v in EXPECTED]
    assert got.filled(0).tolist() == [v or 0 for v in EXPECTED]


def test_answers_are_lent_not_copied():
    ledger = gpucredit.Ledger(events())
    result = ledger._query("org-17", np.array([0, 100, 5000]))
    values = result.values()
    array = pa.array(result)
    assert array.buffers()[1].address == values.ctypes.data
    assert array.null_count == 1 and result.null_count() == 1
    del result, values
    assert array.to_pylist() == [3000, 3500, None]  # the array keeps its buffers alive


def test_intervals_and_shortfalls():
    ledger = gpucredit.Ledger(events())
    intervals = ledger.intervals()
    assert intervals.schema.field("account").type == pa.dictionary(pa.int32(), pa.string())
    rows = intervals.to_pylist()
    assert rows[0] == {"account": "org-17", "credit_id": "plan", "begin": 0, "end": 299, "amount": 3000}
    assert sum(r["amount"] for r in rows if r["account"] == "org-17" and r["begin"] <= 150 <= r["end"]) == 3300
    del ledger
    assert intervals.num_rows == len(rows)  # the table outlives the ledger
    short = gpucredit.Ledger(pa.table({"op": ["add", "use"], "account": ["a", "a"], "credit_id": ["c", None],
                                        "timestamp": [0, 5], "amount": [3, 10], "expiration": [10, None]}))
    assert short.shortfalls().to_pylist() == [{"account": "a", "timestamp": 5, "amount": 7}]
    assert short.rejections().num_rows == 0


def test_reject_policy_and_rejections():
    table = pa.table({"op": ["add", "use", "use"], "account": ["a"] * 3, "credit_id": ["c", None, None],
                      "timestamp": [0, 5, 6], "amount": [3, 10, 2], "expiration": [10, None, None]})
    ledger = gpucredit.Ledger(table, policy="reject")
    assert ledger.balances("a", [5, 6]).to_pylist() == [3, 1]
    assert ledger.rejections().to_pylist() == [{"account": "a", "timestamp": 5, "amount": 10}]


def test_timestamps_with_units():
    table = pa.table({
        "op": ["add", "use"], "account": ["a", "a"], "credit_id": ["c", None],
        "timestamp": pa.array([0, 1_000_000], pa.timestamp("us", tz="UTC")),
        "amount": [10, 3],
        "expiration": pa.array([3_000_000, None], pa.duration("us")),
    })
    ledger = gpucredit.Ledger(table)
    assert ledger.time_unit == "us"
    when = np.array(["1970-01-01T00:00:00.999999", "1970-01-01T00:00:01", "1970-01-01T00:00:03.000001"],
                    dtype="datetime64[us]")
    assert ledger.balances("a", when).to_pylist() == [10, 7, None]
    assert ledger.balances("a", pa.array(when.astype(np.int64), pa.timestamp("us"))).to_pylist() == [10, 7, None]
    # Plain integers are refused unless the unit is said: seconds never read as microseconds.
    with pytest.raises(TypeError, match="say unit='us'"):
        ledger.balances("a", [86400])
    with pytest.raises(TypeError, match="say unit='us'"):
        ledger.balances("a", pa.array([86400], pa.int64()))
    with pytest.raises(TypeError, match="say unit='us'"):
        ledger.balance("a", 86400)
    with pytest.raises(TypeError, match="nothing is converted"):
        ledger.balances("a", [1], unit="s")
    assert ledger.balances("a", when.astype(np.int64), unit="us").to_pylist() == [10, 7, None]
    assert ledger.balances("a", pa.array(when.astype(np.int64)), unit="us").to_pylist() == [10, 7, None]
    assert ledger.balance("a", 1_000_000, unit="us") == 7
    assert ledger.balance("a", np.datetime64("1970-01-01T00:00:01", "us")) == 7
    assert ledger.intervals().schema.field("begin").type == pa.timestamp("us", tz="UTC")
    with pytest.raises(TypeError, match="datetime64\\[ns\\]"):
        ledger.balances("a", when.astype("datetime64[ns]"))
    with pytest.raises(TypeError, match="timestamp\\[ms\\]"):
        ledger.balances("a", pa.array([1], pa.timestamp("ms")))
    plain = gpucredit.Ledger(events())
    with pytest.raises(TypeError, match="plain integers"):
        plain.balances("org-17", when)


def test_parquet(tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(events(), path, row_group_size=2)
    ledger = gpucredit.Ledger(path)
    assert ledger.source == str(path)
    assert answers(ledger) == EXPECTED
    assert answers(gpucredit.Ledger.from_parquet(str(path))) == EXPECTED
    bad = events().set_column(3, "timestamp", pa.array([0, 100, 150, 300, None, 10], pa.int64()))
    pq.write_table(bad, path, row_group_size=2)
    with pytest.raises(gpucredit.InputError) as info:
        gpucredit.Ledger(path)
    assert (info.value.source, info.value.row, info.value.reason) == (str(path), 4, "missing timestamp")


def test_read_queries(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('account,timestamp\r\norg-17,0\r\n"acme, inc.",10\r\norg-17,300')
    queries = gpucredit.read_queries(path)
    assert queries.to_pylist() == [{"account": "org-17", "timestamp": 0}, {"account": "acme, inc.", "timestamp": 10},
                                   {"account": "org-17", "timestamp": 300}]
    ledger = gpucredit.Ledger(events())
    assert ledger.balances(queries["account"], queries["timestamp"]).to_pylist() == [3000, 98800, 2550]
    path.write_text("account,timestamp\norg-17,x\n")
    with pytest.raises(gpucredit.InputError) as info:
        gpucredit.read_queries(path)
    assert (info.value.line, info.value.reason) == (2, "timestamp is not an integer: 'x'")


def test_version_and_backends():
    import subprocess
    import sys

    assert gpucredit.__version__.count(".") == 2
    assert next(iter(gpucredit.backends())) == "cpu" and gpucredit.backends()["cpu"] is True
    done = subprocess.run([sys.executable, "-m", "gpucredit", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith(f"gpucredit {gpucredit.__version__}\nbackends: cpu")


def test_jobs_from_arrow_with_a_ticks_column():
    # SPEC section 10 through Arrow: op "run", the job id in credit_id, the rate in amount,
    # the tick count in `ticks` (a name for the sixth column).
    table = pa.table({
        "op": ["add", "run", "run"],
        "account": ["a", "a", "a"],
        "credit_id": ["plan", "job-1", "job-2"],
        "timestamp": [0, 10, 100],
        "amount": [50, 2, 40],
        "ticks": [200, 10, 3],
    })
    ledger = gpucredit.Ledger(table)
    assert ledger.balances(["a"] * 4, [9, 10, 19, 100]).to_pylist() == [50, 48, 30, None]
    intervals = ledger.intervals()
    assert intervals.column_names == ["account", "credit_id", "begin", "end", "amount", "slope"]
    assert sum(r["slope"] for r in intervals.to_pylist()) > 0
    short = ledger.shortfalls().to_pylist()
    # job-2: tick 100 drains the 30 left (short 10), ticks 101 and 102 find nothing.
    assert short == [{"account": "a", "job_id": "job-2", "timestamp": 100, "amount": 10 + 40 + 40}]


def test_expiration_as_the_last_usable_timestamp(tmp_path):
    # Billing tables store expires_at: expiration="end" reads it as the last usable time.
    duration = pa.table({"op": ["add"], "account": ["a"], "credit_id": ["plan"], "timestamp": [86400],
                         "amount": [300], "expiration": [2591999]})
    end = duration.set_column(5, "expiration", pa.array([2678399]))
    times = [86399, 86400, 2678399, 2678400]
    want = gpucredit.Ledger(duration).balances(["a"] * 4, times).to_pylist()
    assert want == [None, 300, 300, None]
    assert gpucredit.Ledger(end, expiration="end").balances(["a"] * 4, times).to_pylist() == want
    path = tmp_path / "end.csv"
    path.write_text("op,account,credit_id,timestamp,amount,expiration\nadd,a,plan,86400,300,2678399\n")
    assert gpucredit.Ledger(path, expiration="end").balances(["a"] * 4, times).to_pylist() == want
    with pytest.raises(gpucredit.InputError) as info:
        gpucredit.Ledger(end.set_column(5, "expiration", pa.array([5])), expiration="end", name="t")
    assert info.value.row == 0 and info.value.reason == "expiration end 5 is before the timestamp 86400"
    with pytest.raises(ValueError):
        gpucredit.Ledger(duration, expiration="expires_at")
