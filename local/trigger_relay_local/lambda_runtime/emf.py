"""Read back from the handlers' logs the metrics they emitted (CloudWatch embedded format)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def metric_totals(log_dir: Path) -> Counter[str]:
    totals: Counter[str] = Counter()
    for log in sorted(log_dir.glob("*.log")):
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.startswith("{") or '"_aws"' not in line:
                continue
            try:
                document = json.loads(line)
            except ValueError:
                continue
            for directive in document["_aws"].get("CloudWatchMetrics", []):
                for metric in directive.get("Metrics", []):
                    value = document.get(metric["Name"])
                    values = value if isinstance(value, list) else [value]
                    totals[metric["Name"]] += sum(
                        int(v) for v in values if isinstance(v, int | float)
                    )
    return totals
