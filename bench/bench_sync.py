"""Recipients sync: memory stays flat as recipient counts grow; every row lands exactly once.

For 10,000, 50,000 and 200,000 recipients across the nine actions, RecipientsSyncFunction runs
on the local stack (scaled-down quota: 600 calls / 10 s; pages of 1,000) until the campaign is
complete, each run in a fresh process as a Lambda cold start would be. Peak RSS (VmHWM) is the
largest of any run. Targets: from 50k to 200k the peak grows by no more than allocator noise
(8 MiB); from 10k, by no more than the 5 MiB multipart buffer and its copies (and 15%); S3
holds every recipient once; no run fails.

Run: .venv/bin/python bench/bench_sync.py
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent)]
from report import Row, finish, print_table  # noqa: E402

from trigger_relay.vendors.zoho.recipients import ACTIONS  # noqa: E402
from trigger_relay_local.lambda_runtime.fleet import invoke_measured  # noqa: E402
from trigger_relay_local.simulator import SimConfig  # noqa: E402
from trigger_relay_local.simulator.state import Campaign  # noqa: E402
from trigger_relay_local.stack.embedded import embedded_stack  # noqa: E402
from trigger_relay_local.stack.local_stack import write_routes  # noqa: E402

API = "zoho_campaigns.recipients"
CAMPAIGN = "bench0000000000000000000000000001"
SHARES = [0.40, 0.25, 0.025, 0.005, 0.15, 0.10, 0.035, 0.025, 0.01]


def counts(total: int) -> dict[str, int]:
    split = {a: int(total * s) for a, s in zip(ACTIONS, SHARES, strict=True)}
    split[ACTIONS[0]] += total - sum(split.values())
    return split


def sync(total: int, tmp: Path) -> dict[str, float]:
    routes = write_routes(
        tmp / f"routes-{total}.yaml",
        limits={
            "zoho-main": {API: {"calls": 600, "window_seconds": 10, "safety_margin_seconds": 0.1}}
        },
        recipients_sync={"account": "zoho-main", "campaigns": [CAMPAIGN], "page_size": 1000},
    )
    config = SimConfig.demo()
    config.campaigns[CAMPAIGN] = Campaign(counts(total))
    config.limits[API] = (600, 10.0, 20.0)
    with embedded_stack(tmp / f"stack-{total}", config, routes_source=routes) as env:
        spec = env.stack.functions["RecipientsSyncFunction"]
        peak_kb, runs, pages, failures = 0, 0, 0, 0
        started = time.monotonic()
        while runs < 50:
            result, rss = invoke_measured(env.stack, spec, {"source": "aws.events"})
            runs += 1
            peak_kb = max(peak_kb, rss)
            pages += result["pages"]
            failures += sum(
                r["stopped"] not in ("complete", "quota", "time") for r in result["runs"]
            )
            if result["rows"] == 0:
                break
        elapsed = time.monotonic() - started
        s3 = env.stack.client("s3")
        bucket = env.stack.outputs["RecipientsBucketName"]
        seen: Counter[tuple[str, str]] = Counter()
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="recipients/"
        ):
            for item in page.get("Contents", []):
                body = gzip.decompress(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                for line in body.splitlines():
                    row = json.loads(line)
                    seen[(row["action"], row["contactid"])] += 1
    return {
        "peak_mib": peak_kb / 1024,
        "rows": sum(seen.values()),
        "distinct": len(seen),
        "runs": runs,
        "pages_per_s": pages / elapsed,
        "failures": failures,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        small = sync(10_000, Path(tmp))
        middle = sync(50_000, Path(tmp))
        large = sync(200_000, Path(tmp))
    rows = [
        Row("10k: peak RSS of a run (MiB)", round(small["peak_mib"], 1)),
        Row("50k: peak RSS of a run (MiB)", round(middle["peak_mib"], 1)),
        Row("200k: peak RSS of a run (MiB)", round(large["peak_mib"], 1)),
        # Past one 5 MiB multipart part, memory must not grow with the recipient count.
        Row("200k - 50k peak (MiB)", round(large["peak_mib"] - middle["peak_mib"], 1), "<= 8"),
        # Below one part the whole object is one buffer: the most it can differ is that part.
        Row("200k - 10k peak (MiB)", round(large["peak_mib"] - small["peak_mib"], 1), "<= 24"),
        Row("200k / 10k peak", round(large["peak_mib"] / small["peak_mib"], 3), "<= 1.15"),
        Row("10k: rows in S3 (each once)", small["rows"], "== 10000"),
        Row("10k: distinct recipients", small["distinct"], "== 10000"),
        Row("200k: rows in S3 (each once)", large["rows"], "== 200000"),
        Row("200k: distinct recipients", large["distinct"], "== 200000"),
        Row("200k: runs needed", large["runs"]),
        Row("200k: pages per second (simulator, scaled quota)", round(large["pages_per_s"], 1)),
        Row("failed campaign runs", small["failures"] + large["failures"], "== 0"),
    ]
    finish(print_table("Recipients sync: flat memory, exactly once", rows))


if __name__ == "__main__":
    main()
