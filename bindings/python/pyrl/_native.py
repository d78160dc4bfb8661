"""pyrl's native layer: the constants of rl.h, the ctypes mirrors of its
structures, the loading of librl and the declarations of its functions."""

import ctypes
import ctypes.util
import os

# ---- constants of rl.h (checked against the C compiler by the tests) -------

RL_KEY_MAX = 512
RL_NAME_MAX = 64
RL_MAX_LIMITS = 8
RL_MAX_KEYS = 8
RL_OPTIONS_VERSION = 1
RL_OPEN_READONLY = 0x1
RL_OPEN_SHARED_GROUP = 0x2
RL_OPEN_ANY_RESOURCE = 0x4
RL_OPEN_OVERRIDE_DEFAULTS = 0x8
RL_FAIL_CLOSED, RL_FAIL_OPEN = 0, 1
RL_ALGO_GCRA, RL_ALGO_SLIDING_WINDOW, RL_ALGO_CONCURRENT = 0, 1, 2
RL_DURABILITY_NORMAL, RL_DURABILITY_FULL = 0, 1
RL_BUSY_LOCK, RL_BUSY_SQLITE = 0, 1
RL_SORT_KEY, RL_SORT_ALLOWED, RL_SORT_REFUSED, RL_SORT_LAST_SEEN = 0, 1, 2, 3
RL_TIER_NONE, RL_TIER_ASSIGNED, RL_TIER_RULE, RL_TIER_DEFAULT, RL_TIER_OPTIONS = range(5)
RL_PRIORITY_INTERACTIVE, RL_PRIORITY_BATCH = 0, 1
RL_GUARD_OPTIONS_VERSION = 1

# rl_http.h
RL_KEYS_FOR_MAX = 5
RL_HEADERS_IETF = 0x1
RL_HEADERS_CLASSIC = 0x2
RL_HEADERS_MAX = 512

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
RL_ELIMITED = -18
RL_EMISMATCH = -19

SECOND = 1_000_000_000
_FOREVER_NS = (1 << 63) - 1  # INT64_MAX: librl waits for ever

TIER_SOURCES = {RL_TIER_NONE: "none", RL_TIER_ASSIGNED: "assigned", RL_TIER_RULE: "rule",
                RL_TIER_DEFAULT: "default_tier", RL_TIER_OPTIONS: "options"}
_SORTS = {"key": RL_SORT_KEY, "allowed": RL_SORT_ALLOWED, "refused": RL_SORT_REFUSED,
          "last_seen": RL_SORT_LAST_SEEN}

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


class rl_guard_options(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint), ("ttl_ns", ctypes.c_int64),
                ("cooldown_key", ctypes.c_int), ("cancel", ctypes.POINTER(sig_atomic_t))]


class rl_guard(ctypes.Structure):
    # n and lease are public; the rest is private, mirrored for the size.
    _fields_ = [("n", ctypes.c_size_t), ("lease", rl_lease * RL_MAX_KEYS),
                ("cooldown_key_", ctypes.c_int), ("degraded_", ctypes.c_int),
                ("ncost_", ctypes.c_size_t), ("est_", ctypes.c_int64 * RL_MAX_LIMITS),
                ("resource_", (ctypes.c_char * RL_NAME_MAX) * RL_MAX_LIMITS),
                ("key_", (ctypes.c_char * (RL_KEY_MAX + 1)) * RL_MAX_KEYS)]

class rl_key_ctx(ctypes.Structure):
    _fields_ = [("user", ctypes.c_char_p), ("ip", ctypes.c_char_p),
                ("agent", ctypes.c_char_p), ("org", ctypes.c_char_p)]


STRUCTS = {"rl_limit": rl_limit, "rl_options": rl_options, "rl_result": rl_result,
           "rl_cost": rl_cost, "rl_reservation": rl_reservation,
           "rl_limit_stats": rl_limit_stats, "rl_key_stats": rl_key_stats,
           "rl_totals": rl_totals, "rl_tier_info": rl_tier_info, "rl_lease": rl_lease,
           "sig_atomic_t": sig_atomic_t, "rl_guard_options": rl_guard_options,
           "rl_guard": rl_guard, "rl_key_ctx": rl_key_ctx}

_key_fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(rl_key_stats))
_tier_fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(rl_tier_info))

# ---- the process id, cached ---------------------------------------------------
# A handle must not cross fork(): every call compares the pid a Limiter was
# opened in with the current one. os.getpid() is a system call (microseconds
# under some sandboxes), so the pid is cached and refreshed in the child by
# os.register_at_fork. A fork that bypasses Python (a C extension calling
# fork() directly) is not seen; such a child must not touch pyrl at all.
_PID = [os.getpid()]


def _refresh_pid() -> None:
    _PID[0] = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


def current_pid() -> int:
    """The cached os.getpid()."""
    return _PID[0]


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
_rl_wait_ex = _fn("rl_wait_ex", _INT, _P, _S, ctypes.POINTER(rl_cost), _SZ, _INT, _I64,
                  ctypes.POINTER(sig_atomic_t), ctypes.POINTER(rl_result))
# Wakes the waits sleeping on a cancel flag (librl 0.1.0 builds before it
# had none: their waits poll the flag every few milliseconds instead).
_rl_wait_wake = (_fn("rl_wait_wake", None, ctypes.POINTER(sig_atomic_t))
                 if hasattr(_lib, "rl_wait_wake") else None)
_rl_guard_begin = _fn("rl_guard_begin", _INT, _P, ctypes.POINTER(_S), _SZ, ctypes.POINTER(rl_cost),
                      _SZ, _INT, _I64, ctypes.POINTER(rl_guard_options),
                      ctypes.POINTER(rl_guard), ctypes.POINTER(rl_result))
_rl_guard_end = _fn("rl_guard_end", _INT, _P, ctypes.POINTER(rl_guard), ctypes.POINTER(rl_cost),
                    _SZ, ctypes.POINTER(_S), ctypes.POINTER(_S), _SZ, ctypes.POINTER(rl_result))
_rl_guard_cancel = _fn("rl_guard_cancel", _INT, _P, ctypes.POINTER(rl_guard))
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

# rl_http.h: no handle, thread-safe
_KEY_BUF = ctypes.c_char * (RL_KEY_MAX + 1)  # one row of rl_keys_for's char[][RL_KEY_MAX + 1]
_rl_key_build = _fn("rl_key_build", _INT, ctypes.c_char_p, _SZ, _S, _S)
_rl_key_for = _fn("rl_key_for", _INT, ctypes.c_char_p, _SZ, ctypes.POINTER(rl_key_ctx))
_rl_keys_for = _fn("rl_keys_for", _INT, ctypes.POINTER(rl_key_ctx), ctypes.POINTER(_KEY_BUF), _SZ,
                   ctypes.POINTER(_SZ))
_rl_format_headers = _fn("rl_format_headers", _INT, ctypes.POINTER(rl_result), _I64, _INT,
                         ctypes.c_char_p, _SZ)
