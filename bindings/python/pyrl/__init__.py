"""pyrl - Python binding of librl, a rate limiter whose state lives in SQLite.

Standard library only (ctypes). Every process that opens the same database
file shares every bucket, whether it is written in C, Python, or is rlctl.

    import pyrl
    with pyrl.Limiter("agents.db", default_limits=[{"rate": "60/min", "burst": 10}]) as rl:
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

# The modules, each one job, in the order they build on each other:
#   _native   the constants of rl.h, the ctypes mirrors of its structures,
#             the loading of librl and the declarations of its functions
#   _errors   the exceptions, one per RL_E* code
#   _helpers  Python values to C arguments (range checks), and the
#             functions that need no handle (version, parse_rate...)
#   _values   Limit, Result, KeyStats, Totals, CancelToken, Reservation
#   _http     keys from who a request is for, a Result as response headers
#   _limiter  Limiter, Lease, Guard, Refused and RateLimitExceeded
#   _aio      AsyncLimiter and AsyncGuard: the same over asyncio
# This file re-exports every name they define, so that pyrl's namespace is
# the one of the single module it was split from (the standard modules it
# imported included).

import ctypes  # noqa: F401
import ctypes.util  # noqa: F401
import math  # noqa: F401
import operator  # noqa: F401
import os  # noqa: F401
import threading  # noqa: F401
from dataclasses import dataclass, field  # noqa: F401
from typing import List, Optional, Sequence, Union  # noqa: F401

__all__ = [
    "Limiter", "Limit", "Result", "KeyStats", "LimitStats", "Totals", "Reservation",
    "CancelToken", "RLError", "InvalidArgument", "OutOfRange", "NoMemory", "TooBig", "StoreFailure",
    "StoreError", "Unreachable", "AuthFailed", "Busy", "ReadOnly", "Full", "Corrupt", "Version",
    "Config", "NotFound", "Untrusted", "DefaultsMismatch",
    "Timeout", "Canceled", "NoLimit", "validate_tiers", "parse_rate", "parse_duration",
    "default_path", "version", "library_path",
    "Lease", "Refused", "RateLimitExceeded", "Guard", "AsyncLimiter", "AsyncGuard",
    "PRIORITY_INTERACTIVE", "PRIORITY_BATCH",
    "key_for", "keys_for", "key_build", "format_headers",
]

from ._native import (  # noqa: F401
    RL_ALGO_CONCURRENT, RL_ALGO_GCRA, RL_ALGO_SLIDING_WINDOW, RL_BUSY_LOCK, RL_BUSY_SQLITE,
    RL_DURABILITY_FULL, RL_DURABILITY_NORMAL, RL_EAUTH, RL_EBUSY, RL_ECANCELED, RL_ECONFIG,
    RL_ECONNECT, RL_ECORRUPT, RL_EFULL, RL_EINVAL, RL_ELIMITED, RL_EMISMATCH, RL_ENOLIMIT,
    RL_ENOMEM, RL_ENOTFOUND, RL_EPERM, RL_EREADONLY, RL_ESTORE, RL_ETIMEOUT, RL_ETOOBIG,
    RL_EVERSION, RL_FAIL_CLOSED, RL_FAIL_OPEN, RL_KEY_MAX, RL_MAX_KEYS, RL_MAX_LIMITS,
    RL_NAME_MAX, RL_OK, RL_OPEN_ANY_RESOURCE, RL_OPEN_OVERRIDE_DEFAULTS, RL_OPEN_READONLY,
    RL_OPEN_SHARED_GROUP, RL_OPTIONS_VERSION, RL_SORT_ALLOWED, RL_SORT_KEY, RL_SORT_LAST_SEEN,
    RL_SORT_REFUSED, RL_TIER_ASSIGNED, RL_TIER_DEFAULT, RL_TIER_NONE, RL_TIER_OPTIONS,
    RL_TIER_RULE, RL_PRIORITY_INTERACTIVE, RL_PRIORITY_BATCH, RL_GUARD_OPTIONS_VERSION,
    RL_KEYS_FOR_MAX, RL_HEADERS_IETF, RL_HEADERS_CLASSIC, RL_HEADERS_MAX,
    _rl_wait_ex, _rl_guard_begin, _rl_guard_end, _rl_guard_cancel, rl_guard, rl_guard_options,
    current_pid, SECOND, STRUCTS, TIER_SOURCES, _FOREVER_NS, _I64, _INT, _P, _S, _SORTS, _SZ,
    _candidates, _clock_fn, _fn, _key_fn, _lib, _load, _rl_acquire, _rl_acquire_keys, _rl_allow,
    _rl_cancel, _rl_close, _rl_default_path, _rl_errmsg, _rl_key_assign, _rl_keys_list,
    _rl_lease_begin, _rl_lease_cancel, _rl_lease_settle, _rl_load_tiers, _rl_open,
    _rl_parse_duration, _rl_parse_rate, _rl_penalize, _rl_reserve, _rl_reset, _rl_stats,
    _rl_strerror, _rl_tier_delete, _rl_tier_limit, _rl_tier_set, _rl_tiers_list, _rl_totals_get,
    _rl_validate_tiers, _rl_version, _rl_wait, _tier_fn, library_path, rl_cost, rl_key_stats,
    rl_lease, rl_limit, rl_limit_stats, rl_options, rl_reservation, rl_result, rl_tier_info,
    rl_totals, sig_atomic_t, rl_key_ctx, _KEY_BUF, _rl_key_build, _rl_key_for, _rl_keys_for,
    _rl_format_headers)
from ._errors import (  # noqa: F401
    AuthFailed, Busy, Canceled, Config, Corrupt, DefaultsMismatch, Full, InvalidArgument,
    NoLimit, NoMemory, NotFound, OutOfRange, RLError, ReadOnly, StoreError, StoreFailure,
    Timeout, TooBig, Unreachable, Untrusted, Version, _ERRORS, _error)
from ._helpers import (  # noqa: F401
    _CINT, _CUINT, _INT64, _SIZE, _b, _bits, _int, _ns, _s, default_path, parse_duration,
    parse_rate, strerror, validate_tiers, version)
from ._values import (  # noqa: F401
    CancelToken, KeyStats, Limit, LimitStats, Reservation, Result, Totals, _ALGORITHMS,
    _algorithm_name, _key_stats, _limit, _limit_array, _result)
from ._http import (_KEY_FIELDS, _SF_INT_MAX, _c_result, _header_pairs,  # noqa: F401
                    _headers_refused, _key_ctx, _too_long, format_headers, key_build, key_for,
                    keys_for)
from ._limiter import (Guard, Lease, Limiter, RateLimitExceeded, Refused,  # noqa: F401
                       _costs)
from ._aio import AsyncGuard, AsyncLimiter  # noqa: F401

PRIORITY_INTERACTIVE = RL_PRIORITY_INTERACTIVE
PRIORITY_BATCH = RL_PRIORITY_BATCH

# The classes and functions keep the module they were always shown under
# (pyrl.Timeout in a traceback, pyrl.Limit in a pickle), not the private
# module that defines them.
for _obj in list(globals().values()):
    if getattr(_obj, "__module__", "").startswith(__name__ + "._"):
        _obj.__module__ = __name__
del _obj
