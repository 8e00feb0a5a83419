"""App events for tests and benchmarks."""

from __future__ import annotations

import json


def signups(tag: str, count: int, first: int = 0) -> list[str]:
    """Signup bodies for `{tag}{n}@example.com`, each with its own event id `{tag}-{n}`."""
    return [
        json.dumps(
            {
                "type": "user.signed_up",
                "id": f"{tag}-{n}",
                "user": {"email": f"{tag}{n}@example.com"},
            }
        )
        for n in range(first, first + count)
    ]
