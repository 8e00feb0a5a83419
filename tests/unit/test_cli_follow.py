"""What `send` waits for: every route an event matches, a refused recipient included, on the local
stack and on a deployed one alike."""

from __future__ import annotations

import json

from tests.helpers.relay import ACCOUNTS, LAUNCH, route
from trigger_relay.pipeline.routes import parse_routes
from trigger_relay_cli.__main__ import _routes
from trigger_relay_cli.operations import expected
from trigger_relay_cli.target import Target

NO_PHONE = route(
    "welcome-sms", "altcraft.trigger", "{id: 85, matching: phone}", mapping="{phone: user.phone}"
)


def test_a_route_whose_recipient_is_refused_is_waited_for_too() -> None:
    routes = parse_routes(ACCOUNTS + LAUNCH + NO_PHONE)
    body = json.dumps({"id": "evt-1", "type": "user.signed_up", "user": {"email": "a@x.co"}})
    event_id, keys = expected(body, "m-1", {}, routes)
    assert event_id == "evt-1"
    assert sorted(keys) == ["evt-1#welcome-launch", "evt-1#welcome-sms"]


def test_a_deployed_stack_is_followed_with_the_routes_file_its_layer_was_built_from() -> None:
    routes = _routes(None, Target("prod", {}))
    assert routes is not None and routes.routes


def test_the_cli_imports_no_local_stack_code_until_a_local_stack_is_the_target() -> None:
    """Against a deployed stack, and to explain an event, the CLI needs boto3 and the layer,
    not moto, the SAM translator or the emulator."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    probe = (
        "import json, sys\n"
        "import trigger_relay_cli.__main__ as cli, trigger_relay_cli.operations\n"
        "import trigger_relay_cli.stored, trigger_relay_cli.status\n"
        "from trigger_relay_cli.explain import explain\n"
        "from trigger_relay_cli.target import Target\n"
        "routes = cli._routes(None, Target('prod', {}))\n"  # send and status on --stack
        "explain(json.load(open('events/sqs-order.json')), routes)\n"  # default source prefix
        "cli.main(['--workdir', 'no-stack-here', 'explain', 'events/sqs-order.json'])\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m.startswith(('moto', 'samtranslator', 'trigger_relay_local'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'layers' / 'common'}:{ROOT / 'local'}", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"  # after explain's own output
