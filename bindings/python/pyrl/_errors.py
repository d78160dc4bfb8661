"""pyrl's exceptions: one class per RL_E* code of rl.h."""

from ._native import (RL_EAUTH, RL_EBUSY, RL_ECANCELED, RL_ECONFIG, RL_ECONNECT,
                      RL_ECORRUPT, RL_EFULL, RL_EINVAL, RL_EMISMATCH, RL_ENOLIMIT,
                      RL_ENOMEM, RL_ENOTFOUND, RL_EPERM, RL_EREADONLY, RL_ESTORE,
                      RL_ETIMEOUT, RL_ETOOBIG, RL_EVERSION)

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


class DefaultsMismatch(RLError):
    """RL_EMISMATCH: the Limiter's default_limits differ from the default
    limits the database holds (which every process shares). Open without
    default_limits to use the stored ones, or with override_defaults=True to
    replace them for every process."""


_ERRORS = {RL_EINVAL: InvalidArgument, RL_ENOMEM: NoMemory, RL_ETOOBIG: TooBig,
           RL_EBUSY: Busy, RL_ESTORE: StoreError, RL_EREADONLY: ReadOnly, RL_EFULL: Full,
           RL_ECORRUPT: Corrupt, RL_EVERSION: Version, RL_ECONFIG: Config,
           RL_ENOTFOUND: NotFound, RL_ETIMEOUT: Timeout, RL_ECANCELED: Canceled,
           RL_ENOLIMIT: NoLimit, RL_ECONNECT: Unreachable, RL_EAUTH: AuthFailed,
           RL_EPERM: Untrusted, RL_EMISMATCH: DefaultsMismatch}


def _error(code: int, message: str) -> RLError:
    return _ERRORS.get(code, RLError)(code, message)
