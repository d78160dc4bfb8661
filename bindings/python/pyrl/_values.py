"""pyrl's values: limits, results, statistics, and the small objects that
Limiter's calls hand back (CancelToken, Reservation)."""

import ctypes
from dataclasses import dataclass, field
from typing import List, Optional

from ._helpers import _b, _int, _ns, _s, parse_rate
from ._native import (RL_ALGO_CONCURRENT, RL_ALGO_GCRA, RL_ALGO_SLIDING_WINDOW, RL_MAX_LIMITS,
                      SECOND, TIER_SOURCES, _rl_cancel, _rl_wait_wake, rl_key_stats, rl_limit,
                      rl_reservation, rl_result, sig_atomic_t)

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


_new = object.__new__


def _result(res: rl_result, keys=None) -> Result:
    # Every decision makes one: a frozen dataclass's __init__ sets each
    # field through object.__setattr__ (about 1.6 us here, a quarter of
    # what pyrl adds to the C call), so its fields are put in its __dict__
    # at once. Result has no __post_init__ and no slots; test_pyrl checks
    # that this is the same value Result(...) makes.
    k = res.key_index
    r = _new(Result)
    r.__dict__.update(allowed=bool(res.allowed), remaining=res.remaining,
                      retry_after_ns=res.retry_after_ns, reset_after_ns=res.reset_after_ns,
                      limit=res.limit, limit_name=_s(res.limit_name),
                      degraded=bool(res.degraded), key_index=k,
                      key=keys[k] if keys and 0 <= k < len(keys) else None)
    return r


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
    tier: str  # "default" for the default limits
    tier_source: str  # none, assigned, rule, default_tier, options (the default limits)
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
    is the volatile sig_atomic_t that rl_wait sleeps on; cancel() sets it
    and wakes the waits sleeping on it (rl_wait_wake), so they return at
    once."""

    def __init__(self):
        self._flag = sig_atomic_t(0)

    def cancel(self) -> None:
        self._flag.value = 1
        if _rl_wait_wake is not None:
            _rl_wait_wake(ctypes.byref(self._flag))

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
