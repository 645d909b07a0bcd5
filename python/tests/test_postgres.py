"""Events straight from PostgreSQL: a throwaway server (Debian's postgresql, a cluster in
a temporary directory, started and stopped here), every vector loaded into it, then read
back through ADBC by Ledger.from_postgres and through psql's COPY into the CLI's
standard input; both must give the expected answers.

Skipped when the server or the driver is missing, unless GPUCREDIT_REQUIRE_POSTGRES=1
(CI sets it: there a skip would hide a regression)."""

from __future__ import annotations

import glob
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pyarrow as pa
import pyarrow.csv
import pytest

import gpucredit
from conftest import VECTOR_CASES, policy_of, read_expected, read_queries

REQUIRED = os.environ.get("GPUCREDIT_REQUIRE_POSTGRES") == "1"


def _missing(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"GPUCREDIT_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


def _server_bin(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def postgres():
    """A libpq URI of a fresh server on a Unix socket, trust authentication."""
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401
    except ImportError:
        _missing("adbc-driver-postgresql is not installed")
    initdb, pg_ctl = _server_bin("initdb"), _server_bin("pg_ctl")
    if not initdb or not pg_ctl:
        _missing("the PostgreSQL server (Debian's postgresql) is not installed")
    # A directory of its own under the system's temporary directory (pytest's are private
    # to this user, and the server may run as another).
    root = pathlib.Path(tempfile.mkdtemp(prefix="gpucredit-postgres-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    # The server refuses to run as root: then it runs as the package's postgres user.
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            _missing("running as root without runuser")
        as_user = [runuser, "-u", "postgres", "--"]
        os.chmod(root, 0o777)
        os.chmod(sockets, 0o777)
    port = 54000 + os.getpid() % 1000
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "gpucredit", "--auth=trust", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True)
    options = f"-k {sockets} -c listen_addresses='' -p {port} -c fsync=off"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
                   check=True, capture_output=True)
    try:
        yield {"uri": f"postgresql://gpucredit@/postgres?host={sockets}&port={port}", "host": str(sockets),
               "port": str(port)}
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _load(uri: str, table: str, events: pa.Table) -> None:
    """The events as a table with an arrival column `seq` (SQL keeps no order of its own)."""
    import adbc_driver_postgresql.dbapi as postgres

    events = events.append_column("seq", pa.array(range(events.num_rows), pa.int64()))
    with postgres.connect(uri) as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS "{table}"')
        cursor.adbc_ingest(table, events, mode="create")
        connection.commit()


def _events_table(case) -> pa.Table:
    return pyarrow.csv.read_csv(
        case / "events.csv",
        convert_options=pyarrow.csv.ConvertOptions(column_types={
            "op": pa.string(), "account": pa.string(), "credit_id": pa.string(), "timestamp": pa.int64(),
            "amount": pa.int64(), "expiration": pa.int64()}, strings_can_be_null=False),
    )


CASES = [c for c in VECTOR_CASES if (c / "expected.csv").exists()]
QUERY = "SELECT op, account, credit_id, timestamp, amount, expiration FROM {table} ORDER BY seq"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_vector_through_adbc(postgres, case):
    table = "ev_" + case.name.replace("-", "_")
    _load(postgres["uri"], table, _events_table(case))
    ledger = gpucredit.Ledger.from_postgres(postgres["uri"], QUERY.format(table=table), policy=policy_of(case))
    accounts, times = read_queries(case / "queries.csv")
    got = ledger.balances_numpy(accounts, times).filled(0).tolist()
    assert got == [v or 0 for v in read_expected(case / "expected.csv")]


def test_the_cli_reads_a_copy_from_psql_on_standard_input(postgres, cli, tmp_path):
    psql = shutil.which("psql")
    if psql is None:
        _missing("psql is not installed")
    case = next(c for c in CASES if c.name.startswith("random-"))
    _load(postgres["uri"], "ev_cli", _events_table(case))
    copy = ("COPY (SELECT op, account, credit_id, timestamp, amount, expiration FROM ev_cli ORDER BY seq) "
            "TO STDOUT WITH CSV HEADER")
    out = tmp_path / "out.csv"
    pipeline = (f'{psql} -X -q -h {postgres["host"]} -p {postgres["port"]} -U gpucredit -d postgres -c "{copy}" | '
                f'{cli} balances --events - --queries {case / "queries.csv"} --out {out}'
                + (f" --policy {policy_of(case)}" if policy_of(case) != "drain" else ""))
    done = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == (case / "expected.csv").read_text()


def test_bad_rows_from_postgres_raise_the_typed_error(postgres):
    events = pa.table({"op": ["add", "add"], "account": ["a", "b"], "credit_id": ["c", "d"],
                       "timestamp": pa.array([1, 2], pa.int64()), "amount": pa.array([5, -1], pa.int64()),
                       "expiration": pa.array([10, 10], pa.int64())})
    _load(postgres["uri"], "ev_bad", events)
    with pytest.raises(gpucredit.InputError) as raised:
        gpucredit.Ledger.from_postgres(postgres["uri"], QUERY.format(table="ev_bad"), name="billing")
    assert raised.value.source == "billing" and raised.value.row == 1
    assert "negative" in str(raised.value) or "amount" in str(raised.value)


def test_a_failing_query_is_the_driver_error(postgres):
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        gpucredit.Ledger.from_postgres(postgres["uri"], "SELECT * FROM no_such_table")
    assert "no_such_table" in str(raised.value)
    assert time.monotonic() - started < 30
