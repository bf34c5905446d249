"""The infrastructure contract in ``template.yaml``: security, data safety, retries and the runtime contract.

The ``sam`` tests run the real tools (sam, cfn-lint, checkov) from ``.venv-tools``, offline.
"""

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.standins.template import (
    ROOT,
    load_template,
    results_table_create_args,
    results_table_ttl_attribute,
)

TOOLS_BIN = ROOT / ".venv-tools" / "bin"
EVENTS = ROOT / "events"
API_GATEWAY_INTEGRATION_TIMEOUT_S = 29
RUNTIME_ENV_VARS = {
    "TABLE_NAME",
    "STRIPE_SECRET_ID",
    "STRIPE_API_BASE",
    "STRIPE_API_VERSION",
    "DESTINATION_IDS",
    "RESULT_RETENTION_DAYS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
API_ROUTES = {
    ("POST", "/destinations/{destination_id}/ping"),
    ("GET", "/destinations/{destination_id}/pings"),
    ("GET", "/destinations/{destination_id}/transitions"),
    ("POST", "/destinations/{destination_id}/mute"),
    ("DELETE", "/destinations/{destination_id}/mute"),
    ("GET", "/destinations"),
}
RECEIPT_ROUTES = {("POST", "/webhooks/stripe"), ("POST", "/receipts")}
# Catch-alls: signed requests no route above takes reach a function (404/405), not API Gateway's 403.
CATCH_ALL_ROUTES = {("ANY", "/{proxy+}"), ("ANY", "/")} | {("ANY", path) for _, path in API_ROUTES}
RECEIPT_CATCH_ALL_ROUTES = {("ANY", path) for _, path in RECEIPT_ROUTES}
# What API Gateway answers itself: all in the API's error shape.
GATEWAY_RESPONSE_TYPES = {
    "DEFAULT_4XX",
    "DEFAULT_5XX",
    "MISSING_AUTHENTICATION_TOKEN",
    "INVALID_SIGNATURE",
    "EXPIRED_TOKEN",
    "ACCESS_DENIED",
    "THROTTLED",
    "REQUEST_TOO_LARGE",
    "INTEGRATION_TIMEOUT",
}
APP_SOURCES = ROOT / "layers" / "common" / "stripe_monitor"
FUNCTION_SOURCES = ROOT / "functions" / "ping"
# boto3 DynamoDB client calls, e.g. ``client.batch_get_item(`` -> dynamodb:BatchGetItem
DYNAMODB_CALL = re.compile(
    r"\.(get_item|put_item|update_item|delete_item|batch_get_item|batch_write_item|query|scan"
    r"|transact_write_items|transact_get_items|describe_table)\("
)
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
FOURTEEN_DAYS_S = 14 * 24 * 3600


# ------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = template["Resources"]
    return result


def effective_properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's properties with the Globals' environment merged in, as SAM does."""
    props: dict[str, Any] = dict(template["Resources"][logical_id]["Properties"])
    shared = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = props.get("Environment", {}).get("Variables", {})
    props["Environment"] = {"Variables": shared | own}
    return props


@pytest.fixture(scope="module")
def function(template: dict[str, Any]) -> dict[str, Any]:
    return effective_properties(template, "PingFunction")


@pytest.fixture(scope="module")
def receipt_function(template: dict[str, Any]) -> dict[str, Any]:
    return effective_properties(template, "ReceiptFunction")


def events_of_type(function: dict[str, Any], event_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: event.get("Properties", {})
        for name, event in function.get("Events", {}).items()
        if event["Type"] == event_type
    }


def schedule_event(function: dict[str, Any]) -> dict[str, Any]:
    schedules = events_of_type(function, "ScheduleV2")
    assert len(schedules) == 1, f"expected one ScheduleV2 event, found {sorted(schedules)}"
    return next(iter(schedules.values()))


def policy_statements(function: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for policy in function.get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            yield from policy["Statement"]


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def resources_of(statement: dict[str, Any]) -> list[Any]:
    resource = statement.get("Resource", [])
    return resource if isinstance(resource, list) else [resource]


def tool(name: str) -> Path:
    path = TOOLS_BIN / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: the infrastructure tools live in their own virtual environment; "
            "create it with `make .venv-tools/.installed`",
            pytrace=False,
        )
    return path


def run_tool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# ------------------------------------------------------------------------------------------ tools


@pytest.mark.sam
def test_sam_validate_lint_reports_nothing() -> None:
    result = run_tool(
        tool("sam"), "validate", "--lint", "--template", "template.yaml", "--region", "us-east-1"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout
    assert "[[" not in result.stdout + result.stderr, "cfn-lint findings: " + result.stdout + result.stderr


@pytest.mark.sam
def test_cfn_lint_reports_no_errors_and_no_warnings() -> None:
    result = run_tool(tool("cfn-lint"), "template.yaml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.sam
def test_checkov_finds_no_failed_checks_beyond_the_documented_skip_list() -> None:
    result = run_tool(
        tool("checkov"),
        "--file",
        "template.yaml",
        "--framework",
        "cloudformation",
        "--config-file",
        ".checkov.yaml",
        "--skip-download",
        "--quiet",
        "--output",
        "json",
    )

    report = json.loads(result.stdout)
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == [], "checkov failures (fix them, or skip with a reason in .checkov.yaml)"
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0, "checkov checked nothing: did it parse template.yaml?"
    assert result.returncode == 0, result.stderr


def test_every_checkov_skip_has_a_reason() -> None:
    lines = (ROOT / ".checkov.yaml").read_text().splitlines()
    skipped = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV")]

    assert skipped, "the skip list is empty: drop .checkov.yaml or keep the reasons with it"
    for index in skipped:
        assert lines[index - 1].strip().startswith("#"), f"no reason above {lines[index].strip()}"


# ------------------------------------------------------------------------------------------ API


def test_api_requires_iam_signatures_and_invokes_with_the_function_permission(
    resources: dict[str, Any],
) -> None:
    api = resources["MonitorApi"]
    auth = api["Properties"]["Auth"]

    assert api["Type"] == "AWS::Serverless::Api"
    assert auth["DefaultAuthorizer"] == "AWS_IAM"
    assert auth["InvokeRole"] == "NONE"


def test_every_api_route_needs_iam_except_the_signed_webhook(resources: dict[str, Any]) -> None:
    routes, public = set(), set()
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for name, props in events_of_type(resource["Properties"], "Api").items():
            auth = props.get("Auth", {})
            route = (props["Method"].upper(), props["Path"])
            assert props.get("RestApiId") == {"Ref": "MonitorApi"}, (
                f"{logical_id}.{name} is not on MonitorApi"
            )
            assert auth.get("InvokeRole", "NONE") == "NONE", f"{name} invokes with caller credentials"
            if auth.get("Authorizer", "AWS_IAM") != "AWS_IAM":
                public.add((logical_id, route))
            routes.add(route)
        assert not events_of_type(resource["Properties"], "HttpApi"), f"{logical_id} has an HTTP API"

    assert routes == API_ROUTES | RECEIPT_ROUTES | CATCH_ALL_ROUTES | RECEIPT_CATCH_ALL_ROUTES
    assert public == {("ReceiptFunction", ("POST", "/webhooks/stripe"))}


def api_routes_of(function: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p["Method"].upper(), p["Path"]) for p in events_of_type(function, "Api").values()}


def test_catch_all_routes_send_other_methods_and_unknown_paths_to_the_owning_function(
    function: dict[str, Any], receipt_function: dict[str, Any]
) -> None:
    ping_routes, receipt_routes = api_routes_of(function), api_routes_of(receipt_function)

    assert ping_routes == API_ROUTES | CATCH_ALL_ROUTES
    assert receipt_routes == RECEIPT_ROUTES | RECEIPT_CATCH_ALL_ROUTES
    # Each function answers the other methods on its own paths (405), never on the other's.
    for routes in (ping_routes, receipt_routes):
        own_paths = {path for method, path in routes if method != "ANY"}
        assert own_paths <= {path for method, path in routes if method == "ANY"}
    assert not {path for _, path in ping_routes} & {path for _, path in receipt_routes}


def test_api_gateway_answers_in_the_api_error_shape(resources: dict[str, Any]) -> None:
    responses = resources["MonitorApi"]["Properties"]["GatewayResponses"]

    assert set(responses) == GATEWAY_RESPONSE_TYPES
    for response_type, response in responses.items():
        [(content_type, body_template)] = response["ResponseTemplates"].items()
        assert content_type == "application/json"
        # Not VTL: simple substitution; messageString is API Gateway's message as a quoted JSON string.
        rendered = body_template.replace("$context.error.messageString", json.dumps('a "quoted" message'))
        assert "$" not in rendered, f"{response_type}: unexpected variable in {body_template}"
        body = json.loads(rendered)
        assert set(body) == {"error"}, response_type
        assert set(body["error"]) == {"code", "message"}, response_type
        assert re.fullmatch(r"[a-z_]+", body["error"]["code"]), response_type
    missing_token = responses["MISSING_AUTHENTICATION_TOKEN"]
    # Unsigned requests to real routes get this response too: it must stay a 403, and say both causes.
    assert missing_token.get("StatusCode", "403") == "403"
    message = json.loads(missing_token["ResponseTemplates"]["application/json"])["error"]["message"]
    assert "no such route" in message and "SigV4" in message
    assert all(
        "StatusCode" not in responses[t] for t in GATEWAY_RESPONSE_TYPES - {"MISSING_AUTHENTICATION_TOKEN"}
    )


def test_api_stage_is_throttled_regional_access_logged_and_traced_on_request(
    resources: dict[str, Any],
) -> None:
    props = resources["MonitorApi"]["Properties"]
    settings = props["MethodSettings"]

    assert props["StageName"] == "v1"
    assert props["TracingEnabled"] == {"Fn::If": ["TracingOn", True, False]}
    assert props["EndpointConfiguration"]["Type"] == "REGIONAL"
    assert all(s["ThrottlingBurstLimit"] > 0 and s["ThrottlingRateLimit"] > 0 for s in settings)
    assert all(s["MetricsEnabled"] is False for s in settings)  # detailed metrics cost $0.30 each
    assert props["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert props["AccessLogSetting"]["Format"].startswith("{")


def test_api_event_fixtures_target_declared_routes(function: dict[str, Any]) -> None:
    declared = {(p["Method"].upper(), p["Path"]) for p in events_of_type(function, "Api").values()}

    for name in ("api_ping.json", "api_history.json", "api_destinations.json"):
        event = json.loads((EVENTS / name).read_text())
        context = event["requestContext"]
        assert (event["httpMethod"], event["resource"]) in declared, name
        assert (context["httpMethod"], context["resourcePath"]) == (event["httpMethod"], event["resource"])
        assert context["stage"] == "v1"
        assert context["identity"]["userArn"], f"{name} does not look IAM-authorised"


# ------------------------------------------------------------------------------------------ function


def test_function_runs_python313_on_the_architecture_parameter(
    template: dict[str, Any], resources: dict[str, Any], function: dict[str, Any]
) -> None:
    layer = resources["CommonLayer"]

    assert function["Runtime"] == "python3.13"
    assert function["Handler"] == "app.lambda_handler"
    assert function["Architectures"] == [{"Ref": "Architecture"}]
    assert function["Layers"] == [{"Ref": "CommonLayer"}]
    assert set(template["Parameters"]["Architecture"]["AllowedValues"]) == {"arm64", "x86_64"}
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == [{"Ref": "Architecture"}]
    # Built by layers/common/Makefile for the architecture (tests/test_build.py checks what it ships).
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Metadata"]["BuildArchitecture"] == {"Ref": "Architecture"}


def test_function_timeout_is_below_api_gateway_integration_timeout(function: dict[str, Any]) -> None:
    assert function["Timeout"] < API_GATEWAY_INTEGRATION_TIMEOUT_S


def test_function_environment_carries_the_runtime_contract(function: dict[str, Any]) -> None:
    variables = function["Environment"]["Variables"]

    missing = RUNTIME_ENV_VARS - set(variables)
    assert missing == set()
    assert variables["TABLE_NAME"] == {"Ref": "ResultsTable"}
    assert variables["STRIPE_SECRET_ID"] == {"Ref": "StripeSecretId"}
    assert variables["POWERTOOLS_SERVICE_NAME"] == "stripe-destination-monitor"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "StripeDestinationMonitor"


def test_local_env_file_overrides_only_the_ping_function(resources: dict[str, Any]) -> None:
    env_file = json.loads((EVENTS / "env.local.json").read_text())

    assert set(env_file) == {"PingFunction"}
    assert "PingFunction" in resources


def test_function_logs_json_to_a_log_group_with_retention(
    resources: dict[str, Any], function: dict[str, Any]
) -> None:
    logging = function["LoggingConfig"]
    log_group = resources[logging["LogGroup"]["Ref"]]

    assert logging["LogFormat"] == "JSON"
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_function_concurrency_is_bounded(function: dict[str, Any]) -> None:
    assert 0 < function["ReservedConcurrentExecutions"] <= 20


def test_function_dynamodb_and_secrets_permissions_name_exact_resources(function: dict[str, Any]) -> None:
    scoped = [
        s
        for s in policy_statements(function)
        if any(a.startswith(("dynamodb:", "secretsmanager:")) for a in actions_of(s))
    ]
    template_policies = [p for p in function["Policies"] if isinstance(p, dict) and "Statement" not in p]
    # A conditional policy (the webhook signing secret, when one is configured): its policy branch.
    template_policies = [p["Fn::If"][1] if "Fn::If" in p else p for p in template_policies]

    assert scoped, "no DynamoDB statement found"
    for statement in scoped:
        assert statement["Effect"] == "Allow"
        for resource in resources_of(statement):
            assert "*" not in json.dumps(resource), f"wildcard resource in {statement}"
        assert not any(a.endswith("*") for a in actions_of(statement))
    for policy in template_policies:
        assert "*" not in json.dumps(policy), f"wildcard in {policy}"
        assert set(policy) <= {"AWSSecretsManagerGetSecretValuePolicy", "SNSPublishMessagePolicy"}, (
            f"unexpected policy template {policy}"
        )


def test_function_can_read_and_write_exactly_the_results_table(function: dict[str, Any]) -> None:
    needed = {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
    }
    dynamodb = [
        s for s in policy_statements(function) if any(a.startswith("dynamodb:") for a in actions_of(s))
    ]

    granted = {a for s in dynamodb for a in actions_of(s)}
    targets = [r for s in dynamodb for r in resources_of(s)]
    assert granted == needed
    assert targets == [{"Fn::GetAtt": ["ResultsTable", "Arn"]}]


def test_function_is_granted_exactly_the_dynamodb_calls_the_code_makes(function: dict[str, Any]) -> None:
    calls = {
        match.group(1)
        for source in [*APP_SOURCES.rglob("*.py"), *FUNCTION_SOURCES.rglob("*.py")]
        for match in DYNAMODB_CALL.finditer(source.read_text())
    }
    granted = {a for s in policy_statements(function) for a in actions_of(s) if a.startswith("dynamodb:")}

    needed = {"dynamodb:" + "".join(part.title() for part in call.split("_")) for call in calls}
    assert needed - granted == set(), "the code calls DynamoDB operations the function may not use"
    assert granted - needed == set(), "the function may use DynamoDB operations the code never calls"


def test_function_can_read_only_the_configured_secret(function: dict[str, Any]) -> None:
    policies = [
        p
        for p in function["Policies"]
        if isinstance(p, dict) and "AWSSecretsManagerGetSecretValuePolicy" in p
    ]

    assert len(policies) == 1
    secret_arn = policies[0]["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]
    condition, given_arn, from_name = secret_arn["Fn::If"]
    assert condition == "StripeSecretIdIsArn"
    assert given_arn == {"Ref": "StripeSecretId"}
    assert from_name["Fn::Sub"].endswith(":secret:${StripeSecretId}-??????")


def test_async_failures_land_in_an_encrypted_queue(
    resources: dict[str, Any], function: dict[str, Any]
) -> None:
    config = function["EventInvokeConfig"]
    on_failure = config["DestinationConfig"]["OnFailure"]

    assert config["MaximumRetryAttempts"] == 2
    assert 60 <= config["MaximumEventAgeInSeconds"] <= 21600
    assert on_failure["Type"] == "SQS"
    queue = on_failure["Destination"]["Fn::GetAtt"][0]
    assert resources[queue]["Type"] == "AWS::SQS::Queue"
    sends = [s for s in policy_statements(function) if "sqs:SendMessage" in actions_of(s)]
    assert [r for s in sends for r in resources_of(s)] == [{"Fn::GetAtt": [queue, "Arn"]}]


# ------------------------------------------------------------------------------------------ schedule


def test_schedule_input_carries_the_scheduled_time(function: dict[str, Any]) -> None:
    schedule = schedule_event(function)
    fixture = json.loads((EVENTS / "schedule.json").read_text())

    schedule_input = json.loads(schedule["Input"])
    assert schedule_input == {"scheduled_time": SCHEDULED_TIME}
    assert set(fixture) <= set(schedule_input)


def test_schedule_expression_and_state_come_from_parameters(function: dict[str, Any]) -> None:
    schedule = schedule_event(function)

    assert schedule["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert schedule["State"] == {"Ref": "ScheduleState"}
    assert schedule["OmitName"] is True


def test_schedule_retries_and_dead_letters_undeliverable_runs(
    resources: dict[str, Any], function: dict[str, Any]
) -> None:
    schedule = schedule_event(function)
    retry = schedule["RetryPolicy"]
    dead_letter = schedule["DeadLetterConfig"]

    assert retry["MaximumRetryAttempts"] >= 1
    assert 60 <= retry["MaximumEventAgeInSeconds"] <= 86400
    if "Arn" in dead_letter:
        assert resources[dead_letter["Arn"]["Fn::GetAtt"][0]]["Type"] == "AWS::SQS::Queue"
    else:
        assert dead_letter["Type"] == "SQS"


# ------------------------------------------------------------------------------------------ data


def test_results_table_recovers_and_encrypts(resources: dict[str, Any]) -> None:
    props = resources["ResultsTable"]["Properties"]

    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_results_table_expires_results_on_expires_at(template: dict[str, Any]) -> None:
    assert results_table_ttl_attribute(template) == "expires_at"


def test_stateful_resources_survive_stack_deletion_and_replacement(resources: dict[str, Any]) -> None:
    kept = [
        name
        for name, resource in resources.items()
        if resource["Type"] in {"AWS::DynamoDB::Table", "AWS::Logs::LogGroup"}
    ]

    assert {"ResultsTable", "PingFunctionLogGroup", "ApiAccessLogGroup"} <= set(kept)
    for name in kept:
        assert resources[name].get("DeletionPolicy") == "Retain", name
        assert resources[name].get("UpdateReplacePolicy") == "Retain", name


def test_queues_are_encrypted_and_keep_messages_14_days(resources: dict[str, Any]) -> None:
    queues = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}

    assert set(queues) == {"DeadLetterQueue"}
    for name, props in queues.items():
        assert props["SqsManagedSseEnabled"] is True, name
        assert props["MessageRetentionPeriod"] == FOURTEEN_DAYS_S, name


def test_results_table_create_args_follow_the_template_keys(template: dict[str, Any]) -> None:
    args = results_table_create_args(template, "checks-local")

    assert args["TableName"] == "checks-local"
    assert args["KeySchema"] == [
        {"AttributeName": "destination_id", "KeyType": "HASH"},
        {"AttributeName": "pinged_at", "KeyType": "RANGE"},
    ]
    assert {d["AttributeName"]: d["AttributeType"] for d in args["AttributeDefinitions"]} == {
        "destination_id": "S",
        "pinged_at": "S",
    }
    assert args["BillingMode"] == "PAY_PER_REQUEST"
    assert "TableName" not in results_table_create_args(template)


def test_load_template_reads_short_tags_in_their_long_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "Resources:\n"
        "  R:\n"
        "    Type: X\n"
        "    Properties:\n"
        "      A: !Ref P\n"
        "      B: !GetAtt T.Endpoint.Address\n"
        "      C: !If [Cond, !Sub '${AWS::Region}', !Select [0, !Split [',', !Ref L]]]\n"
        "      D: !FindInMap [M, !Ref K, V]\n"
    )

    props = load_template(path)["Resources"]["R"]["Properties"]

    assert props["A"] == {"Ref": "P"}
    assert props["B"] == {"Fn::GetAtt": ["T", "Endpoint.Address"]}
    assert props["C"] == {
        "Fn::If": [
            "Cond",
            {"Fn::Sub": "${AWS::Region}"},
            {"Fn::Select": [0, {"Fn::Split": [",", {"Ref": "L"}]}]},
        ]
    }
    assert props["D"] == {"Fn::FindInMap": ["M", {"Ref": "K"}, "V"]}


# ------------------------------------------------------------------------------------------ outputs


def test_outputs_give_the_api_url_table_function_and_queues(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]

    assert {
        "ApiUrl",
        "ResultsTableName",
        "PingFunctionArn",
        "DeadLetterQueueUrl",
    } <= set(outputs)
    assert outputs["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${MonitorApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/v1"
    }
    assert outputs["ResultsTableName"]["Value"] == {"Ref": "ResultsTable"}
    assert outputs["PingFunctionArn"]["Value"] == {"Fn::GetAtt": ["PingFunction", "Arn"]}


ALARMED_METRICS = {
    ("StripeDestinationMonitor", "LostPings"),
    ("StripeDestinationMonitor", "CheckFailed"),
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    ("AWS/Lambda", "Errors"),
}


def test_alarms_cover_failures_silence_lost_pings_dead_letters_and_errors(resources: dict[str, Any]) -> None:
    alarms = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}

    assert {(a["Namespace"], a["MetricName"]) for a in alarms.values()} == ALARMED_METRICS
    assert all(a["AlarmActions"] == [{"Ref": "AlertTopic"}] for a in alarms.values())
    # The checks emit one custom metric, CheckFailed (1 or 0 each): failures sum it; a period without a
    # success has a minimum of 1, or no data at all (a stopped schedule), and both alarm.
    failing, no_success = alarms["FailingChecksAlarm"], alarms["NoSuccessfulCheckAlarm"]
    assert (failing["MetricName"], failing["Statistic"]) == ("CheckFailed", "Sum")
    assert (no_success["MetricName"], no_success["Statistic"]) == ("CheckFailed", "Minimum")
    assert (no_success["Threshold"], no_success["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert no_success["TreatMissingData"] == "breaching"
    assert no_success["EvaluationPeriods"] == {"Ref": "NoSuccessPeriods"}
    queues = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms.values() if a["Namespace"] == "AWS/SQS"
    }
    assert queues == {"DeadLetterQueue"}
    functions = {
        a["Dimensions"][0]["Value"]["Ref"] for a in alarms.values() if a["Namespace"] == "AWS/Lambda"
    }
    assert functions == {"PingFunction", "ReceiptFunction"}


def test_the_alert_topic_is_encrypted_published_to_and_optionally_mailed(
    resources: dict[str, Any], function: dict[str, Any]
) -> None:
    topic = resources["AlertTopic"]["Properties"]

    assert topic["KmsMasterKeyId"] == "alias/aws/sns"
    assert function["Environment"]["Variables"]["ALERT_TOPIC_ARN"] == {"Ref": "AlertTopic"}
    assert {
        "SNSPublishMessagePolicy": {"TopicName": {"Fn::GetAtt": ["AlertTopic", "TopicName"]}}
    } in function["Policies"]
    assert resources["AlertEmailSubscription"]["Condition"] == "HasAlertEmail"


def test_the_dashboard_shows_latency_outcomes_health_and_queue_depth(resources: dict[str, Any]) -> None:
    body = resources["MonitorDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    rendered = json.loads(
        body.replace("${AWS::Region}", "us-east-1")
        .replace("${DeadLetterQueue.QueueName}", "q1")
        .replace("${PingFunctionLogGroup}", "ping-logs")
        .replace("${ReceiptFunctionLogGroup}", "receipt-logs")
    )

    titles = " | ".join(w["properties"]["title"] for w in rendered["widgets"])
    for needed in ("latency per destination", "outcomes", "Health per destination", "Dead-letter queue"):
        assert needed.lower() in titles.lower()
    # Per-destination views read the log lines the code writes (free), not per-destination metrics.
    queries = [w["properties"]["query"] for w in rendered["widgets"] if w["type"] == "log"]
    assert all(q.startswith("SOURCE 'ping-logs'") for q in queries)
    for message in ("check recorded", "delivery recorded", "health changed"):
        assert any(f"message = '{message}'" in q for q in queries)
        assert (
            f'"{message}"'
            in (APP_SOURCES / "logic")
            .joinpath(
                "metrics.py"
                if message == "check recorded"
                else "deliveries.py"
                if "delivery" in message
                else "health_tracker.py"
            )
            .read_text()
        )
    assert "destination_id" not in json.dumps([w for w in rendered["widgets"] if w["type"] == "metric"])


def test_each_partner_bus_gets_a_conditional_rule_for_ping_events_only(resources: dict[str, Any]) -> None:
    rules = {k: r for k, r in resources.items() if r["Type"] == "AWS::Events::Rule"}

    assert set(rules) == {"ReceiptRule1", "ReceiptRule2", "ReceiptRule3"}
    for n, (logical_id, rule) in enumerate(sorted(rules.items()), start=1):
        props = rule["Properties"]
        assert rule["Condition"] == f"HasBus{n}"  # no rule when no bus is named
        assert props["EventPattern"] == {"detail-type": ["v2.core.event_destination.ping"]}
        [target] = props["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": ["ReceiptFunction", "Arn"]}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
        assert "DeadLetterConfig" in target
        permission = resources[f"{logical_id}Permission"]
        assert permission["Condition"] == f"HasBus{n}"
        assert permission["Properties"]["SourceArn"] == {"Fn::GetAtt": [logical_id, "Arn"]}


def test_the_receipt_function_reads_exactly_its_table_and_its_signing_secret(
    receipt_function: dict[str, Any],
) -> None:
    statements = policy_statements(receipt_function)
    dynamodb = [s for s in statements if any(a.startswith("dynamodb:") for a in actions_of(s))]
    secret_policy = next(p for p in receipt_function["Policies"] if isinstance(p, dict) and "Fn::If" in p)

    assert [r for s in dynamodb for r in resources_of(s)] == [{"Fn::GetAtt": ["ResultsTable", "Arn"]}]
    assert secret_policy["Fn::If"][0] == "HasWebhookSecret"
    assert "*" not in json.dumps(secret_policy).replace("??????", "")
    assert receipt_function["Environment"]["Variables"]["WEBHOOK_SECRET_ID"] == {
        "Ref": "WebhookSigningSecretId"
    }
    assert receipt_function["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"


def test_the_receipt_function_is_never_given_the_stripe_key(receipt_function: dict[str, Any]) -> None:
    assert "STRIPE_SECRET_ID" not in receipt_function["Environment"]["Variables"]
    assert "StripeSecretId" not in json.dumps(receipt_function["Policies"])


def test_alert_links_come_from_an_api_url_parameter_each_function_may_read_and_nothing_else(
    resources: dict[str, Any],
    function: dict[str, Any],
    receipt_function: dict[str, Any],
    template: dict[str, Any],
) -> None:
    parameter = resources["ApiUrlParameter"]["Properties"]
    name = {"Fn::Sub": "/${AWS::StackName}/api-url"}

    assert parameter["Name"] == name
    assert parameter["Value"] == template["Outputs"]["ApiUrl"]["Value"]
    for each in (function, receipt_function):
        assert each["Environment"]["Variables"]["API_URL_PARAMETER"] == name
        [read] = [s for s in policy_statements(each) if any(a.startswith("ssm:") for a in actions_of(s))]
        assert actions_of(read) == ["ssm:GetParameter"]
        arn = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/${AWS::StackName}/api-url"
        assert resources_of(read) == [{"Fn::Sub": arn}]


def test_tracing_is_one_parameter_for_both_functions_and_the_api_off_by_default(
    template: dict[str, Any], function: dict[str, Any], receipt_function: dict[str, Any]
) -> None:
    parameter = template["Parameters"]["Tracing"]

    assert (parameter["Default"], parameter["AllowedValues"]) == ("PassThrough", ["Active", "PassThrough"])
    assert template["Conditions"]["TracingOn"] == {"Fn::Equals": [{"Ref": "Tracing"}, "Active"]}
    for each in (function, receipt_function):
        assert each["Tracing"] == {"Ref": "Tracing"}
        # Off, the Tracer must not load the X-Ray SDK (its cold-start cost): Powertools reads this variable.
        assert each["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == {
            "Fn::If": ["TracingOn", "false", "true"]
        }


def test_the_dashboard_is_opt_in_and_its_per_destination_views_are_saved_queries_anyway(
    resources: dict[str, Any], template: dict[str, Any]
) -> None:
    assert template["Parameters"]["Dashboard"]["Default"] == "false"  # $3 a month beyond 3 free
    assert resources["MonitorDashboard"]["Condition"] == "HasDashboard"
    assert template["Outputs"]["DashboardName"]["Condition"] == "HasDashboard"
    queries = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Logs::QueryDefinition"]
    # One saved query a view, over the log lines the code writes (as the dashboard's log widgets).
    for message in ("check recorded", "delivery recorded", "health changed"):
        [query] = [q for q in queries if f"filter message = '{message}'" in q["QueryString"]]
        assert {"Ref": "PingFunctionLogGroup"} in query["LogGroupNames"]
