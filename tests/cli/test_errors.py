"""Every way ``stripe-monitor`` can fail to get an answer ends in one clear line on stderr and exit code 3:
no credentials, an unknown profile, access denied (naming the permission), a signature refused, a stack not
found (or without the API's URL), an API out of reach, an unknown destination. And the ways it finds the
API: --api-url, --stack, and the stack samconfig.toml names."""

import json
import uuid

import pytest

from tests.cli.conftest import DEMO_CREDENTIALS, NO_INVOKE, cli_environment, one_line_error, run_cli
from tools.cli.locate import find_target
from tools.standins.aws import free_port


def cloudformation_stack(aws, outputs: dict[str, str]) -> str:
    """A stack in moto's CloudFormation with these outputs (and one resource, as a stack needs one)."""
    name = f"monitor-{uuid.uuid4().hex[:8]}"
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    aws.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    return name


def test_without_credentials_it_says_how_to_get_some(offline_cli):
    line = one_line_error(offline_cli("--api-url", "http://127.0.0.1:9", "status", credentials={}))

    assert line.startswith("stripe-monitor: no AWS credentials found: set AWS_PROFILE")


def test_an_unknown_profile_is_named(offline_cli):
    done = offline_cli("--profile", "nope", "--api-url", "http://127.0.0.1:9", "status", credentials={})

    assert one_line_error(done) == (
        "stripe-monitor: AWS profile 'nope' not found in ~/.aws/config or ~/.aws/credentials"
    )


def test_a_profile_from_the_credentials_file_signs_the_requests(stack, tmp_path):
    (tmp_path / "aws-credentials").write_text(
        "[ops]\n"
        f"aws_access_key_id = {DEMO_CREDENTIALS['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {DEMO_CREDENTIALS['AWS_SECRET_ACCESS_KEY']}\n"
    )

    done = run_cli(
        "--profile", "ops", "--api-url", stack.api_url, "status", env=cli_environment(tmp_path, {})
    )

    assert (done.returncode, done.stderr) == (0, "")


def test_access_denied_names_the_missing_permission(cli):
    line = one_line_error(cli("status", credentials=NO_INVOKE))

    assert line.startswith(
        "stripe-monitor: access denied: these AWS credentials are not allowed execute-api:Invoke on"
        " GET /destinations (grant execute-api:Invoke on the monitor's API; API Gateway said: User: "
        f"arn:aws:iam::123456789012:user/{NO_INVOKE['AWS_ACCESS_KEY_ID']} is not authorized"
    )


def test_a_refused_signature_points_at_the_credentials_and_region(cli):
    wrong = DEMO_CREDENTIALS | {"AWS_SECRET_ACCESS_KEY": "not-the-secret"}

    line = one_line_error(cli("status", credentials=wrong))

    assert line.startswith(
        "stripe-monitor: the API refused the request's signature: check the AWS credentials and the region"
        " (signed for us-east-1;"
    )


def test_an_api_out_of_reach_is_named(offline_cli):
    url = f"http://127.0.0.1:{free_port()}"

    line = one_line_error(offline_cli("--api-url", url, "status"))

    assert line.startswith(f"stripe-monitor: cannot reach the monitor's API at {url}: ")


@pytest.mark.parametrize("command", ["mute --for 1h", "unmute", "history", "transitions"])
def test_an_unknown_destination_is_one_line(stack, cli, command):
    name, *options = command.split()

    line = one_line_error(cli(name, "ed_test_61NeverSeenHere0009", *options))

    assert "unknown destination" in line and "ed_test_61NeverSeenHere0009" in line


def test_an_invalid_destination_id_is_the_apis_answer_in_one_line(cli):
    line = one_line_error(cli("history", "not-an-id"))

    assert line.startswith("stripe-monitor: GET /destinations/not-an-id/pings failed with HTTP 400 ")


def test_the_api_url_is_found_in_the_stacks_outputs(stack, aws, tmp_path):
    name = cloudformation_stack(aws, {"ApiUrl": stack.api_url})
    env = cli_environment(tmp_path, AWS_ENDPOINT_URL=aws.endpoint_url)

    done = run_cli("--stack", name, "status", "--json", env=env)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"destinations": []}


def test_the_stack_is_the_one_samconfig_names_for_the_environment(stack, aws, tmp_path):
    name = cloudformation_stack(aws, {"ApiUrl": stack.api_url})
    (tmp_path / "samconfig.toml").write_text(
        'version = 0.1\n[default.global.parameters]\nstack_name = "wrong"\n'
        f'[staging.global.parameters]\nstack_name = "{name}"\nregion = "us-east-1"\n'
    )
    env = cli_environment(tmp_path, AWS_ENDPOINT_URL=aws.endpoint_url)

    done = run_cli("--config-env", "staging", "status", env=env, cwd=tmp_path)
    missing = run_cli("--config-env", "prod", "status", env=env, cwd=tmp_path)

    assert (done.returncode, done.stderr) == (0, "")
    assert one_line_error(missing).endswith("has no [prod] environment (it has: default, staging)")


def test_a_stack_that_does_not_exist_is_named_with_its_region(aws, offline_cli):
    line = one_line_error(
        offline_cli("--stack", "no-such-stack", "status", AWS_ENDPOINT_URL=aws.endpoint_url)
    )

    assert line == (
        "stripe-monitor: stack no-such-stack (--stack) not found in us-east-1: deploy it with 'make deploy',"
        " or pass --stack, --region or --api-url"
    )


def test_a_stack_without_the_api_url_output_is_not_the_monitors(aws, offline_cli):
    name = cloudformation_stack(aws, {"Other": "x"})

    line = one_line_error(offline_cli("--stack", name, "status", AWS_ENDPOINT_URL=aws.endpoint_url))

    assert line.startswith(f"stripe-monitor: stack {name} has no ApiUrl output (status CREATE_COMPLETE)")


def test_the_signing_region_is_the_one_in_an_execute_api_url(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    url = "https://a1b2c3d4e5.execute-api.eu-west-2.amazonaws.com/v1"

    found = find_target(
        api_url=url, stack=None, config_env="default", samconfig=None, region=None, profile=None
    )

    assert (found.url, found.region) == (url, "eu-west-2")
