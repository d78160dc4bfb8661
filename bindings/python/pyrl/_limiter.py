"""pyrl's handle: Limiter, and the Lease that Limiter.lease hands back."""

import ctypes
import functools
import inspect
import os
import threading
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar,
                    Union)

from ._errors import InvalidArgument, RLError, Timeout, _error
from ._helpers import _CINT, _CUINT, _SIZE, _b, _int, _ns, _s, strerror
from ._native import (RL_DURABILITY_FULL, RL_DURABILITY_NORMAL, RL_BUSY_LOCK, RL_EINVAL,
                      RL_FAIL_CLOSED, RL_FAIL_OPEN, RL_MAX_LIMITS, RL_OK, RL_OPEN_ANY_RESOURCE,
                      RL_OPEN_OVERRIDE_DEFAULTS, RL_OPEN_READONLY, RL_OPEN_SHARED_GROUP,
                      RL_OPTIONS_VERSION, SECOND, _FOREVER_NS, _PID, _P, _S, _SORTS, _key_fn,
                      _rl_acquire, _rl_acquire_keys, _rl_allow, _rl_close,
                      _rl_errmsg, _rl_key_assign, _rl_keys_list, _rl_lease_begin,
                      _rl_lease_cancel, _rl_lease_settle, _rl_load_tiers, _rl_open,
                      _rl_penalize, _rl_reserve, _rl_reset, _rl_stats, _rl_tier_delete,
                      _rl_tier_set, _rl_tiers_list, _rl_totals_get, _rl_wait, _rl_wait_ex,
                      _rl_guard_begin, _rl_guard_cancel, _rl_guard_end, rl_guard,
                      rl_guard_options, RL_GUARD_OPTIONS_VERSION, RL_ELIMITED,
                      _tier_fn, RL_PRIORITY_INTERACTIVE, RL_PRIORITY_BATCH,
                      rl_cost, rl_key_stats, rl_lease, rl_options, rl_reservation, rl_result,
                      rl_totals)
from ._values import (CancelToken, KeyStats, Limit, Reservation, Result, Totals,
                      _algorithm_name, _key_stats, _limit_array, _result)

# ---- the handle --------------------------------------------------------------------


class Refused(RLError):
    """A decision said no: .result says by which limit (.limit_name) and
    when to try again (.retry_after, seconds; .retry_after_ns). Raised by
    Lease.begin (lease()) and, as RateLimitExceeded, by guards and slots."""

    def __init__(self, result: "Result", code: int = RL_OK, message: str = ""):
        super().__init__(code, message or "refused by %s; retry after %.3f s"
                         % (result.limit_name or "a limit", result.retry_after))
        self.result = result

    @property
    def limit_name(self) -> str:
        return self.result.limit_name

    @property
    def retry_after(self) -> float:
        return self.result.retry_after

    @property
    def retry_after_ns(self) -> int:
        return self.result.retry_after_ns


class RateLimitExceeded(Refused, Timeout):
    """RL_ELIMITED: a guard (or slot) was refused by a limit, at once with
    timeout 0, or because admission needs longer than the timeout or did not
    come within it (slots). Nothing is held or charged. Both a Refused
    (.result, .limit_name, .retry_after, .key: the key whose limit refused)
    and a Timeout (so a TimeoutError)."""

    @property
    def key(self) -> Optional[str]:
        return self.result.key


_PRIORITIES = {"interactive": RL_PRIORITY_INTERACTIVE, "batch": RL_PRIORITY_BATCH}


def _priority(p: Union[str, int]) -> int:
    if isinstance(p, str):
        if p not in _PRIORITIES:
            raise InvalidArgument(RL_EINVAL, "priority must be 'interactive' or 'batch', not %r"
                                  % (p,))
        return _PRIORITIES[p]
    if p in (RL_PRIORITY_INTERACTIVE, RL_PRIORITY_BATCH) and not isinstance(p, bool):
        return int(p)
    raise InvalidArgument(RL_EINVAL, "unknown priority %r" % (p,))


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


Headers = Union[Mapping[str, str], Sequence[Tuple[str, str]], None]


def _headers(headers: Headers):
    """A response's header fields (a dict, http.client's HTTPMessage, or
    (name, value) pairs) as two C string arrays."""
    if headers is None:
        return None, None, 0, []
    items = list(headers.items()) if hasattr(headers, "items") else list(headers)
    if not items:
        return None, None, 0, []
    names = [_b(str(k), "header name") for k, _ in items]
    values = [_b(str(v), "header value") for _, v in items]
    return (_S * len(items))(*names), (_S * len(items))(*values), len(items), names + values


class Guard:
    """One guarded call (rl_guard_begin / rl_guard_end / rl_guard_cancel):
    waits until the estimate passes every limit of every key at once (rates,
    tokens, cool-downs, concurrency slots), then holds one lease per key
    until end() or cancel(). Made by Limiter.guard() and Limiter.slot().

    As a context manager: entered, it begins (raising RateLimitExceeded when
    refused); a block that raises cancels it (the whole estimate goes back);
    a block that ends without end() ends it at the estimate.

    .result is the admission's Result (the deciding limit: the one with
    least room left, for response metadata); .end_result the Result after
    end() (remaining after settling, or "cooldown" while a cool-down the
    headers set stops a resource); .degraded is True when a store failure
    admitted it unguarded (fail_open)."""

    def __init__(self, limiter: "Limiter", keys: Sequence[str], carr: Any, n: int,
                 priority: int, timeout_ns: int, ttl_ns: int, cooldown_key: int,
                 cancel: Optional[CancelToken]):
        self._limiter = limiter
        self.keys: List[str] = [k if isinstance(k, str) else _s(_b(k) or b"") for k in keys]
        self._kb = [_b(k, "key") for k in keys]
        self._karr = (_S * len(self._kb))(*self._kb)
        self._carr, self._n = carr, n
        self._priority, self._timeout_ns = priority, timeout_ns
        self._token = cancel or CancelToken()
        self._opts = rl_guard_options(RL_GUARD_OPTIONS_VERSION, ttl_ns, cooldown_key,
                                      ctypes.pointer(self._token._flag))
        self._g = rl_guard()
        self._res = rl_result()
        self._state = "new"  # new, held, degraded, ended, cancelled, refused
        self._pending: Optional[Tuple[Any, Any]] = None  # recorded by AsyncGuard.end
        self.result: Optional[Result] = None
        self.end_result: Optional[Result] = None

    @property
    def held(self) -> bool:
        """True while the guard holds its leases."""
        return self._state == "held"

    @property
    def degraded(self) -> bool:
        return self._state == "degraded"

    @property
    def lease_ids(self) -> List[int]:
        return [self._g.lease[k].id for k in range(min(self._g.n, RL_MAX_KEYS))]

    # The C calls, without waiting logic: used by begin() here and by the
    # asyncio wrappers (pyrl.AsyncLimiter), which run them in threads.

    def _begin_call(self, h) -> int:
        if self._state != "new":
            raise RLError(RL_EINVAL, "a guard is begun once")
        return _rl_guard_begin(h, self._karr, len(self._kb), self._carr, self._n,
                               self._priority, self._timeout_ns, ctypes.byref(self._opts),
                               ctypes.byref(self._g), ctypes.byref(self._res))

    def _begun(self, rc: int, msg: str) -> "Guard":
        self.result = _result(self._res, self.keys)
        if rc == RL_OK:
            self._state = "held"
            return self
        if rc == RL_ELIMITED:
            self._state = "refused"
            raise RateLimitExceeded(self.result, RL_ELIMITED, msg)
        if self._res.allowed and self._res.degraded:
            self._state = "degraded"  # fail open: go ahead; end() passes the headers on
            return self
        self._state = "refused"
        raise _error(rc, msg)

    def begin(self) -> "Guard":
        """Waits (up to the timeout) and takes the leases. Raises
        RateLimitExceeded (a Refused and a Timeout) when a limit refuses,
        Canceled if the cancel token is cancelled."""
        rc, msg = self._limiter._blocking(self._begin_call, self._token)
        return self._begun(rc, msg)

    def _end_args(self, requests, costs, resources, headers):
        if requests is None and not costs and not resources:
            carr, n = None, 0  # everything at its estimate
        else:
            carr, n = _costs(requests, costs, resources)
        names, values, nh, keep = _headers(headers)
        return carr, n, names, values, nh, keep

    def end(self, requests: Optional[int] = None, costs: Optional[Dict[str, int]] = None,
            headers: Headers = None, **resources: int) -> Result:
        """The service answered (a 429 included: then give no usage, only
        its headers): settles the real usage on every key (a resource not
        named, or everything when nothing is, at its estimate), passes the
        response headers to the last key's shared cool-down (Retry-After,
        x-ratelimit-*, anthropic-ratelimit-*), frees the slots. Returns and
        keeps (.end_result) the limit with least room left afterwards."""
        if self._state not in ("held", "degraded"):
            raise RLError(RL_EINVAL, "the guard holds nothing (%s)" % self._state)
        carr, n, names, values, nh, keep = self._end_args(requests, costs, resources, headers)
        res = rl_result()
        with self._limiter._mu:
            h = self._limiter._handle()
            rc = _rl_guard_end(h, ctypes.byref(self._g), carr, n, names, values, nh,
                               ctypes.byref(res))
            msg = _s(_rl_errmsg(h)) if rc != RL_OK else ""
        del keep
        if rc != RL_EINVAL:
            self._state = "ended"
        if rc != RL_OK:
            raise _error(rc, msg)
        self.end_result = _result(res, self.keys)
        return self.end_result

    def settle(self, requests: Optional[int] = None, costs: Optional[Dict[str, int]] = None,
               headers: Headers = None, **resources: int) -> Result:
        """end() under the name of Lease.settle."""
        return self.end(requests, costs, headers, **resources)

    def cancel(self) -> None:
        """The service never saw the call: the whole estimate goes back on
        every key and the slots are freed. Does nothing when the guard holds
        nothing; may always be called."""
        if self._state != "held":
            if self._state == "degraded":
                self._state = "cancelled"
            return
        self._state = "cancelled"
        self._limiter._call(_rl_guard_cancel, ctypes.byref(self._g))

    def __enter__(self) -> "Guard":
        return self.begin()

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._state not in ("held", "degraded"):
            return
        if exc_type is not None:
            self.cancel()
        else:
            self.end()


F = TypeVar("F", bound=Callable[..., Any])


def _limited(lim: "Limiter", key, cost, timeout, priority, hold, costs, resources):
    def key_of(args, kwargs) -> str:
        return key(*args, **kwargs) if callable(key) else key

    def deco(fn):
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def awrapper(*args, **kwargs):
                k = key_of(args, kwargs)
                if hold:
                    async with lim.aio.guard(k, cost, costs, timeout=timeout, priority=priority,
                                             **resources):
                        return await fn(*args, **kwargs)
                await lim.aio.wait(k, cost, timeout, priority=priority, costs=costs,
                                   **resources)
                return await fn(*args, **kwargs)
            return awrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            k = key_of(args, kwargs)
            if hold:
                with lim.guard(k, cost, costs, timeout=timeout, priority=priority, **resources):
                    return fn(*args, **kwargs)
            lim.wait(k, cost, timeout, priority=priority, costs=costs, **resources)
            return fn(*args, **kwargs)
        return wrapper
    return deco


class Limiter:
    """A handle on an rl database.

    path: the database file (created 0600 unless file_mode says otherwise);
    ":memory:" for a private in-process store; None for default_path().
    default_limits: limits for keys no tier covers, as Limit objects, rate
    strings ("60/min"), dicts ({"rate": "60/min", "burst": 10}) or tuples
    (count, period_seconds[, burst[, name[, resource]]]). They are stored in
    the database (the tier "default") and shared by every process: opening
    with other ones than it holds raises DefaultsMismatch; None uses the
    stored ones.
    override_defaults: replace the stored default limits with default_limits
    (RL_OPEN_OVERRIDE_DEFAULTS); every process applies them from its next
    decision.
    any_resource: admit resources that no limit counts, unlimited, instead
    of raising NoLimit (RL_OPEN_ANY_RESOURCE).
    fail_open: when the store fails, admit (Result.degraded True) instead of
    raising the StoreFailure.
    shared_group: the database is shared by a group on purpose
    (RL_OPEN_SHARED_GROUP): its files may belong to other users of one of
    our groups. Without it, a file another user could have planted raises
    Untrusted.
    """

    def __init__(self, path=None, default_limits=None, fail_open: bool = False,
                 tiers_file=None, readonly: bool = False, busy_timeout: float = 5.0,
                 file_mode: int = 0o600, durable: bool = False, shared_group: bool = False,
                 override_defaults: bool = False, any_resource: bool = False):
        self._h = None
        self._mu = threading.Lock()
        self._wcv = threading.Condition()  # guards _waits: tokens of running waits
        self._waits = set()
        self._pid = _PID[0]
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
                   (RL_OPEN_SHARED_GROUP if shared_group else 0) |
                   (RL_OPEN_OVERRIDE_DEFAULTS if override_defaults else 0) |
                   (RL_OPEN_ANY_RESOURCE if any_resource else 0))
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
        if _PID[0] != self._pid:
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
        if _PID[0] == self._pid:  # a child has no threads of the parent's
            with self._wcv:
                for token in self._waits:
                    token.cancel()
                while self._waits:
                    self._wcv.wait()
        with self._mu:
            h, self._h = self._h, None
            if h is not None and _PID[0] == self._pid:
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

    def _blocking(self, call: Callable[[Any], int], token: CancelToken) -> Tuple[int, str]:
        """Runs call(handle), a C call that may sleep (rl_wait_ex,
        rl_guard_begin) sleeping on token's flag, without self._mu: a wait must
        not hold up the other threads' calls. Returns (rc, message). close()
        cancels it. In the main thread the call runs in a helper thread so
        that a signal (Ctrl-C) gets through: the token is then cancelled,
        the call returns what it held at once, and the
        exception propagates."""
        out: Dict[str, Any] = {}
        done = threading.Event()
        with self._wcv:
            h = self._handle()
            self._waits.add(token)

        def run() -> None:
            try:
                out["rc"] = call(h)
                if out["rc"] != RL_OK:
                    out["msg"] = _s(_rl_errmsg(h))
            finally:
                done.set()
                with self._wcv:
                    self._waits.discard(token)
                    self._wcv.notify_all()

        if threading.current_thread() is threading.main_thread():
            threading.Thread(target=run, name="pyrl-wait", daemon=True).start()
            try:
                while not done.wait(0.05):
                    pass
            except BaseException:
                token.cancel()  # wakes the wait: it returns the reservation at once
                while not done.wait(0.05):
                    pass
                raise
        else:
            run()
        rc = out["rc"]
        return rc, out.get("msg") or (strerror(rc) if rc != RL_OK else "")

    def _wait_call(self, key, cost, timeout, token: CancelToken, priority, costs, resources):
        """The C call of a wait and its result struct: rl_wait for requests
        only at interactive priority (as before), else rl_wait_ex."""
        tmo = _FOREVER_NS if timeout is None else _ns(timeout, "timeout", forever=True)
        kb = _b(key, "key")
        prio = _priority(priority)
        res = rl_result()
        if not costs and not resources and prio == RL_PRIORITY_INTERACTIVE:
            cost = _int(cost, "cost")
            return (lambda h: _rl_wait(h, kb, cost, tmo, ctypes.byref(token._flag),
                                       ctypes.byref(res))), res
        carr, n = _costs(cost, costs, resources)
        return (lambda h: _rl_wait_ex(h, kb, carr, n, prio, tmo, ctypes.byref(token._flag),
                                      ctypes.byref(res))), res

    def wait(self, key, cost: Optional[int] = 1, timeout: Optional[float] = None,
             cancel: Optional[CancelToken] = None, *, priority: Union[str, int] = "interactive",
             costs: Optional[Dict[str, int]] = None, **resources: int) -> Result:
        """Blocks until admitted. Raises Timeout at once (consuming nothing)
        if admission would take longer than timeout seconds (None: no
        limit), Canceled if cancel is cancelled meanwhile. In the main
        thread the wait also ends on a signal (Ctrl-C): its reservation is
        returned and the exception (KeyboardInterrupt) propagates.

        Other resources than requests (wait(key, tokens=1500), or
        costs={"gpu.s": 3}) and priority="batch" use rl_wait_ex; cost None
        leaves requests out. A concurrency limit on a named resource is
        waited for while it is full (no slot is taken: see slot(), guard())."""
        token = cancel or CancelToken()
        call, res = self._wait_call(key, cost, timeout, token, priority, costs, resources)
        rc, msg = self._blocking(call, token)
        if rc != RL_OK:
            if res.degraded:
                return _result(res)
            raise _error(rc, msg)
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

    def guard(self, keys: Union[str, Sequence[str]], requests: Optional[int] = 1,
              costs: Optional[Dict[str, int]] = None, *, priority: Union[str, int] = "interactive",
              timeout: Optional[float] = None, ttl: float = 600.0,
              cooldown_key: int = -1, cancel: Optional[CancelToken] = None,
              **resources: int) -> Guard:
        """A guard around one model call (rl_guard_begin): waits until the
        estimate passes every limit of every key (user and account, the
        account last), holding one lease per key until the call is over:

            with limiter.guard(["user:alice", "provider:openai"], tokens=1500,
                               streams=1, timeout=30) as g:
                reply = call_model()
                g.end(tokens=reply.tokens, headers=reply.headers)

        timeout: seconds (None: for ever; 0: decide at once). Refused:
        RateLimitExceeded (.limit_name, .retry_after, .key). ttl: the leases
        end by themselves, settled at the estimate, after it (a hung
        worker's bound). cooldown_key: the index of the key whose cool-down
        the response headers feed (-1: the last). Slot waiters are woken
        when a slot is freed, in priority then arrival order, across
        processes."""
        if isinstance(keys, (str, bytes)):
            keys = [keys]
        keys = list(keys)
        carr, n = _costs(requests, costs, resources)
        tmo = _FOREVER_NS if timeout is None else _ns(timeout, "timeout", forever=True)
        return Guard(self, keys, carr, n, _priority(priority), tmo, _ns(ttl, "ttl"),
                     _int(cooldown_key, "cooldown_key", _CINT), cancel)

    def slot(self, key, resource: str = "streams", count: int = 1, *,
             priority: Union[str, int] = "interactive", timeout: Optional[float] = None,
             ttl: float = 600.0, cancel: Optional[CancelToken] = None) -> Guard:
        """Holds count units of a concurrency limit (RL_CONCURRENT) of key
        for the block, waiting (without polling) for one to come free:

            with limiter.slot("provider:openai", "streams", timeout=10):
                stream()

        A guard on one key whose estimate is {resource: count} only."""
        return self.guard([key], None, {resource: count}, priority=priority, timeout=timeout,
                          ttl=ttl, cancel=cancel)

    def limited(self, key: Union[str, Callable[..., str]], cost: Optional[int] = 1, *,
                timeout: Optional[float] = None, priority: Union[str, int] = "interactive",
                hold: bool = False, costs: Optional[Dict[str, int]] = None,
                **resources: int) -> Callable[[F], F]:
        """A decorator: each call of the function first waits until admitted
        (wait(), or, with hold=True, holds a guard for the call: slots stay
        taken while it runs). Works on plain and on async functions (these
        wait on the event loop, through Limiter.aio). key may be a function of
        the call's arguments returning the key:

            @limiter.limited(lambda user, q: "user:" + user, tokens=500)
            async def answer(user, q): ...
        """
        return _limited(self, key, cost, timeout, priority, hold, costs, resources)

    @property
    def aio(self) -> "Any":
        """An AsyncLimiter (pyrl.AsyncLimiter) sharing this handle."""
        a = self.__dict__.get("_aio")
        if a is None:
            from ._aio import AsyncLimiter
            a = self.__dict__["_aio"] = AsyncLimiter(self)
        return a

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
