"""Ledger.grid: report grids made and summed where the engine runs, equal to the CLI's
report and to point queries."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow as pa
import pytest

import gpucredit
from conftest import VECTOR_CASES, policy_of, run_cli


@pytest.mark.parametrize("case", [c for c in VECTOR_CASES if c.name.startswith(("random-", "run-"))][:12], ids=lambda c: c.name)
def test_grid_equals_the_cli_report(case, cli, tmp_path):
    ledger = gpucredit.Ledger(case / "events.csv", policy=policy_of(case))
    accounts = ledger.accounts()
    out = tmp_path / "report"
    done = run_cli(cli, "report", "--events", str(case / "events.csv"), "--policy", policy_of(case),
                   "--from", "-10", "--to", "200", "--every", "7", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    grid = ledger.grid(accounts, -10, 200, 7)
    assert list(grid.times) == list(range(-10, 201, 7))
    assert grid.balances is not None and grid.balances.shape == (len(accounts), len(grid.times))
    with open(out / "balances.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert [int(v) if v else 0 for _, _, v in rows] == grid.balances.reshape(-1).tolist()
    assert grid.fleet == [int(s) for s in grid.balances.sum(axis=0, dtype=object)]
    only = ledger.grid(accounts, -10, 200, 7, balances=False)
    assert only.balances is None and only.fleet == grid.fleet


def test_grid_totals_are_exact_beyond_int64(tmp_path):
    big = 9223372036854775807
    events = tmp_path / "events.csv"
    events.write_text("op,account,credit_id,timestamp,amount,expiration\n" + "".join(
        f"add,a{k},c{k},0,{big},100\n" for k in range(3)
    ))
    ledger = gpucredit.Ledger(events)
    grid = ledger.grid(["a0", "a1", "a2", "nobody"], -5, 5, 5)
    assert grid.fleet == [0, 3 * big, 3 * big]
    assert grid.balances[3].tolist() == [0, 0, 0]


def test_grid_on_a_timestamp_ledger_takes_dates():
    table = pa.table({
        "op": ["add", "use"],
        "account": ["org", "org"],
        "credit_id": ["c", ""],
        "timestamp": pa.array(np.array(["2026-10-01", "2026-10-02"], dtype="M8[s]")),
        "amount": [100, 30],
        "expiration": pa.array([10 * 86400, None], type=pa.duration("s")),
    })
    ledger = gpucredit.Ledger.from_arrow(table)
    grid = ledger.grid("org", np.datetime64("2026-10-01", "s"), np.datetime64("2026-10-03", "s"),
                       np.timedelta64(1, "D"))
    assert grid.times.dtype == np.dtype("M8[s]")
    assert grid.balances.tolist() == [[100, 70, 70]]
    with pytest.raises(TypeError, match="plain integers"):
        ledger.grid("org", 0, 10, 1)
    assert ledger.grid("org", 0, 10, 5, unit="s").fleet == [0, 0, 0]


def test_grid_refuses_a_bad_grid():
    ledger = gpucredit.Ledger.from_arrow(
        pa.table({"op": ["add"], "account": ["a"], "credit_id": ["c"], "timestamp": [0], "amount": [5], "expiration": [9]})
    )
    with pytest.raises(gpucredit.InputError, match="step must be positive"):
        ledger.grid("a", 0, 10, 0)
    with pytest.raises(gpucredit.InputError, match="from is after to"):
        ledger.grid("a", 10, 0, 1)


@pytest.mark.parametrize("case", [c for c in VECTOR_CASES if c.name.startswith(("random-", "run-", "seed-", "overdraft-"))],
                         ids=lambda c: c.name)
def test_summary_equals_the_cli_report(case, cli, tmp_path):
    ledger = gpucredit.Ledger(case / "events.csv", policy=policy_of(case))
    out = tmp_path / "report"
    done = run_cli(cli, "report", "--events", str(case / "events.csv"), "--policy", policy_of(case),
                   "--from", "5", "--to", "90", "--every", "85", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    with open(out / "summary.csv", newline="") as f:
        want = list(csv.reader(f))[1:]
    table = ledger.summary(5, 90)
    assert table.column_names == ["account", "balance_from", "granted", "consumed", "expired", "shortfall",
                                  "rejected", "balance_to"]
    assert [[str(v) for v in row.values()] for row in table.to_pylist()] == want


def test_summary_totals_are_exact_beyond_int64(tmp_path):
    big = 9223372036854775807
    events = tmp_path / "events.csv"
    events.write_text("op,account,credit_id,timestamp,amount,expiration\n"
                      f"add,a,c1,1,{big},1\nuse,a,,2,{big},\nadd,a,c2,3,{big},5\nadd,b,c3,4,7,0\n")
    table = gpucredit.Ledger(events).summary(0, 10)
    assert table.schema.field("granted").type == pa.decimal128(38, 0)
    rows = {r["account"]: r for r in table.to_pylist()}
    assert rows["a"]["granted"] == 2 * big and rows["a"]["consumed"] == big and rows["a"]["expired"] == big
    assert rows["a"]["balance_from"] == 0 and rows["a"]["balance_to"] == 0
    assert rows["b"]["granted"] == 7 and rows["b"]["expired"] == 7
    with pytest.raises(gpucredit.InputError, match="after"):
        gpucredit.Ledger(events).summary(10, 0)
