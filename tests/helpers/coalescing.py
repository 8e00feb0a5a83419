"""What the coalescing tests share: an Altcraft bulk route, a quota like Zoho Marketing
Automation's (100 calls / 5 min, so slots are about 3 s apart), and signups with addresses long
enough that a few fill a call under the smallest body cap."""

from __future__ import annotations

from tests.helpers.relay import ACCOUNTS, Relay

# the account with a limit of 100 calls / 5 min and 10 s of waiting for slots
SLOW_ACCOUNTS = ACCOUNTS.replace(
    'base_url: "https://ac.example.com"}',
    'base_url: "https://ac.example.com", limits: {altcraft.bulk_trigger: '
    "{calls: 100, window_seconds: 300, max_wait_seconds: 10}}}",
)
CAPPED = "{trigger_id: 7, max_body_bytes: 1024}"  # Altcraft's smallest body cap
LONG_DOMAIN = ".".join(["d" * 60] * 3) + ".example"


def send_long_signups(r: Relay, count: int) -> None:
    """Signups whose addresses take about a third of a capped call each."""
    for n in range(count):
        r.send({"type": "user.signed_up", "user": {"email": f"user{n}@{LONG_DOMAIN}"}})
