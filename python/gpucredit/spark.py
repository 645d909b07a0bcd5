"""The same answers from a Spark cluster (``pip install ".[spark]"``).

Accounts never interact (SPEC section 1), so the work shards by account: both sides are
partitioned by a hash of the account into buckets, the buckets are co-grouped, and each
is answered by this package's own :class:`~gpucredit.Ledger` over Arrow batches
(``applyInArrow``: no per-row Python). Spark keeps no file order, so the events carry
their arrival order in a column (``order``, default ``"seq"``) and each bucket's events
are replayed in that order. Executors with a GPU use the CUDA backend (``backend="auto"``
on each executor).

    from gpucredit import spark as gs
    answers = gs.balances(events_df, queries_df, policy="drain")   # account, timestamp, balance

Bad input fails the Spark job; the error Spark raises on the driver carries the
package's message (source, row or account, and reason).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame  # type: ignore[import-untyped, import-not-found, unused-ignore]

EVENT_COLUMNS = ["op", "account", "credit_id", "timestamp", "amount", "expiration"]


def _bucketed(frame: DataFrame, buckets: int) -> DataFrame:
    from pyspark.sql import functions as F  # type: ignore[import-untyped, import-not-found, unused-ignore]

    return frame.withColumn("_bucket", F.pmod(F.xxhash64("account"), F.lit(buckets)))


def _buckets(frame: DataFrame, buckets: int | None) -> int:
    if buckets is not None:
        if buckets < 1:
            raise ValueError(f"buckets must be at least 1, not {buckets}")
        return buckets
    return max(1, int(frame.sparkSession.sparkContext.defaultParallelism))


def balances(
    events: DataFrame,
    queries: DataFrame,
    policy: str = "drain",
    *,
    order: str = "seq",
    buckets: int | None = None,
    backend: str = "auto",
    expiration: str = "duration",
) -> DataFrame:
    """The balance of every query ``(account, timestamp)`` of ``queries`` against the
    ledger of ``events`` (SPEC section 7's columns and an arrival-order column ``order``):
    a DataFrame ``account, timestamp, balance`` (null for none), one row per query, in the
    queries' order. ``buckets``: how many account buckets (default: the default
    parallelism)."""
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    from pyspark.sql import functions as F  # type: ignore[import-untyped, import-not-found, unused-ignore]

    for column in [*EVENT_COLUMNS, order]:
        if column not in events.columns:
            raise ValueError(f"events have no column {column!r} (they need {EVENT_COLUMNS} and the order column)")
    for column in ("account", "timestamp"):
        if column not in queries.columns:
            raise ValueError(f"queries have no column {column!r}")
    n = _buckets(events, buckets)
    ev = _bucketed(events.select(*EVENT_COLUMNS, F.col(order).alias("_order")), n)
    qs = _bucketed(queries.select("account", "timestamp").withColumn("_qid", F.monotonically_increasing_id()), n)

    def answer(ev_table: Any, q_table: Any) -> Any:
        from gpucredit import Ledger  # on the executor

        if q_table.num_rows == 0:
            return pa.table({"_qid": pa.array([], pa.int64()), "account": pa.array([], pa.string()),
                             "timestamp": pa.array([], pa.int64()), "balance": pa.array([], pa.int64())})
        ordered = ev_table.sort_by("_order").select(EVENT_COLUMNS)
        ledger = Ledger.from_arrow(ordered, policy=policy, backend=backend, expiration=expiration, name="events")
        answers = ledger.balances(q_table.column("account"), q_table.column("timestamp"))
        return pa.table({"_qid": q_table.column("_qid"), "account": q_table.column("account"),
                         "timestamp": q_table.column("timestamp"), "balance": answers})

    out = ev.groupBy("_bucket").cogroup(qs.groupBy("_bucket")).applyInArrow(
        answer, schema="_qid long, account string, timestamp long, balance long")
    return out.orderBy("_qid").drop("_qid")
