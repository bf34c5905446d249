"""A client-side rate limit shared by the threads of one run, kept below Stripe's own limit."""

import threading
import time


class RateLimiter:
    """Spaces requests at least ``1 / per_second`` apart (no bursts), across threads.

    Each caller reserves the next free slot under a lock and sleeps outside it, so waiting callers do
    not block each other and the rate can never be exceeded in any window.
    """

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def acquire(self, deadline: float = float("inf")) -> None:
        """Wait for a slot, but never past ``deadline`` (a request past it fails on its own timeout)."""
        with self._lock:
            now = time.monotonic()
            slot = max(self._next_slot, now)
            self._next_slot = slot + self._interval
        wait = min(slot, deadline) - now
        if wait > 0:
            time.sleep(wait)
