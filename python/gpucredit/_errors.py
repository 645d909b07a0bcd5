"""The exceptions gpucredit raises on purpose."""

from __future__ import annotations


class Error(Exception):
    """Base of every exception gpucredit raises on purpose."""

    def __init__(
        self,
        message: str,
        source: str | None = None,
        line: int | None = None,
        row: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.line = line
        self.row = row
        self.reason = reason if reason is not None else message


class InputError(Error, ValueError):
    """Bad input: a malformed file, a bad field or row, a bad call, a balance beyond int64.

    ``source`` names the input (a file path, the name given to an Arrow source,
    ``"accounts"``/``"timestamps"`` for query arrays, or the call such as
    ``"addCredit"``); ``line`` is the 1-based file line (or the call's number) where
    there is one; ``row`` is the 0-based row of an Arrow source or query array; and
    ``reason`` says what is wrong. ``str(error)`` reads ``SOURCE:LINE: REASON`` or
    ``SOURCE: row N: REASON``.
    """


class BackendError(Error, RuntimeError):
    """A query backend's failure: :class:`BackendUnavailable` or :class:`DeviceError`."""


class BackendUnavailable(BackendError):
    """The backend asked for cannot run here: an unknown name, not compiled into this
    build, or no usable device. The caller's choice is at fault."""


class DeviceError(BackendError):
    """The device failed while it worked (out of device memory, a failed launch)."""
