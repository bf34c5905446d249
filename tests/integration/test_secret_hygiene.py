"""The Stripe key never shows up in logs, metrics output, responses, exception text or stored records."""

import json
import logging

import pytest

from tests.conftest import FAKE_STRIPE_KEY, ROTATED_STRIPE_KEY
from tests.support import load_event, ping_event, schedule_event
from tools.standins.stripe import Fault

HEALTHY = "ed_test_61DemoHealthyWebhook0001"
SECRETS = (FAKE_STRIPE_KEY, ROTATED_STRIPE_KEY)


def test_no_key_in_any_output_across_success_failure_and_rotation(deployment, capfd, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 and botocore debug logs included
    stripe = deployment.stripe
    stripe.add_destination(HEALTHY)
    answers = [deployment.invoke(ping_event(HEALTHY))]
    stripe.script(HEALTHY, [Fault("status", 500)], forever=True)
    answers.append(deployment.invoke(ping_event(HEALTHY)))
    stripe.script(HEALTHY, [])
    stripe.api_key = ROTATED_STRIPE_KEY  # 401 until the secret is rotated
    answers.append(deployment.invoke(load_event("invoke.json")))
    deployment.aws.put_secret(deployment.secret_id, ROTATED_STRIPE_KEY)
    answers.append(deployment.invoke(load_event("invoke.json")))
    answers.append(deployment.invoke(schedule_event()))

    captured = capfd.readouterr()
    everything = "\n".join(
        [captured.out, captured.err, caplog.text, json.dumps(answers), json.dumps(deployment.items())]
    )
    assert "check recorded" in everything  # the logs were really captured
    for secret in SECRETS:
        assert secret not in everything, "a Stripe key leaked into output"
    assert "Bearer" not in everything


@pytest.mark.parametrize("value", [FAKE_STRIPE_KEY + " trailing", '{"api_key": 42}'])
def test_config_errors_do_not_echo_the_secret_value(deployment, value, capfd):
    deployment.stripe.add_destination(HEALTHY)
    deployment.aws.put_secret(deployment.secret_id, value)

    answer = deployment.invoke(ping_event(HEALTHY))

    captured = capfd.readouterr()
    assert answer["statusCode"] == 500
    assert FAKE_STRIPE_KEY not in answer["body"] + captured.out + captured.err


def test_a_key_echoed_in_stripes_error_message_is_redacted_everywhere(deployment):
    deployment.stripe.add_destination(HEALTHY)
    echo = Fault("status", 400, error_code="invalid_request", message=f"Bad key {FAKE_STRIPE_KEY} sent")
    deployment.stripe.script(HEALTHY, [echo], forever=True)

    record = json.loads(deployment.invoke(ping_event(HEALTHY))["body"])

    assert record["error_code"] == "invalid_request"
    assert record["error_message"] == "Bad key [redacted] sent"
    [stored] = deployment.items()
    assert stored["error_message"]["S"] == "Bad key [redacted] sent"
    # Logs and metrics: the conftest hook fails any test whose captured output holds a fake key.
