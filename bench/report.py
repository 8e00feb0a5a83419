"""Benchmark tables and targets: print what was measured, fail when a target is missed."""

from __future__ import annotations

import operator
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}


@dataclass
class Row:
    name: str
    value: float | str
    target: str = ""  # e.g. ">= 0.95"; empty: reported only

    def met(self) -> bool:
        if not self.target:
            return True
        op, threshold = self.target.split()
        return _OPS[op](float(self.value), float(threshold))


def print_table(title: str, rows: list[Row]) -> bool:
    """Print the table; True when every target is met."""
    print(
        f"\n{title}  ({datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()})"
    )
    width = max(len(r.name) for r in rows)
    print(f"  {'measure'.ljust(width)}  {'value':>12}  target     ok")
    for row in rows:
        value = f"{row.value:.3f}" if isinstance(row.value, float) else str(row.value)
        status = "" if not row.target else ("yes" if row.met() else "NO")
        print(f"  {row.name.ljust(width)}  {value:>12}  {row.target:<9}  {status}")
    return all(r.met() for r in rows)


def finish(ok: bool) -> None:
    print("all targets met" if ok else "TARGET MISSED")
    sys.exit(0 if ok else 1)
