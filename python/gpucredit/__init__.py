"""gpucredit: exact point-in-time balances of expiring GPU credits.

Two ways in:

- :class:`GPUCredit`, the original interface (``addCredit``, ``getBalance``,
  ``useCredit``), one call at a time, answering from history (SPEC section 9);
- :class:`Ledger`, the bulk path: a whole event log from a CSV file, a Parquet file or
  anything that speaks the Arrow C stream interface (pyarrow, Polars, pandas, DuckDB),
  replayed once, then asked millions of (account, timestamp) balance queries at a time
  from NumPy or Arrow arrays.

The semantics are those of the C++ library and the CLI, bit for bit (docs/SPEC.md).
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from . import _core
from ._errors import BackendError, BackendUnavailable, DeviceError, Error, InputError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow  # type: ignore[import-untyped, unused-ignore]

__version__: str = _core.version()
__all__ = ["GPUCredit", "Grid", "Ledger", "Error", "InputError", "BackendError", "BackendUnavailable", "DeviceError", "backends", "read_queries", "__version__"]

GPUCredit = _core.GPUCredit

PathLike = Union[str, "os.PathLike[str]"]

_INT64_MAX = np.iinfo(np.int64).max


def backends() -> dict[str, bool]:
    """The backends compiled into this build (``"cpu"`` first), each with whether it can
    run here (for ``"cuda"``: whether a CUDA device is present)."""
    return dict(_core.backends())


def read_queries(path: PathLike) -> pyarrow.Table:
    """Reads a queries file (``account,timestamp``, SPEC section 7) with the CLI's own
    reader, as a pyarrow Table: ``account`` dictionary-encoded (so that
    :meth:`Ledger.balances` looks each name up once), ``timestamp`` int64."""
    pa = _pyarrow("read_queries")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    return pa.table(_core.read_queries(path))


def _pyarrow(what: str) -> Any:
    try:
        import pyarrow  # type: ignore[import-untyped, unused-ignore]
    except ImportError as e:  # pragma: no cover - exercised only without pyarrow
        raise ImportError(f"{what} needs pyarrow: pip install 'gpucredit[arrow]'") from e
    return pyarrow


def _is_arrow(obj: object) -> bool:
    return hasattr(obj, "__arrow_c_array__") or hasattr(obj, "__arrow_c_stream__")


@dataclasses.dataclass(frozen=True)
class Grid:
    """What :meth:`Ledger.grid` answers: the grid's ``times`` (int64, or datetime64 in the
    ledger's unit), the ``fleet`` total at each (Python ints: exact beyond int64), and the
    ``balances`` (int64, accounts x times, 0 for none) unless they were not asked for."""

    times: np.ndarray
    fleet: list[int]
    balances: np.ndarray | None


class Ledger:
    """A replayed event log and its query engine.

    ``Ledger(source)`` reads ``source``: a path to a CSV file (SPEC section 7) or a
    Parquet file (``.parquet``/``.pq``; needs pyarrow), or any object with
    ``__arrow_c_stream__`` holding the columns ``op, account, credit_id, timestamp,
    amount, expiration`` (``credit_id`` and ``expiration`` may be left out when no row
    needs them). ``policy`` is ``"drain"`` (default) or ``"reject"`` (SPEC section 4);
    ``expiration`` says what an add's ``expiration`` column holds: ``"duration"`` (the
    default: usable on [timestamp, timestamp + expiration]) or ``"end"`` (the last usable
    timestamp, as billing tables store ``expires_at``).

    ``backend`` is ``"auto"``, ``"cpu"`` or ``"cuda"`` (``"auto"`` honours the
    environment variable ``GPUCREDIT_BACKEND``, else picks CUDA when a device is present).

    Bad input raises :class:`InputError` naming the file and line, or the row of an Arrow
    source, and the reason; no ledger is made then.
    """

    __slots__ = ("_impl",)
    _impl: _core.Ledger

    def __init__(
        self,
        source: PathLike | Any,
        *,
        policy: str = "drain",
        backend: str = "auto",
        name: str | None = None,
        expiration: str = "duration",
    ) -> None:
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            if path.lower().endswith((".parquet", ".pq")):
                self._impl = Ledger.from_parquet(path, policy=policy, backend=backend, expiration=expiration)._impl
            else:
                self._impl = Ledger.from_csv(path, policy=policy, backend=backend, expiration=expiration)._impl
        else:
            self._impl = Ledger.from_arrow(source, policy=policy, backend=backend, name=name, expiration=expiration)._impl

    @classmethod
    def _wrap(cls, core: _core.Ledger) -> Ledger:
        ledger = cls.__new__(cls)
        ledger._impl = core
        return ledger

    @classmethod
    def from_csv(
        cls, path: PathLike, *, policy: str = "drain", backend: str = "auto", expiration: str = "duration"
    ) -> Ledger:
        """Reads an events file (``op,account,credit_id,timestamp,amount,expiration``)."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        return cls._wrap(_core.Ledger.from_csv(path, policy, backend, expiration))

    @classmethod
    def from_arrow(
        cls,
        data: Any,
        *,
        policy: str = "drain",
        backend: str = "auto",
        name: str | None = None,
        expiration: str = "duration",
    ) -> Ledger:
        """Reads events from anything with ``__arrow_c_stream__``: a pyarrow Table or
        RecordBatchReader, a Polars or pandas DataFrame, a DuckDB result. Batches are read
        one at a time. ``name`` names the source in errors (default ``"arrow"``).

        Column types: ``op``, ``account``, ``credit_id``: string, large_string,
        string_view or a dictionary of those; ``timestamp``, ``amount``, ``expiration``:
        integers (uint64 up to the int64 maximum), or floats holding whole numbers (NaN
        is missing, as pandas writes gaps). A column of nulls only is fine where no row
        needs a value. Other columns are ignored. ``timestamp`` may instead be an Arrow
        timestamp, and then ``expiration`` must be a duration of the same unit; queries
        then take plain integers in that unit, or timestamps of that unit.
        """
        if type(data).__name__ == "LazyFrame" and hasattr(data, "collect"):
            raise TypeError("a Polars LazyFrame is a query, not data: pass lazy_frame.collect()")
        if not hasattr(data, "__arrow_c_stream__"):
            raise TypeError(
                f"expected an object with __arrow_c_stream__ (pyarrow, Polars, pandas, DuckDB), not {type(data).__name__}"
            )
        rows = _row_count(data)
        stream = data.__arrow_c_stream__()
        return cls._wrap(_core.Ledger.from_stream(stream, name or "arrow", policy, backend, rows, expiration))

    @classmethod
    def from_parquet(
        cls, path: PathLike, *, policy: str = "drain", backend: str = "auto", expiration: str = "duration"
    ) -> Ledger:
        """Reads events from a Parquet file with pyarrow, batch by batch."""
        _pyarrow("Ledger.from_parquet")
        import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        with pq.ParquetFile(path) as file:
            import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

            reader = pa.RecordBatchReader.from_batches(file.schema_arrow, file.iter_batches())
            rows = file.metadata.num_rows
            return cls._wrap(
                _core.Ledger.from_stream(reader.__arrow_c_stream__(), path, policy, backend, rows, expiration)
            )

    @classmethod
    def from_postgres(
        cls,
        uri: str,
        query: str,
        *,
        policy: str = "drain",
        backend: str = "auto",
        expiration: str = "duration",
        name: str | None = None,
    ) -> Ledger:
        """Reads events from a PostgreSQL query through ADBC (``adbc-driver-postgresql``:
        ``pip install ".[postgres]"``): the rows arrive as Arrow record batches over the
        Arrow C stream interface, with no row-by-row Python. ``uri`` is a libpq URI
        (``postgresql://user@host:5432/db``); ``query`` must return SPEC section 7's
        columns (``op, account, credit_id, timestamp, amount, expiration``) in arrival
        order: SQL keeps no order of its own, so end it with ``ORDER BY`` a column that
        carries it. Errors name the query's rows as ``name`` (default ``"postgres"``)."""
        _pyarrow("Ledger.from_postgres")
        try:
            import adbc_driver_postgresql.dbapi as postgres  # type: ignore[import-untyped, unused-ignore]
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                'Ledger.from_postgres needs adbc-driver-postgresql: pip install "gpucredit[postgres]"'
            ) from e
        with postgres.connect(uri) as connection, connection.cursor() as cursor:
            cursor.execute(query)
            reader = cursor.fetch_record_batch()
            return cls._wrap(
                _core.Ledger.from_stream(reader.__arrow_c_stream__(), name or "postgres", policy, backend, 0, expiration)
            )

    # ---- what it holds ---------------------------------------------------------------

    @property
    def backend(self) -> str:
        """Where queries are answered: ``"cpu"`` or ``"cuda"``."""
        return self._impl.backend

    @property
    def policy(self) -> str:
        return self._impl.policy

    @property
    def source(self) -> str:
        return self._impl.source

    @property
    def event_count(self) -> int:
        return self._impl.event_count

    @property
    def account_count(self) -> int:
        return self._impl.account_count

    @property
    def time_unit(self) -> str | None:
        """``"s"``, ``"ms"``, ``"us"`` or ``"ns"`` when the events' timestamps were an Arrow
        timestamp type; ``None`` for plain integers."""
        return self._impl.time_unit

    def accounts(self) -> list[str]:
        """Every account, in order of first appearance."""
        return self._impl.accounts()

    def __repr__(self) -> str:
        return (
            f"<gpucredit.Ledger {self.source!r}: {self.event_count} events, {self.account_count} accounts, "
            f"policy={self.policy}, backend={self.backend}>"
        )

    # ---- queries ---------------------------------------------------------------------

    def balance(self, account: str, timestamp: Any, *, unit: str | None = None) -> int | None:
        """The balance of ``account`` at ``timestamp``; ``None`` when no credit is left or
        the account is unknown. ``unit``: as for :meth:`balances`."""
        if isinstance(timestamp, np.datetime64):
            return self.balances_numpy(account, np.array([timestamp]), unit=unit).filled(0)[0].item() or None
        self._check_plain(unit)
        return self._impl.balance(account, timestamp)

    def balances(self, accounts: Any, timestamps: Any, *, unit: str | None = None) -> pyarrow.Int64Array:
        """Balances of the queries ``(accounts[i], timestamps[i])`` as a pyarrow int64
        array, null for none. Either side may be a single value, repeated for every query.

        ``accounts``: a str, a list of str, a NumPy array of str (or object), or an Arrow
        string array (pyarrow, Polars; a dictionary array resolves each name once).
        ``timestamps``: an int, a NumPy integer or datetime64 array, or an Arrow integer
        or timestamp array. The answer's values are lent by the engine, not copied.

        A ledger built from timestamp columns (``time_unit`` is ``"s"``, ``"ms"``, ``"us"``
        or ``"ns"``) takes datetime64 or Arrow timestamps of its unit; plain integers are
        refused there unless ``unit`` names that unit (``unit="us"``), so that seconds are
        never read as microseconds by mistake.
        """
        pa = _pyarrow("Ledger.balances")
        return pa.array(self._query(accounts, timestamps, unit))

    def grid(
        self, accounts: Any, start: Any, stop: Any, every: Any, *, balances: bool = True, unit: str | None = None
    ) -> Grid:
        """Every listed account's balance at ``start``, ``start + every``, ... up to ``stop``
        (SPEC section 11), and the fleet's exact total at each of those times. The grid is
        made and summed where the engine runs (on the device for the CUDA backend: no
        query columns cross to it); with ``balances=False`` only the totals come back.

        ``accounts``: as for :meth:`balances` (unknown accounts give rows of 0).
        ``start``, ``stop``: ints, or ``numpy.datetime64`` on a ledger of timestamps;
        ``every``: an int or a ``numpy.timedelta64``. Plain integers on a ledger of
        timestamps need ``unit``, as for :meth:`balances`.
        """
        first, step, count, fleet, values = self._impl.grid(
            _accounts_arg(accounts), self._time_int(start, "start", unit), self._time_int(stop, "stop", unit),
            self._time_int(every, "every", unit), balances
        )
        offsets = np.arange(count, dtype=np.uint64) * np.uint64(step)
        times = (offsets + np.uint64(first % (1 << 64))).view(np.int64)
        if self.time_unit is not None:
            times = times.view(f"M8[{self.time_unit}]")
        return Grid(times=times, fleet=fleet, balances=values)

    def summary(self, start: Any, stop: Any, *, unit: str | None = None) -> pyarrow.Table:
        """Every account's window ``(start, stop]`` (SPEC section 11) as a pyarrow Table:
        ``account``, ``balance_from``, ``granted``, ``consumed``, ``expired``,
        ``shortfall``, ``rejected``, ``balance_to``, one row per account in order of first
        appearance; ``balance_to = balance_from + granted - consumed - expired`` exactly.
        The five totals may pass int64, so they are ``decimal128(38, 0)``; the balances
        are int64. ``start`` and ``stop`` as for :meth:`grid`."""
        pa = _pyarrow("Ledger.summary")
        return pa.table(self._impl.summary(self._time_int(start, "start", unit), self._time_int(stop, "stop", unit)))

    def _time_int(self, value: Any, kind: str, unit: str | None) -> int:
        """A time (``every``: a duration) as an int in this ledger's unit."""
        if isinstance(value, (np.datetime64, np.timedelta64)):
            if self.time_unit is None:
                raise TypeError(f"{kind} is a NumPy {value.dtype} but this ledger's times are plain integers")
            return int(value.astype(f"{'M8' if kind != 'every' else 'm8'}[{self.time_unit}]").view(np.int64))
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            self._check_plain(unit)
            return int(value)
        raise TypeError(f"{kind} must be an int or a NumPy datetime64/timedelta64, not {type(value).__name__}")

    def balances_numpy(self, accounts: Any, timestamps: Any, *, unit: str | None = None) -> np.ma.MaskedArray:
        """The same as :meth:`balances`, as a NumPy masked int64 array (masked: none).
        Needs no pyarrow. ``.filled(0)`` gives plain int64 with 0 for none."""
        values = self._query(accounts, timestamps, unit).values()
        return np.ma.MaskedArray(values, mask=values == 0)

    def _check_plain(self, unit: str | None) -> None:
        """Plain integers as times: fine for a ledger of plain integers; for a ledger of
        timestamps only when `unit` names its unit."""
        if unit is not None and unit != self.time_unit:
            have = "plain integers" if self.time_unit is None else f"in {self.time_unit}"
            raise TypeError(f"unit={unit!r}, but this ledger's times are {have}: nothing is converted")
        if self.time_unit is not None and unit is None:
            raise TypeError(
                f"timestamps are plain integers but this ledger's times are timestamps in {self.time_unit}: "
                f"pass datetime64[{self.time_unit}] or Arrow timestamp[{self.time_unit}] values, or say "
                f"unit={self.time_unit!r} to read the integers in that unit"
            )

    def _query(self, accounts: Any, timestamps: Any, unit: str | None = None) -> _core.Balances:
        times, plain = self._times_arg(timestamps)
        if plain:
            self._check_plain(unit)
        elif unit is not None and unit != self.time_unit:
            self._check_plain(unit)  # says why
        plain_ok = self.time_unit is None or unit == self.time_unit
        return self._impl.query(_accounts_arg(accounts), times, plain_ok)

    def _times_arg(self, timestamps: Any) -> tuple[Any, bool]:
        """The times for the engine, and whether they are plain integers (Arrow arrays
        are checked by the engine, which sees their type)."""
        if isinstance(timestamps, (int, np.integer)) and not isinstance(timestamps, (bool, np.bool_)):
            return int(timestamps), True
        if _is_arrow(timestamps):
            return timestamps, False
        array = np.asarray(timestamps)
        if array.ndim != 1:
            raise ValueError(f"timestamps must be one-dimensional, not of shape {array.shape}")
        if array.size == 0:
            return np.empty(0, dtype=np.int64), False
        kind = array.dtype.kind
        if kind == "M":
            unit = np.datetime_data(array.dtype)[0]
            if self.time_unit is None or unit != self.time_unit:
                have = "plain integers" if self.time_unit is None else f"in {self.time_unit}"
                raise TypeError(
                    f"timestamps are datetime64[{unit}] but this ledger's times are {have}: convert them first"
                )
            nat = np.isnat(array)
            if nat.any():
                row = int(np.argmax(nat))
                raise InputError(f"timestamps: row {row}: missing timestamp", "timestamps", None, row, "missing timestamp")
            return np.ascontiguousarray(array).view(np.int64), False
        if kind == "u" and array.size and int(array.max()) > _INT64_MAX:
            row = int(np.argmax(array > _INT64_MAX))
            reason = "timestamp out of int64 range"
            raise InputError(f"timestamps: row {row}: {reason}", "timestamps", None, row, reason)
        if kind == "f":  # as from Arrow: whole numbers only, NaN is missing (pandas writes gaps so)
            bad = np.isnan(array)
            if bad.any():
                row = int(np.argmax(bad))
                raise InputError(f"timestamps: row {row}: missing timestamp", "timestamps", None, row, "missing timestamp")
            bad = (array != np.floor(array)) | (np.abs(array) >= 2.0**63)
            if bad.any():
                row = int(np.argmax(bad))
                reason = "timestamp is not an integer"
                raise InputError(f"timestamps: row {row}: {reason}", "timestamps", None, row, reason)
            return np.ascontiguousarray(array.astype(np.int64)), True
        if kind not in "iu":
            raise TypeError(f"timestamps must be integers, not {array.dtype}")
        return np.ascontiguousarray(array, dtype=np.int64), True

    # ---- the flattened ledger ----------------------------------------------------------

    def intervals(self) -> pyarrow.Table:
        """The interval table (SPEC section 5) as a pyarrow Table: ``account``,
        ``credit_id`` (dictionary-encoded), ``begin``, ``end``, ``amount``; grouped by
        account in order of first appearance, then by credit and begin. Account codes and
        the three int64 columns are lent by the ledger, not copied."""
        return _pyarrow("Ledger.intervals").table(self._impl.intervals())

    def shortfalls(self) -> pyarrow.Table:
        """Uses not paid in full under ``drain``: ``account``, ``timestamp``, ``amount``
        (the unpaid rest), in the order the ledger applied them."""
        return _pyarrow("Ledger.shortfalls").table(self._impl.usage(False))

    def rejections(self) -> pyarrow.Table:
        """Uses rejected under ``reject``: ``account``, ``timestamp``, ``amount``."""
        return _pyarrow("Ledger.rejections").table(self._impl.usage(True))


def _row_count(data: Any) -> int:
    """The row count of an in-memory table (pyarrow, Polars, pandas), else 0. Other
    sources (a DuckDB result, a stream) are not asked: that could run them."""
    if type(data).__module__.split(".")[0] not in ("pyarrow", "polars", "pandas"):
        return 0
    try:
        return int(len(data))
    except TypeError:  # a RecordBatchReader
        return 0


def _accounts_arg(accounts: Any) -> Any:
    if isinstance(accounts, (str, list)):
        return accounts
    if type(accounts).__module__.split(".")[0] == "pandas" and getattr(accounts, "dtype", None) == object:
        # An object column may hold anything: read it as a list, under the list's rule
        # (None: InputError with its row; not a str: TypeError with its row).
        return list(accounts)
    if _is_arrow(accounts):
        return accounts
    array = np.asarray(accounts)
    if array.ndim != 1:
        raise ValueError(f"accounts must be one-dimensional, not of shape {array.shape}")
    if array.size == 0:
        return []
    kind = array.dtype.kind
    if kind == "U":  # fixed-width UCS-4: read in place as code points
        width = array.dtype.itemsize // 4
        return np.ascontiguousarray(array).view(np.uint32).reshape(len(array), width)
    if kind == "S":
        return np.ascontiguousarray(array).view(np.uint8).reshape(len(array), array.dtype.itemsize)
    if kind in "OT":
        return array.tolist()
    raise TypeError(f"accounts must be text, not {array.dtype}")
