"""The same answers from a Spark cluster (``pip install ".[spark]"``).

Accounts never interact (SPEC section 1), so the work shards by account: each side is
partitioned by a hash of the account into buckets, the buckets are co-grouped, and each
is answered by this package's own :class:`~gpucredit.Ledger` over Arrow batches
(``applyInArrow``: no per-row Python). Spark keeps no file order, so the events carry
their arrival order in a column (``order``, default ``"seq"``) and each bucket's events
are replayed in that order. Executors with a GPU use the CUDA backend (``backend="auto"``
on each executor; a task that Spark gave GPUs, ``spark.task.resource.gpu.amount``, uses
those). ``docs/SCALE.md`` says how a cluster runs it at 10^10 events.

    from gpucredit import spark as gs
    answers = gs.balances(events_df, queries_df, policy="drain")   # account, timestamp, balance
    rows = gs.intervals(events_df)                                 # SPEC sections 5 and 10
    report = gs.report(events_df, 0, 86_400 * 90, 86_400)          # .balances, .summary

Each call runs its Spark job before it returns, so that bad input raises the package's
own exception on the driver (:class:`~gpucredit.InputError` and the others), naming the
account, the event's arrival order and the reason; the DataFrame it returns reads that
job's result (a local checkpoint, which Spark releases with the DataFrame): using it
does not replay the ledger again.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from ._errors import BackendError, BackendUnavailable, DeviceError, Error, InputError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame  # type: ignore[import-untyped, import-not-found, unused-ignore]

EVENT_COLUMNS = ["op", "account", "credit_id", "timestamp", "amount", "expiration"]
_ERROR = "_gpucredit_error"  # a JSON object in the one row a failed bucket returns
_ERRORS: dict[str, type[Error]] = {cls.__name__: cls for cls in (Error, InputError, BackendError,
                                                                 BackendUnavailable, DeviceError)}


class SparkReport(NamedTuple):
    """What :func:`report` returns: two DataFrames, each its job's checkpointed result."""

    balances: DataFrame  #: account, timestamp, balance (null for none): every account at every grid time
    summary: DataFrame  #: account, balance_from, granted, consumed, expired, shortfall, rejected, balance_to


def _buckets(frame: DataFrame, buckets: int | None) -> int:
    if buckets is not None:
        if buckets < 1:
            raise ValueError(f"buckets must be at least 1, not {buckets}")
        return buckets
    return max(1, int(frame.sparkSession.sparkContext.defaultParallelism))


def _bucketed(frame: DataFrame, buckets: int) -> DataFrame:
    from pyspark.sql import functions as F  # type: ignore[import-untyped, import-not-found, unused-ignore]

    return frame.withColumn("_bucket", F.pmod(F.xxhash64("account"), F.lit(buckets)))


def _event_side(events: DataFrame, order: str, buckets: int) -> DataFrame:
    from pyspark.sql import functions as F  # type: ignore[import-untyped, import-not-found, unused-ignore]

    for column in [*EVENT_COLUMNS, order]:
        if column not in events.columns:
            raise ValueError(f"events have no column {column!r} (they need {EVENT_COLUMNS} and the order column)")
    _integer_column(events, "timestamp", "events")
    return _bucketed(events.select(*EVENT_COLUMNS, F.col(order).alias("_order")), buckets)


def _integer_column(frame: DataFrame, column: str, side: str) -> None:
    kind = dict(frame.dtypes)[column]
    if kind not in ("bigint", "int", "smallint", "tinyint"):
        raise TypeError(f"{side}: column {column!r} must hold integers (Spark long), not {kind}")


def _ddl(schema: Any) -> str:
    """A pyarrow schema as Spark's DDL string (the types this module hands back)."""
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

    def spark_type(t: Any) -> str:
        if t == pa.int64():
            return "long"
        if t == pa.string():
            return "string"
        if pa.types.is_decimal(t):
            return f"decimal({t.precision},{t.scale})"
        raise TypeError(f"no Spark type for {t}")  # pragma: no cover

    return ", ".join(f"`{f.name}` {spark_type(f.type)}" for f in schema)


def _with_errors(schema: Any, body: Callable[..., Any]) -> tuple[Callable[..., Any], str]:
    """Wraps a bucket's work so that the package's own exceptions come back as one row
    holding them (in column _ERROR) instead of failing the Spark task: the driver then
    raises them as they were. The schema gains that column."""
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

    full = schema.append(pa.field(_ERROR, pa.string()))

    def run(tables: tuple[Any, ...]) -> Any:
        try:
            out = body(*tables)
            return out.append_column(_ERROR, pa.nulls(out.num_rows, pa.string()))
        except Error as e:
            fields = getattr(e, "_spark_fields", None) or {
                "message": str(e), "source": e.source, "row": e.row, "reason": e.reason, "account": None}
            row = {f.name: pa.nulls(1, f.type) for f in schema}
            row[_ERROR] = pa.array([json.dumps({"kind": type(e).__name__, **fields})], pa.string())
            return pa.table(row, schema=full)

    # Spark reads the function's arity (one table, or two co-grouped ones).
    def one(table: Any) -> Any:
        return run((table,))

    def two(left: Any, right: Any) -> Any:
        return run((left, right))

    return (one if body.__code__.co_argcount == 1 else two), _ddl(full)


def _raise_first_error(result: DataFrame) -> DataFrame:
    """Runs `result`'s job now, keeping what it made (a local checkpoint: Spark releases it
    with the DataFrame), raises the first bucket error it holds on the driver, and returns
    it without the error column."""
    from pyspark.sql import functions as F  # type: ignore[import-untyped, import-not-found, unused-ignore]

    result = result.localCheckpoint(eager=True)
    failed = result.where(F.col(_ERROR).isNotNull()).select(_ERROR).limit(1).collect()
    if failed:
        fields = json.loads(failed[0][0])
        cls = _ERRORS.get(fields.pop("kind"), Error)
        error = cls(fields["message"], fields.get("source"), None, fields.get("row"), fields.get("reason"))
        error.account = fields.get("account")  # type: ignore[attr-defined]
        raise error
    return result.drop(_ERROR)


def task_devices(resources: dict[str, Any]) -> str | None:
    """The CUDA devices Spark gave a task (``spark.task.resource.gpu.amount``), as a
    ``GPUCREDIT_DEVICE`` list, from ``TaskContext.resources()``; None when it gave none."""
    gpu = resources.get("gpu")
    addresses = [str(a).strip() for a in (getattr(gpu, "addresses", None) or [])]
    return ",".join(addresses) if addresses else None


def _use_task_devices() -> None:
    """On an executor whose task holds GPUs, the CUDA backend uses those and no other
    device of the host (several tasks share a host's GPUs)."""
    from pyspark import TaskContext  # type: ignore[import-untyped, import-not-found, unused-ignore]

    context = TaskContext.get()
    devices = task_devices(context.resources()) if context is not None else None
    if devices is not None:
        os.environ["GPUCREDIT_DEVICE"] = devices


def _replayed(ev_table: Any, policy: str, backend: str, expiration: str) -> Any:
    """The Ledger of one bucket's events, replayed in arrival order. Bad input raises
    the package's error, its row being the event's value in the order column."""
    from gpucredit import Ledger  # on the executor

    if backend != "cpu":
        _use_task_devices()
    ordered = ev_table.sort_by("_order")
    try:
        return Ledger.from_arrow(ordered.select(EVENT_COLUMNS), policy=policy, backend=backend,
                                 expiration=expiration, name="events")
    except InputError as e:
        if e.row is None or not 0 <= e.row < ordered.num_rows:
            raise
        order = ordered.column("_order")[e.row].as_py()
        account = ordered.column("account")[e.row].as_py()
        e._spark_fields = {"message": f"events: event of order {order} (account {account!r}): {e.reason}",  # type: ignore[attr-defined]
                           "source": "events", "row": order, "reason": e.reason, "account": account}
        raise


def balances(
    events: DataFrame,
    queries: DataFrame,
    policy: str = "drain",
    *,
    order: str = "seq",
    buckets: int | None = None,
    backend: str = "auto",
    expiration: str = "duration",
    ordered: bool = True,
) -> DataFrame:
    """The balance of every query ``(account, timestamp)`` of ``queries`` against the
    ledger of ``events`` (SPEC section 7's columns and an arrival-order column ``order``):
    a DataFrame ``account, timestamp, balance`` (null for none), one row per query; in the
    queries' order when ``ordered`` (a global sort: pass ``False`` when the order does not
    matter). ``buckets``: how many account buckets (default: the default parallelism)."""
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    from pyspark.sql import functions as F  # type: ignore[import-untyped, import-not-found, unused-ignore]

    for column in ("account", "timestamp"):
        if column not in queries.columns:
            raise ValueError(f"queries have no column {column!r}")
    _integer_column(queries, "timestamp", "queries")
    n = _buckets(events, buckets)
    ev = _event_side(events, order, n)
    qs = _bucketed(queries.select("account", "timestamp").withColumn("_qid", F.monotonically_increasing_id()), n)
    schema = pa.schema([("_qid", pa.int64()), ("account", pa.string()), ("timestamp", pa.int64()),
                        ("balance", pa.int64())])

    def answer(ev_table: Any, q_table: Any) -> Any:
        if q_table.num_rows == 0:
            return schema.empty_table()
        ledger = _replayed(ev_table, policy, backend, expiration)
        answers = ledger.balances(q_table.column("account"), q_table.column("timestamp"))
        return pa.table([q_table.column("_qid"), q_table.column("account"), q_table.column("timestamp"), answers],
                        schema=schema)

    run, ddl = _with_errors(schema, answer)
    out = _raise_first_error(ev.groupBy("_bucket").cogroup(qs.groupBy("_bucket")).applyInArrow(run, schema=ddl))
    return (out.orderBy("_qid") if ordered else out).drop("_qid")


def intervals(
    events: DataFrame,
    policy: str = "drain",
    *,
    order: str = "seq",
    buckets: int | None = None,
    expiration: str = "duration",
) -> DataFrame:
    """The interval table of ``events`` (SPEC sections 5 and 10): a DataFrame ``account,
    credit_id, begin, end, amount, slope`` (``slope`` 0 where nothing draws at a rate),
    one row per stretch of a credit, in no particular order across accounts."""
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]

    ev = _event_side(events, order, _buckets(events, buckets))
    schema = pa.schema([("account", pa.string()), ("credit_id", pa.string()), ("begin", pa.int64()),
                        ("end", pa.int64()), ("amount", pa.int64()), ("slope", pa.int64())])

    def flatten(ev_table: Any) -> Any:
        rows = _replayed(ev_table, policy, "cpu", expiration).intervals()
        slope = (rows.column("slope") if "slope" in rows.column_names
                 else pa.repeat(pa.scalar(0, pa.int64()), rows.num_rows))
        return pa.table([pc.cast(rows.column("account"), pa.string()), pc.cast(rows.column("credit_id"), pa.string()),
                         rows.column("begin"), rows.column("end"), rows.column("amount"), slope], schema=schema)

    run, ddl = _with_errors(schema, flatten)
    return _raise_first_error(ev.groupBy("_bucket").applyInArrow(run, schema=ddl))


def report(
    events: DataFrame,
    from_: int,
    to: int,
    every: int,
    policy: str = "drain",
    *,
    order: str = "seq",
    buckets: int | None = None,
    backend: str = "auto",
    expiration: str = "duration",
) -> SparkReport:
    """What ``gpucredit report`` writes, as two DataFrames (:class:`SparkReport`):
    ``balances`` (``account, timestamp, balance``, null for none) holds every account at
    ``from_, from_ + every, ... <= to``, and ``summary`` each account's window
    ``(from_, to]`` (SPEC section 11; the five totals exact, ``decimal(38,0)``). The
    fleet's total at a time may pass int64 (SPEC section 11): sum the balances as
    ``decimal(38,0)``, for example
    ``report.balances.groupBy("timestamp").agg(F.sum(F.col("balance").cast("decimal(38,0)")))``."""
    import numpy as np
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]

    for name, value in (("from_", from_), ("to", to), ("every", every)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if from_ > to:
        raise InputError(f"report: from_ {from_} is after to {to}", "report", None, None, "from_ is after to")
    if every <= 0:
        raise InputError(f"report: every must be positive, not {every}", "report", None, None, "every must be positive")
    ev = _event_side(events, order, _buckets(events, buckets))
    grid_schema = pa.schema([("account", pa.string()), ("timestamp", pa.int64()), ("balance", pa.int64())])
    totals = pa.decimal128(38, 0)
    summary_schema = pa.schema([("account", pa.string()), ("balance_from", pa.int64()), ("granted", totals),
                                ("consumed", totals), ("expired", totals), ("shortfall", totals),
                                ("rejected", totals), ("balance_to", pa.int64())])

    def grid(ev_table: Any) -> Any:
        ledger = _replayed(ev_table, policy, backend, expiration)
        names = ledger.accounts()
        g = ledger.grid(names, from_, to, every)
        values = g.balances.reshape(-1)
        return pa.table([pa.array(np.repeat(np.array(names, dtype=object), len(g.times)), pa.string()),
                         pa.array(np.tile(g.times, len(names)), pa.int64()),
                         pa.array(values, pa.int64(), mask=values == 0)], schema=grid_schema)

    def summary(ev_table: Any) -> Any:
        rows = _replayed(ev_table, policy, "cpu", expiration).summary(from_, to)
        return rows.set_column(0, "account", pc.cast(rows.column("account"), pa.string())).cast(summary_schema)

    grid_run, grid_ddl = _with_errors(grid_schema, grid)
    summary_run, summary_ddl = _with_errors(summary_schema, summary)
    by_bucket = ev.groupBy("_bucket")
    return SparkReport(_raise_first_error(by_bucket.applyInArrow(grid_run, schema=grid_ddl)),
                       _raise_first_error(by_bucket.applyInArrow(summary_run, schema=summary_ddl)))
