"""Property: on random ledgers, every Python path answers exactly what the CLI answers
(balances and the interval table), and fails exactly when and as the CLI fails."""

from __future__ import annotations

import csv
import os

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import gpucredit
from conftest import run_cli

ACCOUNTS = ["a", "b", "org,7", "é"]
examples = int(os.environ.get("GPUCREDIT_HYPOTHESIS_EXAMPLES", "150"))

amounts = st.one_of(st.integers(0, 60), st.sampled_from([0, 1, 2**62, 2**63 - 1]))
times = st.integers(-5, 40)
events = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(ACCOUNTS), st.sampled_from(["p", "q", "p", "q", "p", "q", ""]), times, amounts,
                  st.integers(0, 30)),
        st.tuples(st.just("use"), st.sampled_from(ACCOUNTS), st.just(""), times, amounts, st.just(None)),
        st.tuples(st.just("run"), st.sampled_from(ACCOUNTS), st.sampled_from(["j", "k"]), times,
                  st.one_of(st.integers(0, 6), st.sampled_from([2**40, 2**62])), st.integers(0, 12)),
    ),
    max_size=25,
)
queries = st.lists(st.tuples(st.sampled_from(ACCOUNTS + ["nobody"]), st.integers(-6, 75)), max_size=30)


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)


@settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=events, queries=queries, policy=st.sampled_from(["drain", "reject"]))
def test_python_answers_equal_the_cli(cli, tmp_path_factory, events, queries, policy):
    work = tmp_path_factory.mktemp("case")
    events_csv, queries_csv, out = work / "events.csv", work / "queries.csv", work / "out.csv"
    write_csv(events_csv, ["op", "account", "credit_id", "timestamp", "amount", "expiration"], events)
    write_csv(queries_csv, ["account", "timestamp"], queries)
    done = run_cli(cli, "balances", "--events", str(events_csv), "--queries", str(queries_csv), "--out", str(out),
                   "--policy", policy)
    table = pa.table({
        "op": pa.array([e[0] for e in events], pa.string()),
        "account": pa.array([e[1] for e in events], pa.string()),
        "credit_id": pa.array([e[2] or None for e in events], pa.string()),
        "timestamp": pa.array([e[3] for e in events], pa.int64()),
        "amount": pa.array([e[4] for e in events], pa.int64()),
        "expiration": pa.array([e[5] for e in events], pa.int64()),
    })

    if done.returncode != 0:  # bad input (a balance beyond int64): every path refuses it
        assert done.returncode == 2, done.stderr
        event("bad input")
        with pytest.raises(gpucredit.InputError) as from_csv:
            gpucredit.Ledger(events_csv, policy=policy)
        assert str(from_csv.value) == done.stderr.strip()
        with pytest.raises(gpucredit.InputError) as from_arrow:
            gpucredit.Ledger(table, policy=policy)
        assert from_arrow.value.row == from_csv.value.line - 2
        assert from_arrow.value.reason == from_csv.value.reason
        return

    event("answered")
    with open(out, newline="", encoding="utf-8") as f:
        expected = [int(r[2]) if r[2] else None for r in list(csv.reader(f))[1:]]
    accounts = [q[0] for q in queries]
    stamps = [q[1] for q in queries]
    assert gpucredit.Ledger(events_csv, policy=policy).balances(accounts, stamps).to_pylist() == expected
    ledger = gpucredit.Ledger(table, policy=policy)
    assert ledger.balances(pa.array(accounts, pa.string()), pa.array(stamps, pa.int64())).to_pylist() == expected
    masked = ledger.balances_numpy(accounts, stamps)
    assert [None if m else int(v) for v, m in zip(masked.data, masked.mask.tolist() if masked.mask.shape else
                                                 [bool(masked.mask)] * len(masked))] == expected

    credit = gpucredit.GPUCredit(policy=policy)  # the same calls one by one, in arrival order
    for op, account, _label, t, amount, expiration in events:
        if op == "add":
            credit.addCredit(account, amount, t, expiration)
        elif op == "use":
            credit.useCredit(account, t, amount)
        else:
            credit.runCredit(account, t, amount, expiration)
    assert [credit.getBalance(a, t) for a, t in queries] == expected

    intervals_csv = work / "intervals.csv"
    done = run_cli(cli, "intervals", "--events", str(events_csv), "--out", str(intervals_csv), "--policy", policy)
    assert done.returncode == 0, done.stderr
    with open(intervals_csv, newline="", encoding="utf-8") as f:
        rows = [[r[0], r[1], *(int(v) for v in r[2:])] for r in list(csv.reader(f))[1:]]
    assert [list(r.values()) for r in ledger.intervals().to_pylist()] == rows
