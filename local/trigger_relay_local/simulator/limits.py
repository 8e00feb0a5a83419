"""The vendors' call limit as they enforce it: N calls in any window, then a lock."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CallLimit:
    calls: int
    window_seconds: float
    lock_seconds: float
    clock: Callable[[], float] = time.monotonic
    _times: deque[float] = field(default_factory=deque)
    _locked_until: float = 0.0
    locks: int = 0
    accepted: int = 0
    peak_in_window: int = 0
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    def admit(self) -> bool:
        """Count a call; False when the API is locked (now or by this very call)."""
        with self._mutex:
            now = self.clock()
            if now < self._locked_until:
                return False
            while self._times and self._times[0] <= now - self.window_seconds:
                self._times.popleft()
            if len(self._times) >= self.calls:
                self._locked_until = now + self.lock_seconds
                self.locks += 1
                return False
            self._times.append(now)
            self.accepted += 1
            self.peak_in_window = max(self.peak_in_window, len(self._times))
            return True

    @property
    def locked(self) -> bool:
        return self.clock() < self._locked_until

    def lock_now(self) -> None:
        with self._mutex:
            self._locked_until = self.clock() + self.lock_seconds
            self.locks += 1
