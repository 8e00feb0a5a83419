"""What may go into a log line: addresses only masked, wherever they appear in a text."""

from __future__ import annotations

from trigger_relay.observability import mask_email, scrub


def test_a_masked_address_keeps_first_letter_and_domain_and_is_stable() -> None:
    masked = mask_email("Patricia@Zylker.com")
    assert masked.startswith("P***@Zylker.com#")
    assert "atricia" not in masked
    assert mask_email(" patricia@zylker.com") == mask_email("patricia@zylker.com")
    assert mask_email("patricia@zylker.com") != mask_email("paula@zylker.com")


def test_scrub_masks_every_address_in_a_text_and_leaves_the_rest() -> None:
    text = 'rows: "ann.lee+x@a.example", <bob@b.example>; code 9002 (c@d.co)'
    scrubbed = scrub(text)
    for address in ("ann.lee+x@a.example", "bob@b.example", "c@d.co"):
        assert address not in scrubbed
    assert scrubbed.count("***@") == 3
    assert scrubbed.startswith('rows: "a***@a.example#') and "code 9002 (" in scrubbed
    assert scrub("quota: no free slot") == "quota: no free slot"


def test_metrics_carry_the_stacks_name_as_their_service_dimension() -> None:
    """Two stacks in one account: each one's alarms (service = its stack name) see only its
    own events."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "from trigger_relay.observability import metrics\n"
        "from aws_lambda_powertools.metrics import MetricUnit\n"
        "metrics.add_metric(name='EventsRejected', unit=MetricUnit.Count, value=1)\n"
        "metrics.flush_metrics()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(ROOT / "layers" / "common"), "POWERTOOLS_SERVICE_NAME": "relay-b"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    document = json.loads(result.stdout.strip().splitlines()[-1])
    assert document["service"] == "relay-b"
    assert ["service"] in document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
