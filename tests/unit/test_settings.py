import re

import pytest

from stripe_monitor.config import DEFAULT_API_VERSION
from stripe_monitor.config import PingSettings as Settings
from stripe_monitor.errors import ConfigError

BASE = {"TABLE_NAME": "checks", "STRIPE_SECRET_ID": "stripe/key"}


def test_defaults_are_production_values():
    settings = Settings.from_env(BASE)

    assert settings.stripe_api_base == "https://api.stripe.com"
    assert settings.stripe_api_version == DEFAULT_API_VERSION
    assert settings.result_retention_days == 90
    assert settings.destination_ids == ()


def test_destination_ids_are_split_trimmed_deduplicated_and_validated():
    settings = Settings.from_env(BASE | {"DESTINATION_IDS": " ed_test_1 ,ed_test_2,, ed_test_1"})

    assert settings.destination_ids == ("ed_test_1", "ed_test_2")


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"TABLE_NAME": ""}, "TABLE_NAME"),
        ({"DESTINATION_IDS": "ed_test_1,not-an-id"}, "DESTINATION_IDS"),
        ({"RESULT_RETENTION_DAYS": "0"}, "RESULT_RETENTION_DAYS"),
        ({"STRIPE_API_BASE": "http://evil.example.com"}, "STRIPE_API_BASE"),
    ],
)
def test_bad_configuration_names_the_variable(override, named):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(BASE | override)


def test_the_default_stripe_version_is_the_one_the_pinned_official_sdk_sends():
    import stripe

    from tools.standins.template import load_template

    parameter = load_template()["Parameters"]["StripeApiVersion"]
    assert stripe.api_version == DEFAULT_API_VERSION
    assert parameter["Default"] == DEFAULT_API_VERSION
    assert re.fullmatch(parameter["AllowedPattern"], DEFAULT_API_VERSION)
    assert not re.fullmatch(parameter["AllowedPattern"], "2026-10-28")


def test_scheduled_runs_take_at_most_a_fifth_of_a_sandboxs_stripe_rate_limit_by_default():
    from tools.standins.template import load_template

    assert Settings.from_env(BASE).stripe_requests_per_second == 5
    assert load_template()["Parameters"]["StripeRequestsPerSecond"]["Default"] == 5
