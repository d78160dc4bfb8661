"""pyrl's HTTP glue (rl_http.h): keys built from who a request is for, and
a decision written as rate-limit response headers. No handle is needed."""

import ctypes
from typing import List, Optional, Union

from ._errors import _error
from ._helpers import _b, _s
from ._native import (RL_KEY_MAX, RL_KEYS_FOR_MAX, RL_OK, _KEY_BUF, _rl_key_build, _rl_key_for,
                      _rl_keys_for, rl_key_ctx)

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
