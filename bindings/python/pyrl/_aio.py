"""pyrl for asyncio: AsyncLimiter, AsyncGuard.

Nothing here blocks the event loop:

- Decisions that never wait (allow, try_acquire, reserve, penalize, stats,
  settling and cancelling) are short C calls, microseconds as a rule, but
  one can wait for the store's lock up to busy_timeout (another process's
  write, a checkpoint). They run in an executor (the loop's default one,
  or the one given to AsyncLimiter), and a task cancelled meanwhile lets
  the call finish before CancelledError propagates, undoing what it took
  (a reservation is cancelled).
- Waits (wait, acquire, guard, slot, lease with a timeout) run librl's own
  waiting call (rl_wait, rl_wait_ex, rl_guard_begin) in a thread of their
  own, which sleeps in librl: rates wake at their time, slot waiters on a
  futex when a slot is freed (no polling), in the store's queue order
  across processes. The task awaits a future. Cancelling the task sets the
  wait's cancel flag and wakes the wait (rl_wait_wake): librl gives the
  reservation back (nothing is held) at once, and CancelledError propagates once it has; if the
  wait had just succeeded, what it took is given back (rl_guard_cancel).
  One sleeping thread per waiting task: a few hundred are fine.
"""

import asyncio
import concurrent.futures
import ctypes
import threading
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

from ._errors import Timeout, _error
from ._helpers import _b, _int, _ns, _s
from ._native import (RL_EINVAL, RL_ELIMITED, RL_OK, _FOREVER_NS, _rl_errmsg, _rl_guard_end,
                      _rl_guard_cancel, _rl_cancel, rl_result)
from ._limiter import (Guard, Headers, Limiter, Refused, RateLimitExceeded, _costs, _limited,
                       _priority)
from ._values import CancelToken, KeyStats, Reservation, Result, _result

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _settle_future(fut: "asyncio.Future[Any]", ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


async def _finish(fut: "asyncio.Future[T]") -> Tuple["asyncio.Future[T]", bool]:
    """Waits for fut to complete whatever cancellations arrive meanwhile;
    says whether the task was cancelled (the caller re-raises then)."""
    cancelled = False
    while not fut.done():
        try:
            await asyncio.wait([fut])
        except asyncio.CancelledError:
            cancelled = True
    return fut, cancelled


class AsyncGuard:
    """The asyncio face of a Guard (AsyncLimiter.guard, .slot, .lease):

        async with alim.guard(["user:alice", "provider:x"], tokens=1500) as g:
            reply = await call_model()
            g.end(tokens=reply.tokens, headers=reply.headers)   # recorded
        # the block's exit settled it, off the loop; g.end_result is set

    Inside `async with`, end()/settle() record the usage and headers (no C
    call on the loop); the exit applies them. Outside one, await begin(),
    then aend(...) or acancel(). A block that raises (CancelledError
    included) cancels: the estimate goes back and the slots are freed."""

    def __init__(self, alim: "AsyncLimiter", guard: Guard):
        self._alim = alim
        self.guard = guard
        self._record: Optional[Tuple[Any, Any, Any, Dict[str, int]]] = None

    @property
    def result(self) -> Optional[Result]:
        return self.guard.result

    @property
    def end_result(self) -> Optional[Result]:
        return self.guard.end_result

    @property
    def held(self) -> bool:
        return self.guard.held

    @property
    def degraded(self) -> bool:
        return self.guard.degraded

    @property
    def keys(self) -> List[str]:
        return self.guard.keys

    async def begin(self) -> "AsyncGuard":
        g = self.guard
        rc, msg, cancelled = await self._alim._wait_thread(g._begin_call, g._token)
        if cancelled:
            if rc == RL_OK:  # admitted just as the task was cancelled: give it back
                g._state = "held"
                await self._alim._short(g.cancel)
            raise asyncio.CancelledError()
        g._begun(rc, msg)
        return self

    def end(self, requests: Optional[int] = None, costs: Optional[Dict[str, int]] = None,
            headers: Headers = None, **resources: int) -> None:
        """Records the real usage and the response headers; the `async
        with` exit applies them (Guard.end)."""
        self._record = (requests, costs, headers, resources)

    settle = end

    async def aend(self, requests: Optional[int] = None, costs: Optional[Dict[str, int]] = None,
                   headers: Headers = None, **resources: int) -> Result:
        """Guard.end, off the loop."""
        self._record = None
        return await self._alim._short(self.guard.end, requests, costs, headers, **resources)

    async def acancel(self) -> None:
        """Guard.cancel, off the loop."""
        await self._alim._short(self.guard.cancel)

    async def __aenter__(self) -> "AsyncGuard":
        return await self.begin()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if not (self.guard.held or self.guard.degraded):
            return
        if exc_type is not None:
            await self.acancel()
        else:
            requests, costs, headers, resources = self._record or (None, None, None, {})
            await self.aend(requests, costs, headers, **resources)


class AsyncLimiter:
    """A Limiter for asyncio code. Wraps a Limiter (shared: limiter.aio is
    one), or opens one with Limiter's arguments:

        alim = pyrl.AsyncLimiter("agents.db", default_limits=["10/s"])
        await alim.wait("user:alice")

    executor: where the short calls run (None: the loop's default
    executor). inline=True runs them on the loop thread instead: the
    lowest latency, at the price of blocking the loop while another
    process holds the store's lock (up to busy_timeout)."""

    def __init__(self, limiter: Union[Limiter, Any] = None, *args: Any,
                 executor: Optional[concurrent.futures.Executor] = None,
                 inline: bool = False, **kwargs: Any):
        if isinstance(limiter, Limiter):
            if args or kwargs:
                raise TypeError("Limiter arguments given with a Limiter")
            self.limiter = limiter
            self._own = False
        else:
            self.limiter = Limiter(limiter, *args, **kwargs)
            self._own = True
        self._executor = executor
        self._inline = inline

    # -- plumbing

    async def _short(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args) (a short C call) off the loop; a cancellation lets it
        finish, then propagates."""
        if self._inline:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        if kwargs:
            call = lambda: fn(*args, **kwargs)  # noqa: E731
            fut = loop.run_in_executor(self._executor, call)
        else:
            fut = loop.run_in_executor(self._executor, fn, *args)
        fut, cancelled = await _finish(fut)
        if cancelled:
            raise asyncio.CancelledError()
        return fut.result()

    async def _wait_thread(self, call: Callable[[Any], int],
                           token: CancelToken) -> Tuple[int, str, bool]:
        """Runs call(handle), a waiting C call sleeping on token's flag, in a
        thread of its own; returns (rc, message, cancelled)."""
        lim = self.limiter
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[Tuple[int, str]]" = loop.create_future()
        with lim._wcv:
            h = lim._handle()
            lim._waits.add(token)  # close() cancels it

        def run() -> None:
            try:
                rc = call(h)
                out = (True, (rc, _s(_rl_errmsg(h)) if rc != RL_OK else ""))
            except BaseException as e:  # noqa: B902 - handed to the task
                out = (False, e)
            finally:
                with lim._wcv:
                    lim._waits.discard(token)
                    lim._wcv.notify_all()
            try:
                loop.call_soon_threadsafe(_settle_future, fut, *out)
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting any more

        try:
            threading.Thread(target=run, name="pyrl-await", daemon=True).start()
        except BaseException:
            with lim._wcv:
                lim._waits.discard(token)
                lim._wcv.notify_all()
            raise
        try:
            rc, msg = await asyncio.shield(fut)
            return rc, msg, False
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                rc, msg = fut.result()
                return rc, msg, True
            token.cancel()  # sets the flag and wakes the wait: it returns at once, holding nothing
            fut, _ = await _finish(fut)
            rc, msg = fut.result()
            return rc, msg, True

    # -- deciding without waiting

    async def allow(self, key, cost: int = 1) -> Result:
        """Limiter.allow, off the loop."""
        return await self._short(self.limiter.allow, key, cost)

    async def try_acquire(self, keys, requests: Optional[int] = 1,
                          costs: Optional[Dict[str, int]] = None, **resources: int) -> Result:
        """Limiter.acquire (decides now, never waits), off the loop."""
        return await self._short(self.limiter.acquire, keys, requests, costs, **resources)

    async def reserve(self, key, cost: int = 1, max_delay: float = 0.0) -> Reservation:
        """Limiter.reserve, off the loop. A cancelled task gives the
        reservation back."""
        lim = self.limiter
        loop = asyncio.get_running_loop()
        if self._inline:
            return lim.reserve(key, cost, max_delay)
        fut = loop.run_in_executor(self._executor, lim.reserve, key, cost, max_delay)
        fut, cancelled = await _finish(fut)
        if cancelled:
            if fut.exception() is None:
                await self._short(fut.result().cancel)
            raise asyncio.CancelledError()
        return fut.result()

    async def penalize(self, key, seconds: float, resource: Optional[str] = None) -> None:
        await self._short(self.limiter.penalize, key, seconds, resource)

    async def stats(self, key) -> KeyStats:
        return await self._short(self.limiter.stats, key)

    # -- waiting

    async def wait(self, key, cost: Optional[int] = 1, timeout: Optional[float] = None, *,
                   priority: Union[str, int] = "interactive",
                   costs: Optional[Dict[str, int]] = None, **resources: int) -> Result:
        """Waits on the event loop until cost units of requests (and the
        resources named: tokens=1500) are admitted for key; raises
        pyrl.Timeout at once, consuming nothing, if admission would take
        longer than timeout seconds (None: no limit). Cancelling the task
        gives the reservation back (rl_wait's cancel flag). A concurrency
        limit on a named resource is waited for while full (checked, not
        taken: use slot() or guard() to hold one)."""
        lim = self.limiter
        token = CancelToken()
        call, res = lim._wait_call(key, cost, timeout, token, priority, costs, resources)
        rc, msg, cancelled = await self._wait_thread(call, token)
        if cancelled:
            # rl_wait returned RL_ECANCELED (reservation given back) or had
            # just admitted: units are then spent, as by any decision
            raise asyncio.CancelledError()
        if rc != RL_OK:
            if res.degraded:
                return _result(res)
            raise _error(rc, msg)
        return _result(res)

    async def acquire(self, keys, requests: Optional[int] = 1,
                      costs: Optional[Dict[str, int]] = None, *,
                      timeout: Optional[float] = None, priority: Union[str, int] = "interactive",
                      **resources: int) -> Result:
        """The waiting acquire: waits until one all-or-nothing decision over
        the resources of every key passes, and charges it. One key: as
        wait(). Several keys (user and account): a guard taken and ended at
        once at its estimate (rl_guard_begin waits for every key together).
        Raises pyrl.Timeout (RateLimitExceeded for several keys, with the
        refusing limit) if it cannot within timeout seconds."""
        if isinstance(keys, (str, bytes)) or len(keys) == 1:
            key = keys if isinstance(keys, (str, bytes)) else keys[0]
            return await self.wait(key, requests, timeout, priority=priority, costs=costs,
                                   **resources)
        g = self.guard(keys, requests, costs, timeout=timeout, priority=priority, **resources)
        await g.begin()
        res = g.result
        await g.aend()
        return res

    def guard(self, keys: Union[str, Sequence[str]], requests: Optional[int] = 1,
              costs: Optional[Dict[str, int]] = None, *, priority: Union[str, int] = "interactive",
              timeout: Optional[float] = None, ttl: float = 600.0, cooldown_key: int = -1,
              **resources: int) -> AsyncGuard:
        """Limiter.guard for asyncio: `async with alim.guard(...) as g:`.
        The wait runs in a thread (rl_guard_begin sleeps until admitted, a
        slot waiter on a futex); cancelling the task cancels the wait or,
        once admitted, the guard."""
        return AsyncGuard(self, self.limiter.guard(
            keys, requests, costs, priority=priority, timeout=timeout, ttl=ttl,
            cooldown_key=cooldown_key, **resources))

    def slot(self, key, resource: str = "streams", count: int = 1, *,
             priority: Union[str, int] = "interactive", timeout: Optional[float] = None,
             ttl: float = 600.0) -> AsyncGuard:
        """Holds count units of a concurrency limit for an `async with`
        block, waiting for one to come free (woken when it is, no polling)."""
        return AsyncGuard(self, self.limiter.slot(key, resource, count, priority=priority,
                                                  timeout=timeout, ttl=ttl))

    def lease(self, key, ttl: float = 60.0, requests: Optional[int] = 1,
              costs: Optional[Dict[str, int]] = None, *, timeout: Optional[float] = 0,
              priority: Union[str, int] = "interactive", **resources: int) -> AsyncGuard:
        """An estimate now, the real amount later:

            async with alim.lease("provider:x", tokens=1500) as lease:
                used = await call_model()
                lease.settle(tokens=used)

        A lease on one key, made as a one-key guard: timeout 0 (the
        default, as Limiter.lease) refuses at once with RateLimitExceeded
        (a Refused); a timeout (None: for ever) waits for the estimate to
        pass, slots included."""
        return AsyncGuard(self, self.limiter.guard(
            [key], requests, costs, priority=priority, timeout=timeout, ttl=ttl, **resources))

    def limited(self, key: Union[str, Callable[..., str]], cost: Optional[int] = 1, *,
                timeout: Optional[float] = None, priority: Union[str, int] = "interactive",
                hold: bool = False, costs: Optional[Dict[str, int]] = None,
                **resources: int) -> Callable[[F], F]:
        """Limiter.limited: a decorator for async (and plain) functions."""
        return _limited(self.limiter, key, cost, timeout, priority, hold, costs, resources)

    # -- closing

    async def aclose(self) -> None:
        """Closes the Limiter if this AsyncLimiter opened it (waits still
        running are cancelled first)."""
        if self._own:
            await asyncio.get_running_loop().run_in_executor(None, self.limiter.close)

    def close(self) -> None:
        if self._own:
            self.limiter.close()

    async def __aenter__(self) -> "AsyncLimiter":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
