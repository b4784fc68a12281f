"""A grant of a Redis lock: the lease that ``locks`` hands out and ``lease`` renews.

Both modules use it; it lives here, below them, so neither needs the other's type.
"""

from __future__ import annotations

import time

from ...errors import LeaseLostError
from ...records import LockGrant

__all__ = ["RedisLockGrant"]


class RedisLockGrant(LockGrant):
    """A grant of a Redis lock: a lease that the watchdog renews while this process lives.

    ``fencing`` grows with every grant of the name (across processes and Redis
    restarts); ``lease`` is the lease length in seconds; ``lost`` is the error that
    ended the lease early, or None while it is good.
    """

    __slots__ = ("lease", "valid_until", "renew_due", "released", "_lost", "_keys")

    def __init__(
        self, name: str, token: str, fencing: int, holder: str | None, lease: float,
        valid_until: float, keys: tuple[str, ...],
    ) -> None:
        super().__init__(name, token, fencing, holder)
        self.lease = lease
        #: monotonic time until which the lease is surely still ours (a lower bound)
        self.valid_until = valid_until
        self.renew_due = valid_until - lease * 2 / 3
        self.released = False
        self._lost: LeaseLostError | None = None
        self._keys = keys

    @property
    def lost(self) -> BaseException | None:
        lost = self._lost
        if lost is None and not self.released and time.monotonic() > self.valid_until:
            return LeaseLostError(
                f"lock {self.name!r} (fencing {self.fencing}): its {self.lease:g}s lease ran out "
                "before it could be renewed (Redis unreachable, or this process was paused)",
                name=self.name, fencing=self.fencing,
            )
        return lost

    def __repr__(self) -> str:
        state = "lost" if self._lost else "released" if self.released else "held"
        return f"<RedisLockGrant {self.name!r} fencing={self.fencing} holder={self.holder!r} {state}>"
