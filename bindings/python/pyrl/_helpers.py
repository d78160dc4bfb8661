"""pyrl's conversions of Python values to C arguments (with their range
checks) and the module-level functions that need no handle."""

import ctypes
import math
import operator
import os
from typing import Optional

from ._errors import InvalidArgument, OutOfRange, _error
from ._native import (RL_EINVAL, RL_OK, SECOND, _FOREVER_NS, _I64, _rl_default_path,
                      _rl_parse_duration, _rl_parse_rate, _rl_strerror, _rl_validate_tiers,
                      _rl_version)

# ---- small helpers -------------------------------------------------------------


def _b(s, what="argument") -> Optional[bytes]:
    """str/bytes/PathLike -> bytes for a C string; NUL bytes are refused
    because C would silently cut the string there."""
    if type(s) is str:  # the common case first: a PathLike test costs ~0.5 us
        b = s.encode("utf-8")
        if b"\0" in b:
            raise InvalidArgument(RL_EINVAL, "%s contains a NUL byte" % what)
        return b
    if s is None:
        return None
    if isinstance(s, os.PathLike):
        s = os.fspath(s)
    if isinstance(s, str):
        s = s.encode("utf-8")
    if not isinstance(s, bytes):
        raise TypeError("%s must be str or bytes, not %s" % (what, type(s).__name__))
    if b"\0" in s:
        raise InvalidArgument(RL_EINVAL, "%s contains a NUL byte" % what)
    return s


def _s(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _bits(t) -> int:
    return 8 * ctypes.sizeof(t)


# The ranges of the C integer types that arguments are passed as.
_INT64 = (-(1 << 63), (1 << 63) - 1, "int64_t")
_SIZE = (0, (1 << _bits(ctypes.c_size_t)) - 1, "size_t")
_CINT = (-(1 << (_bits(ctypes.c_int) - 1)), (1 << (_bits(ctypes.c_int) - 1)) - 1, "int")
_CUINT = (0, (1 << _bits(ctypes.c_uint)) - 1, "unsigned int")


def _int(v, what: str, ctype=_INT64, convert=operator.index) -> int:
    """v as a Python int that the C type ctype holds, else OutOfRange (an
    InvalidArgument, so a ValueError, and an OverflowError): ctypes itself
    would silently keep the low bits. convert is operator.index (integers
    only: a float is a TypeError) or int (floats are truncated)."""
    lo, hi, name = ctype
    try:
        i = convert(v)
    except TypeError:
        raise TypeError("%s must be an integer, not %s" % (what, type(v).__name__)) from None
    except (OverflowError, ValueError):  # int(inf), int(nan)
        raise OutOfRange(RL_EINVAL, "%s %r is not a finite number" % (what, v)) from None
    if not lo <= i <= hi:
        raise OutOfRange(RL_EINVAL, "%s %d is out of range: the C %s holds %d to %d"
                         % (what, i, name, lo, hi))
    return i


def _ns(seconds, what: str = "duration", forever: bool = False) -> int:
    """seconds (int or float) as int64 nanoseconds, else OutOfRange. With
    forever, the value is a timeout: negative is 0, and anything at or above
    INT64_MAX nanoseconds (infinity included) is INT64_MAX, which librl takes
    as waiting for ever."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        try:
            seconds = float(seconds)  # Decimal, Fraction, numpy numbers...
        except (TypeError, ValueError):
            raise TypeError("%s must be a number of seconds, not %s"
                            % (what, type(seconds).__name__)) from None
    if isinstance(seconds, float) and math.isnan(seconds):
        raise OutOfRange(RL_EINVAL, "%s is NaN, not a number of seconds" % what)
    ns = seconds * SECOND
    if forever:
        if ns <= 0:
            return 0
        if ns >= _FOREVER_NS:
            return _FOREVER_NS
    if isinstance(ns, float) and math.isinf(ns):
        raise OutOfRange(RL_EINVAL, "%s %r s is out of range: the C int64_t of "
                         "nanoseconds holds about 292 years" % (what, seconds))
    ns = int(round(ns))
    if not _INT64[0] <= ns <= _INT64[1]:
        raise OutOfRange(RL_EINVAL, "%s %r s is out of range: the C int64_t of nanoseconds "
                         "holds about 292 years (%d ns)" % (what, seconds, _INT64[1]))
    return ns


def strerror(code: int) -> str:
    return _s(_rl_strerror(code))


def version() -> str:
    """The version of the loaded librl."""
    return _s(_rl_version())


def default_path() -> str:
    """The path Limiter(None) opens: $RL_DB, else $XDG_STATE_HOME/rl/rl.db,
    else ~/.local/state/rl/rl.db."""
    buf = ctypes.create_string_buffer(4096)
    rc = _rl_default_path(buf, len(buf))
    if rc != RL_OK:
        raise _error(rc, "no default database path: set RL_DB or HOME")
    return _s(buf.value)


def parse_rate(s: str):
    """"600/min" -> (600, 60_000_000_000): count and period in ns."""
    count, period = _I64(), _I64()
    rc = _rl_parse_rate(_b(s, "rate"), ctypes.byref(count), ctypes.byref(period))
    if rc != RL_OK:
        raise _error(rc, "invalid rate %r" % s)
    return count.value, period.value


def parse_duration(s: str) -> int:
    """"1m30s" -> 90_000_000_000 (ns), in Go's notation."""
    ns = _I64()
    rc = _rl_parse_duration(_b(s, "duration"), ctypes.byref(ns))
    if rc != RL_OK:
        raise _error(rc, "invalid duration %r" % s)
    return ns.value


def validate_tiers(path) -> None:
    """Checks a YAML tiers file without a database; raises Config with
    "FILE:LINE:COL: message" (or StoreError if it cannot be read)."""
    err = ctypes.create_string_buffer(1024)
    rc = _rl_validate_tiers(_b(path, "path"), err, len(err))
    if rc != RL_OK:
        raise _error(rc, _s(err.value))
