"""pyrl - Python binding of librl, a rate limiter whose state lives in SQLite.

Standard library only (ctypes). Every process that opens the same database
file shares every bucket, whether it is written in C, Python, or is rlctl.

    import pyrl
    with pyrl.Limiter("agents.db", default_limits=["60/min"]) as rl:
        res = rl.allow("user:alice")
        if res:
            ...                               # admitted
        else:
            time.sleep(res.retry_after)       # seconds, a float

The package is called ``pyrl`` because ``rl`` is already taken on PyPI (a
readline binding). librl is found through $RL_LIBRARY (a path), else the
system's library search (ctypes.util.find_library("rl")), else the build
trees next to this source (build/librl.so) and /usr/local/lib.

Thread safety: one Limiter may be shared by the threads of a process (librl
serialises calls with a mutex in the handle; ctypes releases the GIL during
each call). After os.fork() the child must open its own Limiter: using the
parent's raises RLError.
"""

import ctypes
import ctypes.util
import math
import operator
import os
import threading
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union

__all__ = [
    "Limiter", "Limit", "Result", "KeyStats", "LimitStats", "Totals", "Reservation",
    "CancelToken", "RLError", "InvalidArgument", "OutOfRange", "NoMemory", "TooBig", "StoreFailure",
    "StoreError", "Unreachable", "AuthFailed", "Busy", "ReadOnly", "Full", "Corrupt", "Version",
    "Config", "NotFound", "Untrusted",
    "Timeout", "Canceled", "NoLimit", "validate_tiers", "parse_rate", "parse_duration",
    "default_path", "version", "library_path",
]

# ---- constants of rl.h (checked against the C compiler by the tests) -------

RL_KEY_MAX = 512
RL_NAME_MAX = 64
RL_MAX_LIMITS = 8
RL_MAX_KEYS = 8
RL_OPTIONS_VERSION = 1
RL_OPEN_READONLY = 0x1
RL_OPEN_SHARED_GROUP = 0x2
RL_FAIL_CLOSED, RL_FAIL_OPEN = 0, 1
RL_ALGO_GCRA, RL_ALGO_SLIDING_WINDOW, RL_ALGO_CONCURRENT = 0, 1, 2
RL_DURABILITY_NORMAL, RL_DURABILITY_FULL = 0, 1
RL_BUSY_LOCK, RL_BUSY_SQLITE = 0, 1
RL_SORT_KEY, RL_SORT_ALLOWED, RL_SORT_REFUSED, RL_SORT_LAST_SEEN = 0, 1, 2, 3
RL_TIER_NONE, RL_TIER_ASSIGNED, RL_TIER_RULE, RL_TIER_DEFAULT, RL_TIER_OPTIONS = range(5)

RL_OK = 0
RL_EINVAL = -1
RL_ENOMEM = -2
RL_ETOOBIG = -3
RL_EBUSY = -4
RL_ESTORE = -5
RL_EREADONLY = -6
RL_EFULL = -7
RL_ECORRUPT = -8
RL_EVERSION = -9
RL_ECONFIG = -10
RL_ENOTFOUND = -11
RL_ETIMEOUT = -12
RL_ECANCELED = -13
RL_ENOLIMIT = -14
RL_ECONNECT = -15
RL_EAUTH = -16
RL_EPERM = -17

SECOND = 1_000_000_000
_FOREVER_NS = (1 << 63) - 1  # INT64_MAX: librl waits for ever

TIER_SOURCES = {RL_TIER_NONE: "none", RL_TIER_ASSIGNED: "assigned", RL_TIER_RULE: "rule",
                RL_TIER_DEFAULT: "default_tier", RL_TIER_OPTIONS: "options"}
_SORTS = {"key": RL_SORT_KEY, "allowed": RL_SORT_ALLOWED, "refused": RL_SORT_REFUSED,
          "last_seen": RL_SORT_LAST_SEEN}

# ---- errors ------------------------------------------------------------------


class RLError(Exception):
    """An error from librl: .code is the RL_E* code, str() its message."""

    def __init__(self, code: int, message: str = ""):
        super().__init__(message or "rl error %d" % code)
        self.code = code
        self.message = message


class InvalidArgument(RLError, ValueError):
    """RL_EINVAL: a bad key, negative cost, invalid limit or option."""


class OutOfRange(InvalidArgument, OverflowError):
    """An integer (or a duration in nanoseconds) that the C type it is passed
    as cannot hold: a cost beyond int64_t, a negative size_t... Raised by
    pyrl itself, before librl is called: ctypes would silently wrap the value
    (a cost of 2**64 + 1 would be charged as 1)."""


class NoMemory(RLError, MemoryError):
    """RL_ENOMEM."""


class TooBig(RLError):
    """RL_ETOOBIG: the cost exceeds a limit's burst, so it can never pass."""


class StoreFailure(RLError):
    """Any failure of the store: these are the errors that fail_open admits."""


class StoreError(StoreFailure):
    """RL_ESTORE: I/O error, cannot open the database."""


class Busy(StoreFailure):
    """RL_EBUSY: the store stayed locked past the busy timeout."""


class ReadOnly(StoreFailure):
    """RL_EREADONLY: read-only handle or file permissions."""


class Full(StoreFailure):
    """RL_EFULL: the disk or database is full."""


class Corrupt(StoreFailure):
    """RL_ECORRUPT: not an rl database, damaged, or tampered with."""


class Version(StoreFailure):
    """RL_EVERSION: the database schema is newer than this librl."""


class Config(RLError):
    """RL_ECONFIG: an invalid tiers file ("FILE:LINE:COL: message")."""


class NotFound(RLError, LookupError):
    """RL_ENOTFOUND: no such key or tier."""


class Timeout(RLError, TimeoutError):
    """RL_ETIMEOUT: admission would take longer than the timeout; nothing consumed."""


class Canceled(RLError):
    """RL_ECANCELED: the wait was cancelled and its reservation returned."""


class Unreachable(StoreFailure, ConnectionError):
    """RL_ECONNECT: the store's server (Redis) is unreachable: refused, lost, timed out."""


class AuthFailed(StoreFailure, PermissionError):
    """RL_EAUTH: the store's server (Redis) refused the credentials."""


class NoLimit(RLError):
    """RL_ENOLIMIT: no tier and no default limits apply to the key."""


class Untrusted(RLError, PermissionError):
    """RL_EPERM: a file of the database is one another user could have planted
    (owned by another user, mode wider than file_mode, not a regular file)."""


_ERRORS = {RL_EINVAL: InvalidArgument, RL_ENOMEM: NoMemory, RL_ETOOBIG: TooBig,
           RL_EBUSY: Busy, RL_ESTORE: StoreError, RL_EREADONLY: ReadOnly, RL_EFULL: Full,
           RL_ECORRUPT: Corrupt, RL_EVERSION: Version, RL_ECONFIG: Config,
           RL_ENOTFOUND: NotFound, RL_ETIMEOUT: Timeout, RL_ECANCELED: Canceled,
           RL_ENOLIMIT: NoLimit, RL_ECONNECT: Unreachable, RL_EAUTH: AuthFailed,
           RL_EPERM: Untrusted}


def _error(code: int, message: str) -> RLError:
    return _ERRORS.get(code, RLError)(code, message)


# ---- the C structures, field for field as in rl.h ----------------------------

class rl_limit(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("resource", ctypes.c_char_p),
                ("count", ctypes.c_int64), ("period_ns", ctypes.c_int64),
                ("burst", ctypes.c_int64), ("algorithm", ctypes.c_int)]


_clock_fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)


class rl_options(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint), ("default_limits", ctypes.POINTER(rl_limit)),
                ("n_default_limits", ctypes.c_size_t), ("busy_timeout_ms", ctypes.c_int),
                ("durability", ctypes.c_int), ("fail_mode", ctypes.c_int),
                ("clock", _clock_fn), ("clock_ctx", ctypes.c_void_p),
                ("file_mode", ctypes.c_uint), ("tiers_file", ctypes.c_char_p),
                ("flags", ctypes.c_uint), ("busy_strategy", ctypes.c_int)]


class rl_result(ctypes.Structure):
    _fields_ = [("allowed", ctypes.c_int), ("limit", ctypes.c_int64),
                ("remaining", ctypes.c_int64), ("retry_after_ns", ctypes.c_int64),
                ("reset_after_ns", ctypes.c_int64), ("limit_name", ctypes.c_char * RL_NAME_MAX),
                ("degraded", ctypes.c_int), ("key_index", ctypes.c_int)]


class rl_cost(ctypes.Structure):
    _fields_ = [("resource", ctypes.c_char_p), ("amount", ctypes.c_int64)]


class rl_reservation(ctypes.Structure):
    # Only ok, delay_ns and time_to_act are public; the rest is mirrored so
    # that the size and alignment match (the tests check both).
    _fields_ = [("ok", ctypes.c_int), ("delay_ns", ctypes.c_int64),
                ("time_to_act", ctypes.c_int64),
                ("policy_version_", ctypes.c_int64),
                ("amount_", ctypes.c_int64 * RL_MAX_LIMITS),
                ("n_", ctypes.c_size_t),
                ("id_", ctypes.c_uint64 * RL_MAX_LIMITS),
                ("tat_", ctypes.c_int64 * RL_MAX_LIMITS),
                ("rem_", ctypes.c_int64 * RL_MAX_LIMITS),
                ("key_", ctypes.c_char * (RL_KEY_MAX + 1))]


class rl_lease(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int64), ("expires_at", ctypes.c_int64)]


class rl_limit_stats(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * RL_NAME_MAX), ("resource", ctypes.c_char * RL_NAME_MAX),
                ("count", ctypes.c_int64), ("period_ns", ctypes.c_int64),
                ("burst", ctypes.c_int64), ("remaining", ctypes.c_int64),
                ("reset_after_ns", ctypes.c_int64), ("retry_after_ns", ctypes.c_int64),
                ("cooldown_ns", ctypes.c_int64), ("debt", ctypes.c_int64),
                ("in_flight", ctypes.c_int64), ("algorithm", ctypes.c_int)]


class rl_key_stats(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char * (RL_KEY_MAX + 1)), ("exists", ctypes.c_int),
                ("tier", ctypes.c_char * RL_NAME_MAX), ("tier_source", ctypes.c_int),
                ("allowed", ctypes.c_int64), ("refused", ctypes.c_int64),
                ("units", ctypes.c_int64), ("first_seen_ns", ctypes.c_int64),
                ("last_seen_ns", ctypes.c_int64), ("cooldown_ns", ctypes.c_int64),
                ("n_limits", ctypes.c_size_t), ("limits", rl_limit_stats * RL_MAX_LIMITS)]


class rl_totals(ctypes.Structure):
    _fields_ = [("keys", ctypes.c_int64), ("allowed", ctypes.c_int64),
                ("refused", ctypes.c_int64), ("units", ctypes.c_int64)]


class _rl_tier_limit(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * RL_NAME_MAX), ("resource", ctypes.c_char * RL_NAME_MAX),
                ("count", ctypes.c_int64), ("period_ns", ctypes.c_int64),
                ("burst", ctypes.c_int64), ("algorithm", ctypes.c_int)]


class rl_tier_info(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * RL_NAME_MAX), ("unlimited", ctypes.c_int),
                ("is_default", ctypes.c_int), ("n_limits", ctypes.c_size_t),
                ("limits", _rl_tier_limit * RL_MAX_LIMITS)]


sig_atomic_t = ctypes.c_int  # glibc, musl and the BSDs; checked by the tests

STRUCTS = {"rl_limit": rl_limit, "rl_options": rl_options, "rl_result": rl_result,
           "rl_cost": rl_cost, "rl_reservation": rl_reservation,
           "rl_limit_stats": rl_limit_stats, "rl_key_stats": rl_key_stats,
           "rl_totals": rl_totals, "rl_tier_info": rl_tier_info, "rl_lease": rl_lease,
           "sig_atomic_t": sig_atomic_t}

_key_fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(rl_key_stats))
_tier_fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(rl_tier_info))

# ---- loading librl -------------------------------------------------------------


def _candidates():
    env = os.environ.get("RL_LIBRARY")
    if env:
        yield env
        return  # an explicit choice that fails must not fall back silently
    found = ctypes.util.find_library("rl")
    if found:
        yield found
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.normpath(os.path.join(here, "..", "..", ".."))
    for d in (os.path.join(top, "build"), "/usr/local/lib", "/usr/local/lib64",
              "/usr/local/lib/x86_64-linux-gnu", "/usr/local/lib/aarch64-linux-gnu"):
        for name in ("librl.so", "librl.so.0", "librl.dylib"):
            yield os.path.join(d, name)


def _load():
    errors = []
    for cand in _candidates():
        try:
            lib = ctypes.CDLL(cand)
        except OSError as e:
            errors.append("%s: %s" % (cand, e))
            continue
        if not hasattr(lib, "rl_open") or not hasattr(lib, "rl_errmsg"):
            errors.append("%s: not librl (no rl_open)" % cand)
            continue
        return lib, cand
    raise ImportError("pyrl: cannot load librl; set RL_LIBRARY to the path of librl.so "
                      "(tried: %s)" % "; ".join(errors or ["nothing"]))


_lib, library_path = _load()


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_P = ctypes.c_void_p
_S = ctypes.c_char_p
_I64 = ctypes.c_int64
_INT = ctypes.c_int
_SZ = ctypes.c_size_t

_rl_open = _fn("rl_open", _INT, ctypes.POINTER(_P), _S, ctypes.POINTER(rl_options))
_rl_close = _fn("rl_close", None, _P)
_rl_errmsg = _fn("rl_errmsg", _S, _P)
_rl_strerror = _fn("rl_strerror", _S, _INT)
_rl_version = _fn("rl_version", _S)
_rl_default_path = _fn("rl_default_path", _INT, ctypes.c_char_p, _SZ)
_rl_tier_set = _fn("rl_tier_set", _INT, _P, _S, ctypes.POINTER(rl_limit), _SZ)
_rl_tier_delete = _fn("rl_tier_delete", _INT, _P, _S)
_rl_key_assign = _fn("rl_key_assign", _INT, _P, _S, _S)
_rl_allow = _fn("rl_allow", _INT, _P, _S, _I64, ctypes.POINTER(rl_result))
_rl_wait = _fn("rl_wait", _INT, _P, _S, _I64, _I64, ctypes.POINTER(sig_atomic_t),
               ctypes.POINTER(rl_result))
_rl_reserve = _fn("rl_reserve", _INT, _P, _S, _I64, _I64, ctypes.POINTER(rl_reservation))
_rl_cancel = _fn("rl_cancel", _INT, _P, ctypes.POINTER(rl_reservation))
_rl_acquire = _fn("rl_acquire", _INT, _P, _S, ctypes.POINTER(rl_cost), _SZ,
                  ctypes.POINTER(rl_result))
_rl_acquire_keys = _fn("rl_acquire_keys", _INT, _P, ctypes.POINTER(_S), _SZ,
                       ctypes.POINTER(rl_cost), _SZ, ctypes.POINTER(rl_result))
_rl_penalize = _fn("rl_penalize", _INT, _P, _S, _S, _I64)
_rl_lease_begin = _fn("rl_lease_begin", _INT, _P, _S, ctypes.POINTER(rl_cost), _SZ, _I64,
                      ctypes.POINTER(rl_lease), ctypes.POINTER(rl_result))
_rl_lease_settle = _fn("rl_lease_settle", _INT, _P, ctypes.POINTER(rl_lease),
                       ctypes.POINTER(rl_cost), _SZ)
_rl_lease_cancel = _fn("rl_lease_cancel", _INT, _P, ctypes.POINTER(rl_lease))
_rl_stats = _fn("rl_stats", _INT, _P, _S, ctypes.POINTER(rl_key_stats))
_rl_totals_get = _fn("rl_totals_get", _INT, _P, ctypes.POINTER(rl_totals))
_rl_reset = _fn("rl_reset", _INT, _P, _S)
_rl_keys_list = _fn("rl_keys_list", _INT, _P, _S, _INT, _SZ, _key_fn, _P)
_rl_tiers_list = _fn("rl_tiers_list", _INT, _P, _tier_fn, _P)
_rl_load_tiers = _fn("rl_load_tiers", _INT, _P, _S)
_rl_validate_tiers = _fn("rl_validate_tiers", _INT, _S, ctypes.c_char_p, _SZ)
_rl_parse_rate = _fn("rl_parse_rate", _INT, _S, ctypes.POINTER(_I64), ctypes.POINTER(_I64))
_rl_parse_duration = _fn("rl_parse_duration", _INT, _S, ctypes.POINTER(_I64))

# ---- small helpers -------------------------------------------------------------


def _b(s, what="argument") -> Optional[bytes]:
    """str/bytes/PathLike -> bytes for a C string; NUL bytes are refused
    because C would silently cut the string there."""
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


# ---- values ----------------------------------------------------------------------


_ALGORITHMS = {"gcra": RL_ALGO_GCRA, "token_bucket": RL_ALGO_GCRA,
               "sliding_window": RL_ALGO_SLIDING_WINDOW}


@dataclass(frozen=True)
class Limit:
    """count units per period (seconds), bucket capacity burst (0: count).
    resource None means "requests"; name None gets "limitN". algorithm is
    "gcra" (a token bucket, the default) or "sliding_window" (at most count
    per sliding window of period; burst is then ignored)."""
    count: int
    period: float
    burst: int = 0
    name: Optional[str] = None
    resource: Optional[str] = None
    algorithm: str = "gcra"

    @classmethod
    def rate(cls, rate: str, burst: int = 0, name=None, resource=None,
             algorithm: str = "gcra") -> "Limit":
        """Limit.rate("600/min", burst=50), in the notation of tiers files."""
        count, period_ns = parse_rate(rate)
        return cls(count, period_ns / SECOND, burst, name, resource, algorithm)

    @property
    def period_ns(self) -> int:
        return _ns(self.period, "period")

    @property
    def algorithm_code(self) -> int:
        if self.period_ns == 0:  # a cap on units in flight (RL_CONCURRENT)
            return RL_ALGO_CONCURRENT
        if self.algorithm not in _ALGORITHMS:
            raise ValueError("unknown algorithm %r (gcra, token_bucket or sliding_window)"
                             % (self.algorithm,))
        return _ALGORITHMS[self.algorithm]


def _limit(x) -> Limit:
    if isinstance(x, Limit):
        return x
    if isinstance(x, str):
        return Limit.rate(x)
    if isinstance(x, dict):
        x = dict(x)
        if "rate" in x:
            return Limit.rate(x.pop("rate"), **x)
        return Limit(**x)
    if isinstance(x, (tuple, list)):
        return Limit(*x)
    raise TypeError("a limit is a Limit, a rate string, a dict or a tuple, not %r" % (x,))


def _limit_array(limits):
    ls = [_limit(x) for x in (limits or [])]
    arr = (rl_limit * max(len(ls), 1))()
    keep = []
    for i, l in enumerate(ls):
        name, res = _b(l.name, "limit name"), _b(l.resource, "resource")
        keep += [name, res]
        arr[i] = rl_limit(name, res, _int(l.count, "count"), l.period_ns,
                          _int(l.burst, "burst"), l.algorithm_code)
    return arr, len(ls), keep


@dataclass(frozen=True)
class Result:
    """The outcome of a decision. True when admitted."""
    allowed: bool
    remaining: int
    retry_after_ns: int
    reset_after_ns: int
    limit: int
    limit_name: str
    degraded: bool
    key_index: int = 0
    key: Optional[str] = None  # the deciding key

    @property
    def retry_after(self) -> float:
        """Seconds until the same request would pass (0.0 if admitted)."""
        return self.retry_after_ns / SECOND

    @property
    def reset_after(self) -> float:
        """Seconds until the deciding limit is full again."""
        return self.reset_after_ns / SECOND

    def __bool__(self) -> bool:
        return self.allowed


def _result(res: rl_result, keys=None) -> Result:
    k = res.key_index
    return Result(bool(res.allowed), res.remaining, res.retry_after_ns, res.reset_after_ns,
                  res.limit, _s(res.limit_name), bool(res.degraded), k,
                  keys[k] if keys and 0 <= k < len(keys) else None)


@dataclass(frozen=True)
class LimitStats:
    name: str
    resource: str
    count: int
    period_ns: int
    burst: int
    remaining: int
    reset_after_ns: int
    retry_after_ns: int
    cooldown_ns: int
    debt: int = 0       # units owed beyond an empty bucket (lease overruns)
    in_flight: int = 0  # concurrency limits: units held by leases
    algorithm: str = "gcra"  # or "sliding_window"


@dataclass(frozen=True)
class KeyStats:
    key: str
    exists: bool
    tier: str
    tier_source: str  # none, assigned, rule, default_tier, options
    allowed: int
    refused: int
    units: int
    first_seen_ns: int
    last_seen_ns: int
    cooldown_ns: int
    limits: List[LimitStats] = field(default_factory=list)


def _algorithm_name(code: int) -> str:
    return {RL_ALGO_SLIDING_WINDOW: "sliding_window",
            RL_ALGO_CONCURRENT: "concurrent"}.get(code, "gcra")


def _key_stats(st: rl_key_stats) -> KeyStats:
    limits = [LimitStats(_s(l.name), _s(l.resource), l.count, l.period_ns, l.burst, l.remaining,
                         l.reset_after_ns, l.retry_after_ns, l.cooldown_ns, l.debt, l.in_flight,
                         _algorithm_name(l.algorithm))
              for l in st.limits[:min(st.n_limits, RL_MAX_LIMITS)]]
    return KeyStats(_s(st.key), bool(st.exists), _s(st.tier),
                    TIER_SOURCES.get(st.tier_source, str(st.tier_source)), st.allowed,
                    st.refused, st.units, st.first_seen_ns, st.last_seen_ns, st.cooldown_ns,
                    limits)


@dataclass(frozen=True)
class Totals:
    keys: int
    allowed: int
    refused: int
    units: int


class CancelToken:
    """Cancels a Limiter.wait from another thread: token.cancel(). The flag
    is the volatile sig_atomic_t that rl_wait polls while it sleeps."""

    def __init__(self):
        self._flag = sig_atomic_t(0)

    def cancel(self) -> None:
        self._flag.value = 1

    @property
    def cancelled(self) -> bool:
        return bool(self._flag.value)


class Reservation:
    """What Limiter.reserve took: act after .delay seconds, or .cancel()."""

    def __init__(self, limiter: "Limiter", rv: rl_reservation):
        self._limiter = limiter
        self._rv = rv
        self._done = False

    @property
    def ok(self) -> bool:
        return bool(self._rv.ok)

    @property
    def delay_ns(self) -> int:
        return self._rv.delay_ns

    @property
    def delay(self) -> float:
        return self._rv.delay_ns / SECOND

    @property
    def time_to_act_ns(self) -> int:
        return self._rv.time_to_act

    def cancel(self) -> None:
        """Gives back what no later decision has built on. Idempotent."""
        if self._done:
            return
        self._done = True
        self._limiter._call(_rl_cancel, ctypes.byref(self._rv))


# ---- the handle --------------------------------------------------------------------


class Refused(RLError):
    """lease() was refused: .result says by which limit and for how long."""

    def __init__(self, result: "Result"):
        super().__init__(RL_OK, "refused by %s; retry after %.3f s"
                         % (result.limit_name or "a limit", result.retry_after))
        self.result = result


def _costs(requests, costs, resources):
    amounts = {}
    if requests is not None:
        amounts["requests"] = requests
    amounts.update(costs or {})
    amounts.update(resources)
    if not amounts:
        raise InvalidArgument(RL_EINVAL, "at least one cost is needed")
    carr = (rl_cost * len(amounts))()
    for i, (name, amount) in enumerate(amounts.items()):
        carr[i] = rl_cost(_b(name, "resource"), _int(amount, "cost of %s" % name, convert=int))
    return carr, len(amounts)


class Lease:
    """A lease from Limiter.lease(): its estimate is charged and its slots of
    concurrency limits are held until settle() or cancel(). As a context
    manager it is begun on entry (raising Refused if the limits say no),
    cancelled if the block raises, and settled at its estimate if the block
    ends without settling."""

    def __init__(self, limiter: "Limiter", key, ttl: float, carr, n: int):
        self._limiter = limiter
        self._key = key
        self._ttl = ttl
        self._carr = carr
        self._n = n
        self._lease = rl_lease()
        self._open = False
        self.result: Optional[Result] = None

    @property
    def id(self) -> int:
        return self._lease.id

    def begin(self) -> "Lease":
        res = rl_result()
        self.result = self._limiter._decide(
            _rl_lease_begin, (_b(self._key, "key"), self._carr, self._n, _ns(self._ttl, "ttl"),
                              ctypes.byref(self._lease)), res)
        if not self.result.allowed:
            raise Refused(self.result)
        self._open = self._lease.id > 0
        return self

    def settle(self, requests: Optional[int] = None, costs: Optional[dict] = None,
               **resources: int) -> None:
        """Charges what was really used: lease.settle(tokens=900). The
        unused part goes back; an excess is charged as debt. Resources not
        named are settled at their estimate."""
        carr, n = _costs(requests, costs, resources)
        self._open = False
        self._limiter._call(_rl_lease_settle, ctypes.byref(self._lease), carr, n)

    def cancel(self) -> None:
        """Gives the whole estimate back and frees the slots."""
        self._open = False
        self._limiter._call(_rl_lease_cancel, ctypes.byref(self._lease))

    def __enter__(self) -> "Lease":
        return self.begin()

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._open:
            return
        if exc_type is not None:
            self.cancel()
        else:
            self._open = False
            self._limiter._call(_rl_lease_settle, ctypes.byref(self._lease), self._carr, self._n)


class Limiter:
    """A handle on an rl database.

    path: the database file (created 0600 unless file_mode says otherwise);
    ":memory:" for a private in-process store; None for default_path().
    default_limits: limits for keys no tier covers, as Limit objects, rate
    strings ("60/min"), dicts ({"rate": "60/min", "burst": 10}) or tuples
    (count, period_seconds[, burst[, name[, resource]]]).
    fail_open: when the store fails, admit (Result.degraded True) instead of
    raising the StoreFailure.
    shared_group: the database is shared by a group on purpose
    (RL_OPEN_SHARED_GROUP): its files may belong to other users of one of
    our groups. Without it, a file another user could have planted raises
    Untrusted.
    """

    def __init__(self, path=None, default_limits=None, fail_open: bool = False,
                 tiers_file=None, readonly: bool = False, busy_timeout: float = 5.0,
                 file_mode: int = 0o600, durable: bool = False, shared_group: bool = False):
        self._h = None
        self._mu = threading.Lock()
        self._wcv = threading.Condition()  # guards _waits: tokens of running waits
        self._waits = set()
        self._pid = os.getpid()
        self.fail_open = bool(fail_open)
        o = rl_options()
        o.version = RL_OPTIONS_VERSION
        arr, n, keep = _limit_array(default_limits)
        o.default_limits = arr if n else None
        o.n_default_limits = n
        o.busy_timeout_ms = _int(busy_timeout * 1000, "busy_timeout in ms", _CINT, int)
        o.durability = RL_DURABILITY_FULL if durable else RL_DURABILITY_NORMAL
        o.fail_mode = RL_FAIL_OPEN if fail_open else RL_FAIL_CLOSED
        o.file_mode = _int(file_mode, "file_mode", _CUINT)
        o.tiers_file = _b(tiers_file, "tiers_file")
        o.flags = ((RL_OPEN_READONLY if readonly else 0) |
                   (RL_OPEN_SHARED_GROUP if shared_group else 0))
        o.busy_strategy = RL_BUSY_LOCK
        h = _P()
        rc = _rl_open(ctypes.byref(h), _b(path, "path"), ctypes.byref(o))
        del keep
        if rc != RL_OK:
            msg = _s(_rl_errmsg(h)) if h.value else strerror(rc)
            _rl_close(h)
            raise _error(rc, msg)
        self._h = h

    # -- plumbing

    def _handle(self):
        if self._h is None:
            raise RLError(RL_EINVAL, "the Limiter is closed")
        if os.getpid() != self._pid:
            raise RLError(RL_EINVAL, "a Limiter cannot be used across fork(): "
                          "open a new one in the child")
        return self._h

    def _call(self, fn, *args):
        """Runs fn(handle, *args); raises on an error code. The Python lock
        keeps rl_errmsg tied to the call that set it."""
        with self._mu:
            h = self._handle()
            rc = fn(h, *args)
            if rc != RL_OK:
                raise _error(rc, _s(_rl_errmsg(h)))
        return rc

    def _decide(self, fn, args, res, keys=None) -> Result:
        with self._mu:
            h = self._handle()
            rc = fn(h, *args, ctypes.byref(res))
            msg = _s(_rl_errmsg(h)) if rc != RL_OK else ""
        if rc != RL_OK:
            if res.degraded:  # fail open: librl admitted without the store
                return _result(res, keys)
            raise _error(rc, msg)
        return _result(res, keys)

    def close(self) -> None:
        """Closes the handle; later calls raise RLError. Idempotent. Waits
        still running in other threads are cancelled (they raise Canceled)
        and finish before the handle goes."""
        if os.getpid() == self._pid:  # a child has no threads of the parent's
            with self._wcv:
                for token in self._waits:
                    token.cancel()
                while self._waits:
                    self._wcv.wait()
        with self._mu:
            h, self._h = self._h, None
            if h is not None and os.getpid() == self._pid:
                _rl_close(h)
            # in a forked child the parent's connection is only forgotten:
            # SQLite connections must not be used, nor closed, across fork

    def __enter__(self) -> "Limiter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- decisions

    def allow(self, key, cost: int = 1) -> Result:
        """Decides now whether cost units of "requests" may pass for key."""
        return self._decide(_rl_allow, (_b(key, "key"), _int(cost, "cost")), rl_result())

    def wait(self, key, cost: int = 1, timeout: Optional[float] = None,
             cancel: Optional[CancelToken] = None) -> Result:
        """Blocks until admitted. Raises Timeout at once (consuming nothing)
        if admission would take longer than timeout seconds (None: no
        limit), Canceled if cancel is cancelled meanwhile. In the main
        thread the wait also ends on a signal (Ctrl-C): its reservation is
        returned and the exception (KeyboardInterrupt) propagates."""
        token = cancel or CancelToken()
        tmo = _FOREVER_NS if timeout is None else _ns(timeout, "timeout", forever=True)
        cost = _int(cost, "cost")
        kb = _b(key, "key")
        res = rl_result()
        out = {}
        done = threading.Event()
        with self._wcv:
            h = self._handle()
            self._waits.add(token)

        def run():
            # no self._mu: a wait must not hold up the other threads' calls
            try:
                out["rc"] = _rl_wait(h, kb, cost, tmo, ctypes.byref(token._flag),
                                     ctypes.byref(res))
                if out["rc"] != RL_OK:
                    out["msg"] = _s(_rl_errmsg(h))
            finally:
                done.set()
                with self._wcv:
                    self._waits.discard(token)
                    self._wcv.notify_all()

        if threading.current_thread() is threading.main_thread():
            # A signal handler runs only between bytecodes of the main
            # thread: wait in a helper thread so that Ctrl-C gets through.
            threading.Thread(target=run, name="pyrl-wait", daemon=True).start()
            try:
                while not done.wait(0.05):
                    pass
            except BaseException:
                token.cancel()  # rl_wait returns the reservation within ms
                while not done.wait(0.05):
                    pass
                raise
        else:
            run()
        rc = out["rc"]
        if rc != RL_OK:
            if res.degraded:
                return _result(res)
            raise _error(rc, out.get("msg") or strerror(rc))
        return _result(res)

    def reserve(self, key, cost: int = 1, max_delay: float = 0.0) -> Reservation:
        """Takes cost units now if they come free within max_delay seconds;
        the Reservation says how long to wait (.delay) and can be cancelled."""
        rv = rl_reservation()
        self._call(_rl_reserve, _b(key, "key"), _int(cost, "cost"),
                   _ns(max_delay, "max_delay", forever=True), ctypes.byref(rv))
        return Reservation(self, rv)

    def acquire(self, keys: Union[str, bytes, Sequence[Union[str, bytes]]],
                requests: Optional[int] = 1, costs: Optional[dict] = None,
                **resources: int) -> Result:
        """One all-or-nothing decision over several resources and keys:
        acquire("user:alice", requests=1, tokens=1500), or over
        ["user:alice", "global"]. Resource names that are not Python
        identifiers go in costs={"gpu.seconds": 3}. requests=None leaves
        the requests limits alone. Result.key names the deciding key."""
        if isinstance(keys, (str, bytes, os.PathLike)):
            keys = [keys]
        keys = list(keys)
        amounts = {}
        if requests is not None:
            amounts["requests"] = requests
        amounts.update(costs or {})
        amounts.update(resources)
        if not amounts:
            raise InvalidArgument(RL_EINVAL, "acquire needs at least one cost")
        carr = (rl_cost * len(amounts))()
        names = [_b(r, "resource") for r in amounts]
        for i, (name, amount) in enumerate(zip(names, amounts.values())):
            carr[i] = rl_cost(name, _int(amount, "cost of %s" % _s(name), convert=int))
        kb = [_b(k, "key") for k in keys]
        res = rl_result()
        strs = [k if isinstance(k, str) else _s(_b(k)) for k in keys]
        if len(kb) == 1:
            return self._decide(_rl_acquire, (kb[0], carr, len(amounts)), res, strs)
        karr = (_S * len(kb))(*kb)
        return self._decide(_rl_acquire_keys, (karr, len(kb), carr, len(amounts)), res, strs)

    def lease(self, key, ttl: float = 60.0, requests: Optional[int] = 1,
              costs: Optional[dict] = None, **resources: int) -> Lease:
        """A lease for an estimate, to settle when the real amount is known:

            with limiter.lease("provider:x", tokens=1500) as lease:
                used = call_model()
                lease.settle(tokens=used)

        ttl (seconds): an unsettled lease stands settled at its estimate
        after it. Use Lease.begin() directly instead of `with` to handle a
        refusal without an exception."""
        carr, n = _costs(requests, costs, resources)
        return Lease(self, key, ttl, carr, n)

    def penalize(self, key, seconds: float, resource: Optional[str] = None) -> None:
        """A cool-down shared by every process: key is refused (on resource,
        or on everything) for seconds from now; 0 lifts it."""
        self._call(_rl_penalize, _b(key, "key"), _b(resource, "resource"),
                   _ns(seconds, "cool-down"))

    # -- reading and resetting

    def stats(self, key) -> KeyStats:
        """Counters, tier and every limit's state for key (exists False if
        the key has never been seen). Changes nothing."""
        st = rl_key_stats()
        self._call(_rl_stats, _b(key, "key"), ctypes.byref(st))
        return _key_stats(st)

    def totals(self) -> Totals:
        t = rl_totals()
        self._call(_rl_totals_get, ctypes.byref(t))
        return Totals(t.keys, t.allowed, t.refused, t.units)

    def keys(self, match: Optional[str] = None, sort: str = "key", limit: int = 0) -> List[KeyStats]:
        """Stats of the keys matching the glob match, sorted by key,
        allowed, refused or last_seen (the counters descending), at most
        limit of them (0: all)."""
        if sort not in _SORTS:
            raise InvalidArgument(RL_EINVAL, "sort must be one of %s" % ", ".join(_SORTS))
        out: List[KeyStats] = []

        def each(ctx, st):
            out.append(_key_stats(st.contents))
            return 0

        self._call(_rl_keys_list, _b(match, "match"), _SORTS[sort], _int(limit, "limit", _SIZE),
                   _key_fn(each), None)
        return out

    def reset(self, key) -> None:
        """Forgets key's buckets and counters (an assigned tier is kept).
        NotFound if the key has never been seen."""
        self._call(_rl_reset, _b(key, "key"))

    # -- policy

    def load_tiers(self, path) -> None:
        """Replaces every tier and rule from a YAML tiers file at once."""
        self._call(_rl_load_tiers, _b(path, "path"))

    def assign(self, key, tier: Optional[str]) -> None:
        """Gives key a tier whatever the rules say; None removes it."""
        self._call(_rl_key_assign, _b(key, "key"), _b(tier, "tier"))

    def set_tier(self, name: str, limits) -> None:
        """Stores or replaces a tier; an empty list of limits: unlimited."""
        arr, n, keep = _limit_array(limits)
        self._call(_rl_tier_set, _b(name, "tier"), arr, n)
        del keep

    def delete_tier(self, name: str) -> None:
        self._call(_rl_tier_delete, _b(name, "tier"))

    def tiers(self) -> dict:
        """{name: [Limit, ...]} for every tier ([] for unlimited ones)."""
        out = {}

        def each(ctx, ti):
            t = ti.contents
            out[_s(t.name)] = [Limit(l.count, l.period_ns / SECOND, l.burst, _s(l.name),
                                     _s(l.resource), _algorithm_name(l.algorithm))
                               for l in t.limits[:min(t.n_limits, RL_MAX_LIMITS)]]
            return 0

        self._call(_rl_tiers_list, _tier_fn(each), None)
        return out
