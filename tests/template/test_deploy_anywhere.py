"""What a real account needs that no linter checks: a second stack in the same region, a low
concurrency quota, parameter combinations AWS refuses, alarms that reach a person, and data that
survives `sam delete`. Each test reads template.yaml, or the template SAM makes of it."""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from tests.conftest import ROOT
from trigger_relay_local.stack.template import RuleFailed, check_rules, translate

TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    """Plain CloudFormation, as the AWS::Serverless transform makes it on deploy."""
    packaged = copy.deepcopy(template)
    for resource in packaged["Resources"].values():
        properties = resource.get("Properties", {})
        for field in ("CodeUri", "ContentUri"):
            if field in properties:
                properties[field] = "s3://artifacts/code.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    return translate(packaged)


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


# ---------------------------------------------------------------- a tiny CloudFormation resolver


def resolve(node: Any, stack: str, template: dict[str, Any], params: dict[str, str]) -> Any:
    """The value a property takes in a stack of that name: enough of CloudFormation's
    intrinsic functions to compare the names two stacks would ask for."""
    if isinstance(node, list):
        return [resolve(n, stack, template, params) for n in node]
    if not isinstance(node, dict):
        return node
    if len(node) != 1:
        return {k: resolve(v, stack, template, params) for k, v in node.items()}
    ((function, argument),) = node.items()
    pseudo = {"AWS::StackName": stack, "AWS::Region": "eu-west-1", "AWS::AccountId": "1" * 12}

    def ref(name: str) -> str:
        if name in pseudo:
            return pseudo[name]
        if name in template["Parameters"]:
            return params.get(name, str(template["Parameters"][name].get("Default", "")))
        return f"{stack}-{name}-GENERATED"  # a physical id CloudFormation makes unique

    if function == "Ref":
        return ref(argument)
    if function == "Fn::Sub":
        text, names = (argument, {}) if isinstance(argument, str) else argument
        values = {k: resolve(v, stack, template, params) for k, v in names.items()}
        return re.sub(
            r"\$\{([^}!]+)\}",
            lambda m: str(values.get(m[1], ref(m[1].split(".")[0]))),
            text,
        )
    if function == "Fn::Join":
        separator, items = argument
        return separator.join(str(i) for i in resolve(items, stack, template, params))
    if function == "Fn::Split":
        separator, text = argument
        return str(resolve(text, stack, template, params)).split(separator)
    if function == "Fn::If":
        condition, yes, no = argument
        chosen = yes if condition_holds(condition, stack, template, params) else no
        return resolve(chosen, stack, template, params)
    if function == "Fn::GetAtt":
        return f"{stack}-{argument[0]}-GENERATED"
    return {function: resolve(argument, stack, template, params)}


def condition_holds(
    name: str, stack: str, template: dict[str, Any], params: dict[str, str]
) -> bool:
    def holds(node: Any) -> bool:
        ((function, argument),) = node.items()
        if function == "Fn::Equals":
            a, b = (resolve(x, stack, template, params) for x in argument)
            return str(a) == str(b)
        if function == "Fn::Not":
            return not holds(argument[0])
        if function == "Condition":
            return holds(template["Conditions"][argument])
        raise AssertionError(f"condition function {function} not resolved here")

    return holds(template["Conditions"][name])


# Properties that name a resource where names are unique per account and region (or per
# account: IAM, Glue catalogs per region). Two stacks asking for the same one fail.
NAMED = {
    "AWS::Scheduler::Schedule": ("Name",),
    "AWS::Lambda::LayerVersion": ("LayerName",),
    "AWS::Lambda::Function": ("FunctionName",),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::CloudWatch::Dashboard": ("DashboardName",),
    "AWS::CloudWatch::Alarm": ("AlarmName",),
    "AWS::SQS::Queue": ("QueueName",),
    "AWS::SNS::Topic": ("TopicName",),
    "AWS::DynamoDB::Table": ("TableName",),
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::IAM::Role": ("RoleName",),
    "AWS::KMS::Alias": ("AliasName",),
    "AWS::Events::Rule": ("Name",),
    "AWS::Glue::Database": ("DatabaseInput", "Name"),
}


def names_for(stack: str, transformed: dict[str, Any]) -> dict[str, str]:
    names = {}
    for logical_id, resource in transformed["Resources"].items():
        path = NAMED.get(resource["Type"])
        value: Any = resource.get("Properties", {})
        for step in path or ("-",):
            value = value.get(step) if isinstance(value, dict) else None
        if path and value is not None:
            names[logical_id] = str(resolve(value, stack, transformed, {}))
    return names


def test_a_second_stack_in_the_same_account_and_region_asks_for_no_name_the_first_has(
    transformed: dict[str, Any],
) -> None:
    first, second = names_for("relay-a", transformed), names_for("relay-b", transformed)
    # the ones that used to collide are named, and after their stack
    for logical_id in ("RecipientsSyncFunctionSchedule", "RecipientsDatabase"):
        assert logical_id in first, f"{logical_id} has no explicit name to check"
    assert any(k.startswith("SharedLayer") for k in first)
    clashes = {k: v for k, v in first.items() if second.get(k) == v}
    assert not clashes, f"both stacks would create these names: {clashes}"
    assert first["RecipientsDatabase"] == "relay_a"  # Glue: lower case, digits and _ only


def test_every_name_fits_its_service_for_a_stack_name_of_up_to_59_characters(
    transformed: dict[str, Any],
) -> None:
    # Scheduler: 1-64 of [0-9a-zA-Z-_.]; Lambda layers: 140; log groups: 512; Glue: 255.
    limits = {"Name": 64, "LayerName": 140, "LogGroupName": 512, "DashboardName": 255}
    stack = "r" * 59
    for logical_id, name in names_for(stack, transformed).items():
        kind = transformed["Resources"][logical_id]["Type"]
        limit = limits.get(NAMED[kind][-1], 255)
        assert len(name) <= limit, (logical_id, len(name))


# ---------------------------------------------------------------- low-concurrency accounts


def test_the_sync_reserves_no_concurrency_unless_asked(template: dict[str, Any]) -> None:
    reserved = template["Resources"]["RecipientsSyncFunction"]["Properties"][
        "ReservedConcurrentExecutions"
    ]
    assert reserved == {
        "Fn::If": [
            "HasSyncReservation",
            {"Ref": "RecipientsSyncReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert template["Parameters"]["RecipientsSyncReservedConcurrency"]["Default"] == 0
    for name, function in of_type(template, "AWS::Serverless::Function").items():
        value = function["Properties"].get("ReservedConcurrentExecutions")
        assert not isinstance(value, int), f"{name} reserves concurrency unconditionally"
    assert not condition_holds("HasSyncReservation", "s", template, {})
    assert condition_holds(
        "HasSyncReservation", "s", template, {"RecipientsSyncReservedConcurrency": "1"}
    )


# ---------------------------------------------------------------- parameters AWS refuses


@pytest.mark.parametrize(
    ("parameters", "refusal"),
    [
        (
            {"TriggerBatchingWindowSeconds": "0"},  # with the default batch of 1000
            "Set TriggerBatchingWindowSeconds to 1 or more, or TriggerBatchSize to 10 or less",
        ),
        (
            {"TriggerBatchingWindowSeconds": "0", "TriggerBatchSize": "11"},
            "Set TriggerBatchingWindowSeconds to 1 or more",
        ),
        (
            {"CreateEventBus": "true"},  # with the default bus name "default"
            'CreateEventBus=true needs an EventBusName other than "default"',
        ),
    ],
)
def test_parameter_combinations_aws_would_refuse_mid_deploy_are_refused_up_front(
    template: dict[str, Any], transformed: dict[str, Any], parameters: dict, refusal: str
) -> None:
    with pytest.raises(RuleFailed, match=re.escape(refusal)):
        check_rules(template, parameters)
    assert transformed["Rules"] == template["Rules"], "SAM passes the rules to CloudFormation"


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"TriggerBatchingWindowSeconds": "0", "TriggerBatchSize": "10"},
        {"CreateEventBus": "true", "EventBusName": "relay-events"},
    ],
)
def test_combinations_aws_accepts_pass_the_rules(template: dict[str, Any], parameters) -> None:
    check_rules(template, parameters)


# ---------------------------------------------------------------- alarms reach a person


def test_the_alarm_topic_uses_a_key_whose_policy_lets_cloudwatch_publish(
    template: dict[str, Any],
) -> None:
    topic = template["Resources"]["AlarmTopic"]["Properties"]
    key_ref = topic["KmsMasterKeyId"]
    assert isinstance(key_ref, dict) and "Ref" in key_ref, "an AWS-managed key alias"
    key = template["Resources"][key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [
        s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch and cloudwatch[0]["Effect"] == "Allow"
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])
    # and the account keeps control of its key
    assert any(s["Action"] == "kms:*" and "AWS" in s["Principal"] for s in statements)
    for name, alarm in of_type(template, "AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name


def test_a_crashing_or_timed_out_sync_is_not_silent(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    alarms = of_type(template, "AWS::CloudWatch::Alarm").values()
    errors = [
        a["Properties"]
        for a in alarms
        if a["Properties"].get("MetricName") == "Errors"
        and a["Properties"]["Dimensions"][0]["Value"] == {"Ref": "RecipientsSyncFunction"}
    ]
    assert errors, "no alarm on the sync function's errors"
    schedule = transformed["Resources"]["RecipientsSyncFunctionSchedule"]["Properties"]["Target"]
    assert json.loads(schedule["Input"]), "the tick's input is explicit"
    assert schedule["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    dlq = schedule["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    invoke_config = transformed["Resources"]["RecipientsSyncFunctionEventInvokeConfig"]
    assert invoke_config["Properties"]["MaximumRetryAttempts"] >= 1
    function = transformed["Resources"]["RecipientsSyncFunction"]["Properties"]
    assert function["DeadLetterConfig"]["TargetArn"] == {"Fn::GetAtt": [dlq, "Arn"]}
    depth = [
        a["Properties"]
        for a in alarms
        if a["Properties"].get("Dimensions")
        and a["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [dlq, "QueueName"]}
    ]
    assert depth, "nothing alarms when a scheduled run lands in the dead-letter queue"


def test_checkov_skips_give_reasons_true_of_the_resource(template: dict[str, Any]) -> None:
    for name, function in of_type(template, "AWS::Serverless::Function").items():
        sources = {e["Type"] for e in function["Properties"].get("Events", {}).values()}
        for skip in function.get("Metadata", {}).get("checkov", {}).get("skip", []):
            if "SQS-triggered" in skip["comment"]:
                assert "SQS" in sources, f"{name}: {skip['id']} says SQS-triggered; it is not"
            if "ReservedConcurrentExecutions" in skip["comment"] or "reserved" in skip["comment"]:
                pytest.fail(f"{name}: {skip['id']} relies on a reservation")


def test_deferred_messages_and_a_stuck_backlog_are_visible(template: dict[str, Any]) -> None:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    dashboard = json.loads(re.sub(r"\$\{[^}]*\}", "X", body))
    metrics = {
        m[1]
        for w in dashboard["widgets"]
        for m in w["properties"]["metrics"]
        if len(m) > 1 and isinstance(m[1], str)
    }
    assert {"ApproximateNumberOfMessagesDelayed", "ApproximateAgeOfOldestMessage"} <= metrics
    alarm = template["Resources"]["BacklogNotDrainingAlarm"]["Properties"]
    watched = {
        m["MetricStat"]["Metric"]["MetricName"]
        for m in alarm["Metrics"]
        if "MetricStat" in m
        and m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]
        == {"Fn::GetAtt": ["IngestQueue", "QueueName"]}
    }
    assert watched == {"ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesDelayed"}
    (returned,) = [m for m in alarm["Metrics"] if m["ReturnData"]]
    assert "DIFF(" in returned["Expression"], "alarms on a backlog that does not shrink"


def test_each_stacks_metrics_and_alarms_are_its_own(template: dict[str, Any]) -> None:
    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    assert environment["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}
    own = [
        a["Properties"]
        for a in of_type(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == "TriggerRelay"
    ]
    assert own
    for alarm in own:
        assert alarm["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}]
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert '"service", "trigger-relay"' not in body
    assert body.count('"service", "${AWS::StackName}"') >= 4


def test_functions_log_to_groups_the_stack_creates_first(template: dict[str, Any]) -> None:
    groups = of_type(template, "AWS::Logs::LogGroup")
    for name, function in of_type(template, "AWS::Serverless::Function").items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]
        assert group == {"Ref": f"{name}LogGroup"}, name
        group_name = groups[f"{name}LogGroup"]["Properties"]["LogGroupName"]["Fn::Sub"]
        assert "${AWS::StackName}" in group_name
        assert f"${{{name}}}" not in group_name, "the name Lambda itself creates: a race"


# ---------------------------------------------------------------- data on `sam delete`

KEPT = {"RecipientsBucket", "CursorTable", "IngestDeadLetterQueue"}
DROPPED = {"QuotaTable", "LedgerTable", "IngestQueue", "SyncDeadLetterQueue"}


def test_each_stateful_resource_says_what_happens_to_its_data(template: dict[str, Any]) -> None:
    stateful = {
        name
        for kind in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SQS::Queue")
        for name in of_type(template, kind)
    }
    assert stateful == KEPT | DROPPED, "a new stateful resource: decide and document its policy"
    for name in stateful:
        resource = template["Resources"][name]
        expected = "Retain" if name in KEPT else "Delete"
        assert resource.get("DeletionPolicy") == expected, name
        assert resource.get("UpdateReplacePolicy") == expected, name
    deploy_doc = (ROOT / "docs" / "deploy.md").read_text()
    for name in stateful:
        assert name in deploy_doc, f"docs/deploy.md does not say what happens to {name}"


# ---------------------------------------------------------------- samconfig.toml


def test_samconfig_has_a_non_interactive_profile_beside_the_interactive_one(
    template: dict[str, Any],
) -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["default"]["deploy"]["parameters"]["confirm_changeset"] is True
    ci = config["ci"]["deploy"]["parameters"]
    assert ci["confirm_changeset"] is False
    for profile in ("default", "ci"):
        deploy = config[profile]["deploy"]["parameters"]
        assert "CAPABILITY_IAM" in deploy["capabilities"]
        names = {o.split("=", 1)[0] for o in deploy["parameter_overrides"]}
        assert names <= set(template["Parameters"]), (
            f"{profile}: {names - set(template['Parameters'])}"
        )
        check_rules(template, dict(o.split("=", 1) for o in deploy["parameter_overrides"]))


def test_samconfig_options_are_ones_sam_deploy_knows() -> None:
    sam = Path(sys.executable).parent / "sam"
    help_text = subprocess.run(
        [str(sam) if sam.exists() else "sam", "deploy", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    ).stdout
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for profile in ("default", "ci"):
        for option in config[profile]["deploy"]["parameters"]:
            assert f"--{option.replace('_', '-')}" in help_text, (profile, option)


# ---------------------------------------------------------------- grants and the ingest rule

# Granted to the role for AWS itself to use, not the code: Lambda sends a failed asynchronous
# invocation to the function's dead-letter queue with the function's role.
# https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
PLATFORM_GRANTS = {"DeadLetterQueuePolicy"}


def actions_the_code_calls() -> set[str]:
    """Every IAM action a boto3 call in the functions' code needs, read from the code: the
    client methods it calls, as IAM names them (a transaction's parts by their kind)."""
    from trigger_relay_local.lambda_runtime.aws_calls import _ACTION_OF

    code = "\n".join(
        path.read_text()
        for folder in ("layers/common/trigger_relay", "functions")
        for path in (ROOT / folder).rglob("*.py")
    )
    services = {
        "dynamodb": "dynamodb",
        "s3": "s3",
        "sqs": "sqs",
        "secretsmanager": "secretsmanager",
    }
    import botocore.session

    session = botocore.session.get_session()
    actions = set()
    for service in services:
        model = session.get_service_model(service)
        for operation in model.operation_names:
            method = re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
            if re.search(rf"\.{method}\(", code):
                actions.add(f"{service}:{_ACTION_OF.get((service, operation), operation)}")
    if "TransactItems" in code:
        actions |= {
            f"dynamodb:{kind}Item"
            for kind in ("Put", "Update", "Delete", "ConditionCheck")
            if f'"{kind}"' in code
        }
    return actions


def test_every_grant_in_the_functions_roles_is_an_action_their_code_calls(
    transformed: dict[str, Any],
) -> None:
    used = actions_the_code_calls()
    assert {"dynamodb:UpdateItem", "s3:PutObject", "sqs:SendMessage"} <= used
    for name, role in of_type(transformed, "AWS::IAM::Role").items():
        principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        if principal != {"Service": ["lambda.amazonaws.com"]}:
            continue
        for policy in role["Properties"].get("Policies", []):
            if policy["PolicyName"] in PLATFORM_GRANTS:
                continue
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                for action in actions if isinstance(actions, list) else [actions]:
                    assert any(fnmatch.fnmatchcase(u, action) for u in used), (
                        f"{name} grants {action}, which no code path calls"
                    )


def test_the_ingest_rule_filters_by_source_prefix_only_as_explain_and_send_assume(
    template: dict[str, Any],
) -> None:
    from trigger_relay_cli.explain import source_prefix_default

    rule = template["Resources"]["IngestRule"]["Properties"]
    assert rule["EventPattern"] == {"source": [{"prefix": {"Ref": "EventSourcePrefix"}}]}
    assert source_prefix_default() == template["Parameters"]["EventSourcePrefix"]["Default"]
    routes_doc = (ROOT / "docs" / "routes.md").read_text()
    assert "EventSourcePrefix" in routes_doc and "drops an" in routes_doc
