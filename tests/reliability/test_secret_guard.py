"""The suite-wide secret-hygiene guard (``tests/conftest.py``) catches what it is there to catch."""

from collections.abc import Generator
from typing import Any

import pytest

from tests import conftest
from tests.conftest import FAKE_SIGNING_SECRET, FAKE_STRIPE_KEY, ROTATED_STRIPE_KEY, assert_no_test_secrets


def judged(report: pytest.TestReport) -> pytest.TestReport:
    """Run the guard's hook wrapper around a finished report, as pytest does."""
    wrapper: Generator[None, pytest.TestReport, pytest.TestReport] = conftest.pytest_runtest_makereport(
        item=None,  # type: ignore[arg-type]
        call=None,  # type: ignore[arg-type]
    )
    next(wrapper)
    with pytest.raises(StopIteration) as finished:
        wrapper.send(report)
    result: pytest.TestReport = finished.value.value
    return result


def report(sections: list[tuple[str, str]], longrepr: Any = None) -> pytest.TestReport:
    return pytest.TestReport(
        nodeid="tests/x.py::test_x",
        location=("tests/x.py", 1, "test_x"),
        keywords={},
        outcome="passed" if longrepr is None else "failed",
        longrepr=longrepr,
        when="call",
        sections=sections,
    )


@pytest.mark.parametrize(
    ("title", "leak"),
    [
        ("Captured stdout call", f'{{"level":"INFO","message":"x","key":"{FAKE_STRIPE_KEY}"}}'),  # a JSON log
        ("Captured stdout call", f'{{"_aws":{{}},"Bearer {ROTATED_STRIPE_KEY}":1}}'),  # an EMF line
        ("Captured log call", f"WARNING x: secret {FAKE_SIGNING_SECRET}"),  # a log record
        ("Captured stderr call", "whsec_FAKEsomeOtherTestsSecret0001"),  # any FAKE-named secret
    ],
    ids=["JSON log line", "EMF line", "log record", "another fake secret"],
)
def test_a_secret_in_captured_output_fails_the_test_and_is_redacted_in_the_report(title, leak):
    result = judged(report([(title, f"before {leak} after")]))

    assert result.outcome == "failed"
    assert "secret hygiene" in str(result.longrepr)
    everything = str(result.longrepr) + "".join(content for _, content in result.sections)
    for secret in (FAKE_STRIPE_KEY, ROTATED_STRIPE_KEY, FAKE_SIGNING_SECRET, "whsec_FAKEsomeOther"):
        assert secret not in everything


def test_a_secret_in_the_failure_text_is_named_not_shown():
    result = judged(report([], longrepr=f"AssertionError: assert '{FAKE_STRIPE_KEY}' == 'x'"))

    assert result.outcome == "failed"
    assert "FAKE_STRIPE_KEY" in str(result.longrepr)
    assert FAKE_STRIPE_KEY not in str(result.longrepr)


def test_clean_output_passes_untouched():
    result = judged(report([("Captured stdout call", '{"message":"check recorded","check":{}}')]))

    assert result.outcome == "passed"


def test_answers_exceptions_and_records_are_checked_the_same_way():
    with pytest.raises(AssertionError, match="FAKE_SIGNING_SECRET appeared in a handler answer"):
        assert_no_test_secrets(f'{{"statusCode": 400, "body": "{FAKE_SIGNING_SECRET}"}}', "a handler answer")
