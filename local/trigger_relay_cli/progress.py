"""Everything the CLI and the demo say while waiting, in one place: a long step is never silent,
and a terminal shows it in place while a log or a pipe gets a line every couple of seconds."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class StatusLine:
    """A status that changes while something runs. On a terminal it is rewritten in place
    (with a spinner); elsewhere it is written as a line at most every ``every`` seconds."""

    def __init__(self, out: TextIO | None = None, every: float = 2.0) -> None:
        self._out = out
        self._every = every
        self._last: float | None = None
        self._started = time.monotonic()

    @property
    def out(self) -> TextIO:
        return self._out or sys.stderr  # read late: tests and pipes replace sys.stderr

    def show(self, text: str) -> None:
        now = time.monotonic()
        if self.out.isatty():
            spinner = "|/-\\"[int((now - self._started) * 4) % 4]
            self.out.write(f"\r{spinner} {text}\033[K")
        elif self._last is None or now - self._last >= self._every:
            self.out.write(text + "\n")
        else:
            return
        self._last = now
        self.out.flush()

    def clear(self) -> None:
        if self.out.isatty():
            self.out.write("\r\033[K")
            self.out.flush()


def following(status: StatusLine | None = None) -> Callable[[int, int, float, float], None]:
    """What `send` says while it follows its events to their outcome."""
    line = status or StatusLine()

    def report(settled: int, total: int, waited: float, timeout: float) -> None:
        if settled >= total:
            line.clear()
            return
        line.show(
            f"waiting for {total - settled} of {total} event(s) to be delivered, rejected or "
            f"stored as uncertain ({waited:.0f} s of {timeout:.0f} s)"
        )

    return report


def counting(label: str, status: StatusLine | None = None) -> Callable[[int, int], None]:
    """What `redrive` says as it moves records: done of total."""
    line = status or StatusLine()

    def report(done: int, total: int) -> None:
        line.show(f"{label}: {done} of {total}")
        if done >= total:
            line.clear()

    return report


@contextmanager
def ticking(out: Callable[[str], Any], doing: str, every: float = 2.0) -> Iterator[None]:
    """Say what is being waited for, and keep saying it, so a long step is never silent."""
    out(f"{doing} ...")
    started = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every):
            out(f"  ... {doing.lower()} ({time.monotonic() - started:.0f} s)")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
