"""Bad input raises typed exceptions that name the source, the line or row, and the reason."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import gpucredit
from gpucredit import BackendError, Error, InputError

GOOD = {"op": ["add", "use"], "account": ["a", "a"], "credit_id": ["c", None], "timestamp": [0, 5],
        "amount": [10, 3], "expiration": [100, None]}


def table(**changes):
    data = {**GOOD, **changes}
    return pa.table({k: pa.array(v) for k, v in data.items()})


def raises(source, **kwargs):
    with pytest.raises(InputError) as info:
        gpucredit.Ledger(source, name="t", **kwargs)
    return info.value


@pytest.mark.parametrize(
    "changes, row, reason",
    [
        ({"op": ["add", "refund"]}, 1, "unknown op 'refund'"),
        ({"op": [None, "use"]}, 0, "missing op"),
        ({"account": ["a", ""]}, 1, "missing account"),
        ({"account": ["a", None]}, 1, "missing account"),
        ({"account": ["a", "b\0c"]}, 1, "NUL byte in account"),
        ({"timestamp": [0, None]}, 1, "missing timestamp"),
        ({"amount": [None, 3]}, 0, "missing amount"),
        ({"amount": [-10, 3]}, 0, "negative amount"),
        ({"expiration": [None, None]}, 0, "missing expiration"),
        ({"expiration": [-1, None]}, 0, "negative expiration"),
        ({"expiration": [100, 7]}, 1, "use takes no expiration (got 7)"),
        ({"timestamp": [2**63 - 1, 2**63 - 1]}, 0, "timestamp + expiration beyond int64"),
        ({"timestamp": pa.array([0, 2**64 - 1], pa.uint64())}, 1, "timestamp out of int64 range"),
        ({"amount": [10.0, 2.5]}, 1, "amount is not an integer"),
        ({"op": ["add", "add"], "credit_id": ["c", "d"], "amount": [2**63 - 1, 1], "expiration": [100, 100]}, 1,
         "balance beyond int64 at 5 (account 'a')"),
        ({"op": ["add", "add"], "expiration": [100, 100]}, 1, "missing credit_id"),
        ({"credit_id": ["", None]}, 0, "missing credit_id"),
    ],
)
def test_bad_rows(changes, row, reason):
    error = raises(table(**changes))
    assert (error.source, error.line, error.row, error.reason) == ("t", None, row, reason)
    assert str(error) == f"t: row {row}: {reason}"
    assert isinstance(error, ValueError) and isinstance(error, Error)


def test_bad_utf8_in_a_column():
    binary = pa.array([b"a", b"\xff"], pa.binary()).cast(pa.string(), safe=False)  # unvalidated bytes
    assert raises(table(account=binary)).reason == "invalid UTF-8 in account"
    op = pa.array([b"add", b"r\xe9fund\x01"], pa.binary()).cast(pa.string(), safe=False)
    assert raises(table(op=op)).reason == "unknown op 'r\\xe9fund\\x01'"  # shown as text, not raised again


@pytest.mark.parametrize(
    "data, reason",
    [
        (pa.table({"op": ["add"], "account": ["a"], "timestamp": [0], "expiration": [1]}),
         "missing column 'amount': the source has op, account, timestamp, expiration; "
         "expected op, account, credit_id, timestamp, amount, expiration (or ticks)"),
        (table(amount=["10", "3"]), "column 'amount' must be integer, not string"),
        (table(account=[1, 2]), "column 'account' must be text, not int64"),
        (table(timestamp=pa.array([0, 5], pa.timestamp("s"))),
         "column 'expiration' is int64 but 'timestamp' is timestamp[s]: expiration must be duration[s]"),
        (table(amount=pa.array([0, 5], pa.duration("s"))), "column 'amount' must be an integer, not duration[s]"),
    ],
)
def test_bad_schemas(data, reason):
    error = raises(data)
    assert (error.source, error.line, error.row, error.reason) == ("t", None, None, reason)


def test_csv_errors_name_file_and_line(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("op,account,credit_id,timestamp,amount,expiration\nadd,a,c,0,10,100\nuse,a,,x,3,\n")
    with pytest.raises(InputError) as info:
        gpucredit.Ledger(path)
    assert (info.value.source, info.value.line, info.value.row) == (str(path), 3, None)
    assert str(info.value) == f"{path}:3: timestamp is not an integer: 'x'"
    with pytest.raises(FileNotFoundError):
        gpucredit.Ledger(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="is a directory"):
        gpucredit.Ledger.from_csv(tmp_path)


def test_bad_queries():
    ledger = gpucredit.Ledger(table())
    with pytest.raises(ValueError, match="differ in length"):
        ledger.balances(["a", "a"], [1, 2, 3])
    with pytest.raises(InputError) as info:
        ledger.balances(["a", "a"], pa.array([1, None]))
    assert (info.value.source, info.value.row, info.value.reason) == ("timestamps", 1, "missing timestamp")
    with pytest.raises(InputError) as info:
        ledger.balances(pa.array(["a", None]), [1, 2])
    assert (info.value.source, info.value.row, info.value.reason) == ("accounts", 1, "missing account")
    with pytest.raises(TypeError, match="accounts: row 1: account must be str, not int"):
        ledger.balances(["a", 7], [1, 2])
    with pytest.raises(InputError, match="out of int64 range"):
        ledger.balances(["a"], np.array([2**64 - 1], dtype=np.uint64))
    with pytest.raises(InputError, match="row 1: missing timestamp"):
        gpucredit.Ledger(table(timestamp=pa.array([0, 5], pa.timestamp("s")),
                               expiration=pa.array([100, None], pa.duration("s")))).balances(
            "a", np.array(["1970-01-01", "NaT"], dtype="datetime64[s]"))
    # One rule for every shape (issue: lists, NumPy, pandas and Arrow used to differ).
    with pytest.raises(InputError) as info:
        ledger.balances(["a"], [1.5])
    assert (info.value.row, info.value.reason) == (0, "timestamp is not an integer")
    with pytest.raises(InputError) as info:
        ledger.balances(["a", "a"], np.array([1.0, np.nan]))
    assert (info.value.row, info.value.reason) == (1, "missing timestamp")
    assert ledger.balances(["a", "a"], np.array([1.0, 5.0])).to_pylist() == ledger.balances(["a", "a"], [1, 5]).to_pylist()
    with pytest.raises(InputError) as info:
        ledger.balances(["a", None], [1, 2])
    assert (info.value.source, info.value.row, info.value.reason) == ("accounts", 1, "missing account")
    with pytest.raises(TypeError):
        ledger.balances([1], [1])
    with pytest.raises(TypeError):
        ledger.balances(["a"], pa.array(["x"]))
    with pytest.raises(ValueError):
        ledger.balances(np.array([["a"]]), [1])


def test_backends_and_policies():
    with pytest.raises(BackendError):
        gpucredit.Ledger(table(), backend="tpu")
    if not gpucredit.backends().get("cuda", False):
        with pytest.raises(BackendError):
            gpucredit.Ledger(table(), backend="cuda")
    with pytest.raises(ValueError, match="policy"):
        gpucredit.Ledger(table(), policy="borrow")
    with pytest.raises(TypeError):
        gpucredit.Ledger(object())


def test_a_failed_build_leaves_nothing(tmp_path):
    ledger = gpucredit.Ledger(table())
    path = tmp_path / "events.csv"
    path.write_text("op,account,credit_id,timestamp,amount,expiration\nadd,a,c,0,10,100\nuse,a,,5,-1,\n")
    before = path.read_bytes()
    with pytest.raises(InputError):
        ledger = gpucredit.Ledger(path)
    assert path.read_bytes() == before  # input untouched
    assert ledger.balance("a", 5) == 7  # the name still holds the earlier, whole ledger


def test_pandas_and_polars_inputs_follow_the_same_rules():
    import pandas as pd
    import polars as pl

    ledger = gpucredit.Ledger(table())
    with pytest.raises(InputError) as info:
        ledger.balances(pd.Series(["a", None], dtype=object), [1, 2])
    assert (info.value.source, info.value.row, info.value.reason) == ("accounts", 1, "missing account")
    with pytest.raises(TypeError, match="accounts: row 1: account must be str, not int"):
        ledger.balances(pd.Series(["a", 7], dtype=object), [1, 2])
    with pytest.raises(TypeError, match=r"\.collect\(\)"):
        gpucredit.Ledger(pl.from_arrow(table()).lazy())
