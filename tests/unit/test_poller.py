"""The local event source mapping: a failed invocation is logged with its traceback, as Lambda
writes it to the function's log, and its messages come back."""

from __future__ import annotations

import logging
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws

from trigger_relay_local.lambda_runtime.poller import SqsPoller


def sqs_poller(sqs: Any, url: str, handler: Any, **options: Any) -> SqsPoller:
    """A poller of queue q with 512 MB of memory, ten records a batch and no window."""
    return SqsPoller(
        sqs,
        url,
        "arn:aws:sqs:eu-west-1:123456789012:q",
        handler,
        function_name="f",
        timeout=60,
        memory=512,
        batch_size=10,
        batching_window=0,
        **options,
    )


def test_a_failing_handler_is_logged_with_its_traceback_and_its_messages_return(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="{}")

        def handler(event: object, context: object) -> object:
            raise KeyError("routes file broke")

        poller = sqs_poller(sqs, url, handler, retry_visibility=0)
        with caplog.at_level(logging.ERROR):
            assert poller.poll_once() == 1
        assert poller.stats.errors == 1 and poller.stats.deleted == 0
        (record,) = caplog.records
        assert "invocation failed" in record.getMessage()
        assert record.exc_info is not None and "routes file broke" in caplog.text
        assert "Traceback" in caplog.text
        again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", [])
        assert len(again) == 1


def test_each_invocation_is_billed_as_lambda_bills_it() -> None:
    """Duration rounded up to the millisecond, times the configured memory."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]

        def handler(event: object, context: object) -> object:
            time.sleep(0.0304)
            return {"batchItemFailures": []}

        poller = sqs_poller(sqs, url, handler)
        for _ in range(2):
            sqs.send_message(QueueUrl=url, MessageBody="{}")
            assert poller.poll_once() == 1
        assert poller.stats.invocations == 2
        assert 2 * 31 <= poller.stats.billed_ms < 2 * 31 + 200
        assert poller.stats.billed_mb_ms == poller.stats.billed_ms * 512
