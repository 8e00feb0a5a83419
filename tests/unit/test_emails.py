"""One rule for internationalised addresses, wherever a recipient is made: a Unicode domain goes
out in its IDNA ("xn--") form; a non-ASCII local part is refused with a reason, because neither
vendor documents SMTPUTF8 mailboxes. The pipeline, `explain` and `send` all call this."""

from __future__ import annotations

import pytest

from trigger_relay.vendors.recipients import normalise_email

# (as the app sends it, as every vendor call carries it) - real-world shapes
ACCEPTED = [
    ("ann@example.com", "ann@example.com"),
    (" Ann.Lee@Zylker.COM ", "Ann.Lee@zylker.com"),  # the local part keeps its case
    ("user+tag@mail.example.co.uk", "user+tag@mail.example.co.uk"),
    ("o'brien@example.ie", "o'brien@example.ie"),
    ("jose@bücher.de", "jose@xn--bcher-kva.de"),
    ("info@Bücher.DE", "info@xn--bcher-kva.de"),
    ("test@домен.рф", "test@xn--d1acufc.xn--p1ai"),
    ("admin@例え.jp", "admin@xn--r8jz45g.jp"),
    ("info@xn--bcher-kva.de", "info@xn--bcher-kva.de"),  # already ASCII
    # IDNA 2008 (UTS 46), not 2003: sharp s and final sigma stay letters of their own
    ("anna@straße.de", "anna@xn--strae-oqa.de"),
    ("a@βόλος.gr", "a@xn--nxasmm1c.gr"),
]
REFUSED = [
    ("josé.müller@zylker.com", "non-ASCII"),
    ("用户@例子.广告", "non-ASCII"),
    ("müller@münchen.de", "non-ASCII"),
    ("not-an-email", "not a valid email address"),
    ("a@b", "not a valid email address"),
    ("sp ace@example.com", "not a valid email address"),
    ("x@@example.com", "not a valid email address"),
    ("x@exa mple.com", "not a valid email address"),
    ("a" * 250 + "@example.com", "longer than 254"),
]


@pytest.mark.parametrize(("given", "sent"), ACCEPTED)
def test_accepted_addresses_go_out_in_ascii(given: str, sent: str) -> None:
    assert normalise_email(given) == sent


@pytest.mark.parametrize(("given", "why"), REFUSED)
def test_refused_addresses_say_why_without_quoting_the_address(given: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as refused:
        normalise_email(given)
    assert given not in str(refused.value)  # reasons are logged and stored


def test_every_api_that_takes_an_email_applies_the_rule() -> None:
    from trigger_relay.vendors import registry

    apis = [registry.api(action) for action in registry.actions()]
    takes_email = [a for a in apis if a and "email" in a.recipient_model.model_fields]
    assert len(takes_email) >= 4
    for api in takes_email:
        recipient = api.recipient_model.model_validate({"email": "Jose@Bücher.de"})
        assert recipient.email == "Jose@xn--bcher-kva.de", api
        with pytest.raises(ValueError, match="non-ASCII"):
            api.recipient_model.model_validate({"email": "josé@zylker.com"})


def test_an_email_in_route_params_follows_the_same_rule() -> None:
    from trigger_relay.vendors.altcraft.trigger import SubscriptionFilter

    chosen = SubscriptionFilter(email="Info@Bücher.DE", not_strict=False)
    assert chosen.email == "Info@xn--bcher-kva.de"
    with pytest.raises(ValueError, match="non-ASCII"):
        SubscriptionFilter(email="josé@zylker.com", not_strict=False)
