"""Contract: Altcraft bulk launch and trigger launch v1.1 / v1.0 link, against the samples Altcraft
publishes (tests/contracts/altcraft)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import httpx
import pytest
from xxhash import xxh64_hexdigest as xxh64_hex

from tests.conftest import contract
from trigger_relay.vendors.altcraft.bulk import ALTCRAFT_BULK, BulkParams, BulkRecipient
from trigger_relay.vendors.altcraft.link import ALTCRAFT_LINK, LinkParams, LinkRecipient, address
from trigger_relay.vendors.altcraft.trigger import ALTCRAFT_TRIGGER, ProfileRecipient, TriggerParams
from trigger_relay.vendors.outcomes import Outcome

TOKEN = "abcdefghijklmnqrstuvwxyz"
BASE = "https://example.com"


def xml_tree(text: str | bytes) -> list[tuple[str, str]]:
    """An XML document as (path, text) pairs, whitespace-insensitive."""
    root = ET.fromstring(text)
    out = []

    def walk(node: ET.Element, path: str) -> None:
        out.append((path, (node.text or "").strip()))
        for child in node:
            walk(child, f"{path}/{child.tag}")

    walk(root, root.tag)
    return out


# ---------------------------------------------------------------- bulk (002)


def test_bulk_json_by_email_is_the_documented_sample() -> None:
    sample = json.loads(contract("altcraft/bulk-request-by-email.json"))
    params = BulkParams(trigger_id=8, format="json", matching="email")
    recipients = [BulkRecipient(email=d["email"]) for d in sample["data"]]
    request = ALTCRAFT_BULK.build(recipients, params, token=TOKEN, base_url=BASE)
    assert str(request.url) == "https://example.com/api/v1.1/campaigns/triggers/start_batch"
    assert request.method == "POST"
    assert json.loads(request.content) == sample
    assert list(json.loads(request.content)) == list(sample)  # same key order


def test_bulk_json_by_custom_field_is_the_documented_sample() -> None:
    sample = json.loads(contract("altcraft/bulk-request-by-custom-field.json"))
    params = BulkParams(
        trigger_id=96, matching="custom", field_name="Custom_ID", skip_triggers=False
    )
    recipients = [BulkRecipient(field_value=d["field_value"]) for d in sample["data"]]
    request = ALTCRAFT_BULK.build(recipients, params, token=TOKEN, base_url=BASE)
    assert list(json.loads(request.content).items()) == list(sample.items())


@pytest.mark.parametrize(
    ("sample_file", "params", "recipients"),
    [
        (
            "altcraft/bulk-request-by-email.xml",
            BulkParams(trigger_id=85, format="xml"),
            [
                BulkRecipient(email="example1@example.com"),
                BulkRecipient(email="example2@example.com"),
            ],
        ),
        (
            "altcraft/bulk-request-by-custom-field.xml",
            BulkParams(
                trigger_id=85,
                format="xml",
                matching="custom",
                field_name="Custom_ID",
                skip_triggers=False,
            ),
            [BulkRecipient(field_value="YY"), BulkRecipient(field_value="AA")],
        ),
    ],
)
def test_bulk_xml_requests_are_the_documented_samples(
    sample_file: str, params: BulkParams, recipients: list
) -> None:
    sample = contract(sample_file)
    request = ALTCRAFT_BULK.build(recipients, params, token=TOKEN, base_url=BASE)
    assert xml_tree(request.content) == xml_tree(sample)
    assert request.headers["Content-Type"].startswith("application/xml")


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bulk_documented_responses_parse(fmt: str) -> None:
    recipients = [
        BulkRecipient(email="example1@example.com"),
        BulkRecipient(email="example2@example.com"),
    ]
    body = contract(f"altcraft/bulk-response.{fmt}")
    response = httpx.Response(200, text=body, headers={"content-type": f"application/{fmt}"})
    result = ALTCRAFT_BULK.parse(response, recipients)
    assert {r.outcome for r in result.by_recipient.values()} == {Outcome.DELIVERED}
    assert all("2 profile(s)" in r.detail for r in result.by_recipient.values())


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bulk_body_too_large_answer_is_rejected_with_its_reason(fmt: str) -> None:
    body = contract(f"altcraft/bulk-response-body-too-large.{fmt}")
    response = httpx.Response(200, text=body, headers={"content-type": f"application/{fmt}"})
    result = ALTCRAFT_BULK.parse(response, [BulkRecipient(email="a@b.co")])
    (outcome,) = result.by_recipient.values()
    assert outcome.outcome is Outcome.REJECTED and result.vendor_code == "400"
    assert "request body too large" in outcome.detail


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bulk_calls_are_cut_by_encoded_size_never_over_the_cap(fmt: str) -> None:
    params = BulkParams(trigger_id=8, format=fmt, max_body_bytes=4096)
    recipients = [
        BulkRecipient(email=f"someone.with.a.long.name{i}@example.com") for i in range(500)
    ]
    chunks = ALTCRAFT_BULK.chunk(recipients, params)
    assert [r for c in chunks for r in c] == recipients
    sizes = [
        len(ALTCRAFT_BULK.build(c, params, token=TOKEN, base_url=BASE).content) for c in chunks
    ]
    assert max(sizes) <= 4096
    assert min(sizes[:-1]) > 4096 * 0.9  # and the calls are full, not timid


def test_bulk_default_cap_is_10_mb() -> None:
    params = BulkParams(trigger_id=8)
    recipients = [BulkRecipient(email=f"user{i:07d}@example.com") for i in range(400_000)]
    chunks = ALTCRAFT_BULK.chunk(recipients, params)
    assert len(chunks) >= 2
    assert (
        len(ALTCRAFT_BULK.build(chunks[0], params, token=TOKEN, base_url=BASE).content)
        <= 10 * 1024 * 1024
    )


# ---------------------------------------------------------------- launch v1.1 (004)


def launch_sample(name: str) -> dict:
    return json.loads(contract(f"altcraft/launch-request-{name}.json"))


def test_launch_single_profile_is_the_documented_sample() -> None:
    sample = launch_sample("single-profile")
    params = TriggerParams(id=84, matching="profile_id")
    request = ALTCRAFT_TRIGGER.build(
        [ProfileRecipient(profile_id=sample["profile_id"])], params, token=TOKEN, base_url=BASE
    )
    assert str(request.url) == "https://example.com/api/v1.1/campaigns/triggers/start/"
    assert list(json.loads(request.content).items()) == list(sample.items())


def test_launch_custom_request_batches_values_as_the_documented_sample() -> None:
    sample = launch_sample("custom-request")
    params = TriggerParams(id=84, matching=None, custom_request_field="Custom_ID")
    values = sample["custom_request"]["Custom_ID"]["$in"]
    request = ALTCRAFT_TRIGGER.build(
        [ProfileRecipient(field_value=v) for v in values], params, token=TOKEN, base_url=BASE
    )
    assert list(json.loads(request.content).items()) == list(sample.items())
    assert (
        ALTCRAFT_TRIGGER.chunk([ProfileRecipient(field_value=str(i)) for i in range(2500)], params)[
            0
        ].__len__()
        == 1000
    )


def test_launch_attach_and_content_with_non_ascii_names_is_the_documented_sample() -> None:
    sample = launch_sample("attach")
    params = TriggerParams(
        id=96, matching="profile_id", attach=sample["attach"], content=sample["content"]
    )
    request = ALTCRAFT_TRIGGER.build(
        [ProfileRecipient(profile_id=sample["profile_id"])], params, token=TOKEN, base_url=BASE
    )
    assert list(json.loads(request.content).items()) == list(sample.items())
    assert "日本.txt".encode() in request.content  # sent as UTF-8, not escaped


@pytest.mark.parametrize(
    ("params", "recipient", "expected"),
    [
        (
            TriggerParams(id=5511),
            ProfileRecipient(email="john@example.com"),
            {"matching": "email", "email": "john@example.com"},
        ),
        (
            TriggerParams(id=5511, matching="phone", resource_id=24),
            ProfileRecipient(phone="+79000000000"),
            {"matching": "phone", "phone": "+79000000000", "resource_id": 24},
        ),
        (
            TriggerParams(id=5511, matching="custom", field_name="CRM_ID"),
            ProfileRecipient(field_value="123420"),
            {"matching": "custom", "field_name": "CRM_ID", "field_value": "123420"},
        ),
        (
            TriggerParams(
                id=5511,
                custom_data={"x": "y"},
                subscription_filter={
                    "subscription_id": "CAREFULWITHTHATAXE",
                    "provider": "Chrome",
                    "not_strict": True,
                },
            ),
            ProfileRecipient(email="a@b.co", content={"order": "o-1"}),
            {
                "matching": "email",
                "email": "a@b.co",
                "content": {"order": "o-1"},
                "custom_data": {"x": "y"},
                "subscription_filter": {
                    "subscription_id": "CAREFULWITHTHATAXE",
                    "provider": "Chrome",
                    "not_strict": True,
                },
            },
        ),
        (
            TriggerParams(
                id=5511, subscription_filter={"phone": "+79106135133", "not_strict": False}
            ),
            ProfileRecipient(email="a@b.co"),
            {
                "matching": "email",
                "email": "a@b.co",
                "subscription_filter": {"phone": "+79106135133", "not_strict": False},
            },
        ),
    ],
)
def test_every_matching_mode(
    params: TriggerParams, recipient: ProfileRecipient, expected: dict
) -> None:
    body = json.loads(
        ALTCRAFT_TRIGGER.build([recipient], params, token=TOKEN, base_url=BASE).content
    )
    assert body == {"token": TOKEN, "id": 5511, **expected}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": 1, "matching": "custom"}, "field_name is needed"),
        (
            {
                "id": 1,
                "custom_request_field": "X",
                "subscription_filter": {"email": "a@b.co", "not_strict": True},
            },
            "subscription_filter is not used",
        ),
        ({"id": 1, "matching": "profile_id", "resource_id": 3}, "resource_id applies"),
        ({"id": 1, "attach": [{"data": "http://not-a-data-url", "name": "x"}]}, "base64 data URL"),
        ({"id": 1, "subscription_filter": {"not_strict": True}}, "one of subscription_id"),
    ],
)
def test_launch_params_are_checked(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TriggerParams(**kwargs)


def test_launch_documented_response_parses() -> None:
    body = contract("altcraft/launch-response.json")
    result = ALTCRAFT_TRIGGER.parse(
        httpx.Response(200, text=body), [ProfileRecipient(email="a@b.co")]
    )
    assert [r.outcome for r in result.by_recipient.values()] == [Outcome.DELIVERED]


# ---------------------------------------------------------------- v1.0 link (004)

LINK = "http://trk.example.org/trg/465ea6fedf0a75fa9ee0b5fb8f9d5fe89af34054909af8bb"


@pytest.mark.parametrize(
    ("addressing", "last"),
    [
        ("email", "john@example.com"),
        ("md5", "d4c74594d841139328695756648b6bd6"),
        ("xxh", xxh64_hex(b"john@example.com")),
    ],
)
def test_link_get_addresses_the_profile(addressing: str, last: str) -> None:
    params = LinkParams(link=LINK, addressing=addressing)
    request = ALTCRAFT_LINK.build([LinkRecipient(email="john@example.com")], params, token=TOKEN)
    assert (request.method, str(request.url)) == ("GET", f"{LINK}/{last}")
    assert request.content == b""


def test_link_post_with_fields_is_the_documented_sample() -> None:
    sample = json.loads(contract("altcraft/link-post-json-data.json"))
    params = LinkParams(link=LINK, addressing="xxh", method="POST", id=96, send_token=True)
    recipient = LinkRecipient(
        email="john@example.com", profile_id=sample["profile_id"], fields=sample["fields"]
    )
    request = ALTCRAFT_LINK.build([recipient], params, token=TOKEN)
    assert request.method == "POST"
    assert list(json.loads(request.content).items()) == list(sample.items())


def test_link_field_options_are_0_1_or_2() -> None:
    with pytest.raises(ValueError, match="option"):
        LinkRecipient(email="a@b.co", fields=[{"name": "FirstName", "value": "J", "option": 3}])


def test_md5_addressing_is_md5_of_the_email() -> None:
    assert address("john@example.com", "md5") == "d4c74594d841139328695756648b6bd6"


def test_xxh_addressing_is_xxh64_of_the_lower_cased_email() -> None:
    # XXH64 reference vectors (github.com/Cyan4973/xxHash): "" -> ef46db3751d8e999
    assert xxh64_hex(b"") == "ef46db3751d8e999"
    assert address("John@Example.com", "xxh") == xxh64_hex(b"john@example.com")
