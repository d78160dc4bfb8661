"""pyrl's HTTP glue (rl_http.h): keys built from who a request is for, and
a decision written as rate-limit response headers. No handle is needed."""

import ctypes
from typing import List, Optional, Tuple, Union

from ._errors import InvalidArgument, _error
from ._helpers import _CINT, _b, _int, _s
from ._native import (RL_EINVAL, RL_HEADERS_CLASSIC, RL_HEADERS_IETF, RL_HEADERS_MAX,
                      RL_KEY_MAX, RL_KEYS_FOR_MAX, RL_NAME_MAX, RL_OK, _KEY_BUF,
                      _rl_format_headers, _rl_key_build, _rl_key_for, _rl_keys_for, rl_key_ctx,
                      rl_result)
from ._values import Result

_Identity = Optional[Union[str, bytes]]

# ---- keys --------------------------------------------------------------------

# rl_key_for's order, which says which field a failed key_for was about.
_KEY_FIELDS = ("user", "agent", "org", "ip")


def key_build(kind: str, value: Union[str, bytes]) -> str:
    """"KIND:VALUE" with VALUE escaped (':', '%', glob characters, spaces,
    controls and bytes that are not UTF-8 as %XX): a key that no other
    kind or value can give, and that matches no other key as a pattern."""
    ck, cv = _b(kind, "kind"), _b(value, "value")
    if ck is None or cv is None:
        raise TypeError("kind and value must be str or bytes, not None")
    buf = ctypes.create_string_buffer(RL_KEY_MAX + 1)
    rc = _rl_key_build(buf, len(buf), ck, cv)
    if rc != RL_OK:
        raise _error(rc, "cannot build a key of kind %r from %r: the kind must be a name "
                     "without ':', the value non-empty and the key at most %d bytes once "
                     "escaped" % (kind, value, RL_KEY_MAX))
    return _s(buf.value)


def _key_ctx(user, ip, agent, org):
    # The bytes objects must outlive the call: the struct holds only pointers.
    vals = {"user": _b(user, "user"), "ip": _b(ip, "ip"), "agent": _b(agent, "agent"),
            "org": _b(org, "org")}
    return rl_key_ctx(**vals), vals


def _too_long(what: str) -> str:
    return "%s cannot make a key: it is longer than %d bytes once escaped" % (what, RL_KEY_MAX)


def key_for(user: _Identity = None, ip: _Identity = None, agent: _Identity = None,
            org: _Identity = None) -> str:
    """The key of the most specific identity given: user, agent, org, then
    ip ("user:alice", "ip:203.0.113.7"); "global" when none is (None and ""
    are absent), so an anonymous request is still limited. Values are taken
    byte for byte: canonicalise them first (lower-case e-mail addresses)."""
    ctx, vals = _key_ctx(user, ip, agent, org)
    buf = ctypes.create_string_buffer(RL_KEY_MAX + 1)
    rc = _rl_key_for(buf, len(buf), ctypes.byref(ctx))
    if rc != RL_OK:
        # A present field that fails is not skipped for the next one (that
        # would pool a user with strangers), so the first present is to blame.
        first = next((f for f in _KEY_FIELDS if vals[f]), "an identity")
        raise _error(rc, _too_long(first))
    return _s(buf.value)


def keys_for(user: _Identity = None, ip: _Identity = None, agent: _Identity = None,
             org: _Identity = None) -> List[str]:
    """Every applicable key, in key_for's order, then "global": for
    Limiter.acquire over all of them at once (at most RL_KEYS_FOR_MAX)."""
    ctx, _vals = _key_ctx(user, ip, agent, org)
    keys = (_KEY_BUF * RL_KEYS_FOR_MAX)()
    n = ctypes.c_size_t()
    rc = _rl_keys_for(ctypes.byref(ctx), keys, RL_KEYS_FOR_MAX, ctypes.byref(n))
    if rc != RL_OK:
        raise _error(rc, _too_long("an identity"))
    return [_s(keys[i].value) for i in range(n.value)]


# ---- response headers ----------------------------------------------------------

# Structured-field integers (RFC 9651) have at most 15 digits: what
# rl_format_headers accepts as a limit or remaining of a measured quota.
_SF_INT_MAX = 999_999_999_999_999


def _c_result(res: Result) -> rl_result:
    name = _b(res.limit_name, "limit name") or b""
    # The C array must hold the terminating NUL; ctypes would raise its own
    # ValueError past 64 bytes and silently drop the NUL at exactly 64.
    if len(name) >= RL_NAME_MAX:
        raise InvalidArgument(RL_EINVAL, "limit name %r is longer than %d bytes"
                              % (res.limit_name, RL_NAME_MAX - 1))
    return rl_result(allowed=1 if res.allowed else 0, limit=_int(res.limit, "limit"),
                     remaining=_int(res.remaining, "remaining"),
                     retry_after_ns=_int(res.retry_after_ns, "retry_after_ns"),
                     reset_after_ns=_int(res.reset_after_ns, "reset_after_ns"),
                     limit_name=name, degraded=1 if res.degraded else 0,
                     key_index=_int(res.key_index, "key_index", _CINT))


def _headers_refused(res: Result, window_ns: int, flags: int) -> str:
    """Why rl_format_headers said RL_EINVAL, in its own order of checks:
    librl decides, this only explains."""
    if not flags:
        return "no header style: ietf and classic are both false"
    if window_ns < 0:
        return "window_ns %d is negative" % window_ns
    if res.retry_after_ns < 0 or res.reset_after_ns < 0:
        return "retry_after_ns and reset_after_ns must not be negative"
    if res.limit_name and not res.degraded:
        if not 0 <= res.limit <= _SF_INT_MAX or not 0 <= res.remaining <= _SF_INT_MAX:
            return ("limit %d or remaining %d is outside 0..%d (a structured-field integer)"
                    % (res.limit, res.remaining, _SF_INT_MAX))
        return "limit name %r is not a valid name" % res.limit_name
    return "invalid result"


def _header_pairs(text: str) -> List[Tuple[str, str]]:
    # Each line is "Name: value" and ends in CRLF; a field name holds no ':'.
    pairs = []
    for line in text.split("\r\n"):
        if line:
            name, _sep, value = line.partition(": ")
            pairs.append((name, value))
    return pairs


def format_headers(result: Result, window_ns: int = 0, ietf: bool = True,
                   classic: bool = False) -> List[Tuple[str, str]]:
    """result (a Result) as response headers, (name, value) pairs in order:
    RateLimit-Policy and RateLimit (ietf, draft 11), X-RateLimit-Limit,
    -Remaining, -Reset (classic), and Retry-After when refused, whatever the
    styles. window_ns is the time the deciding limit takes to refill its
    burst (its period when burst equals count); 0 leaves out w=. Seconds
    are rounded up. A result without a deciding limit (limit_name "", or
    degraded) gives only Retry-After, if refused. ietf and classic both
    false is an InvalidArgument, as in librl."""
    if not isinstance(result, Result):
        raise TypeError("format_headers takes a pyrl.Result, not %s" % type(result).__name__)
    window_ns = _int(window_ns, "window_ns")
    flags = (RL_HEADERS_IETF if ietf else 0) | (RL_HEADERS_CLASSIC if classic else 0)
    res = _c_result(result)
    buf = ctypes.create_string_buffer(RL_HEADERS_MAX)
    rc = _rl_format_headers(ctypes.byref(res), window_ns, flags, buf, len(buf))
    if rc != RL_OK:
        raise _error(rc, "cannot format headers: " + _headers_refused(result, window_ns, flags))
    return _header_pairs(_s(buf.value))
