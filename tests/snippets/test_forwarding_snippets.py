"""The forwarding snippets of docs/snippets/, each run in its real runtime (Python, Node.js, Ruby, PHP, Go).

The stack runs on the stand-ins; Stripe's stand-in delivers the ping to the user's application (a small
HTTP server), and the snippet gets that delivery as a web framework hands it over (raw body, header), as
docs/receipts.md tells the user to call it. A runtime that is missing skips its tests with the reason.
"""

import subprocess

import pytest

from tests.forwarding import APPLICATION, CaptureServer, ForwardingStack
from tests.snippets.runtimes import LANGUAGES, SNIPPETS_BY_LANGUAGE, Harness
from tools.standins.aws import free_port

pytestmark = pytest.mark.parametrize("language", LANGUAGES)

SIGNATURE = "t=1796300000,v1=" + "ab" * 32  # any well-formed header: only the stack verifies it
# A ping as Stripe might format it: spaces, escapes and UTF-8 that a parse-and-serialize would change.
ODD_PING = (
    b'{ "id": "evt_test_OddlyFormatted0001",  "object": "v2.core.event",\n'
    b'  "type": "v2.core.event_destination.ping", "note": "caf\\u00e9 \xc3\xa9 \\/" }\n'
)


def test_a_ping_forwarded_by_the_snippet_turns_its_check_delivered_by_the_application(
    harness: Harness, stack: ForwardingStack
):
    record, delivery = stack.ping_and_capture()
    assert record["delivery_status"] == "pending"

    forwarded = harness.forward(delivery.body, delivery.signature, stack.webhook_url)

    assert forwarded.result == "forwarded", forwarded.log
    check = stack.check(APPLICATION, record["pinged_at"])
    assert (check["delivery_status"], check["delivery_channel"]) == ("delivered", "application")
    assert check["deliveries"] == 1


def test_the_snippet_forwards_the_raw_body_byte_for_byte_with_the_stripe_signature(
    harness: Harness,
):
    with CaptureServer() as monitor:
        forwarded = harness.forward(ODD_PING, SIGNATURE, monitor.url)

    assert forwarded.result == "forwarded", forwarded.log
    [received] = monitor.received
    assert received.body == ODD_PING
    assert received.signature == SIGNATURE


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"id": "evt_1", "object": "event", "type": "customer.created"}', id="v1 event"),
        pytest.param(
            b'{"id": "evt_1", "object": "v2.core.event", "type": "v1.billing.meter.no_meter_found"}',
            id="another v2 event",
        ),
        pytest.param(b"not json at all", id="not JSON"),
        pytest.param(b'["v2.core.event_destination.ping"]', id="a JSON array"),
    ],
)
def test_the_snippet_forwards_nothing_but_ping_events(harness: Harness, body):
    with CaptureServer() as monitor:
        forwarded = harness.forward(body, SIGNATURE, monitor.url)

    assert forwarded.result == "not forwarded", forwarded.log
    assert monitor.received == []


def test_a_monitor_that_refuses_is_down_or_not_configured_never_breaks_the_handler(
    harness: Harness,
):
    with CaptureServer(status=400) as refusing:
        refused = harness.forward(ODD_PING, SIGNATURE, refusing.url)
    down = harness.forward(ODD_PING, SIGNATURE, f"http://127.0.0.1:{free_port()}/webhooks/stripe")
    not_configured = harness.forward(ODD_PING, SIGNATURE, None)

    # Each run exited 0 (Harnesses.forward checks it): the handler went on.
    assert [refused.result, down.result, not_configured.result] == ["not forwarded"] * 3
    assert len(refusing.received) == 1
    assert "ping receipt not forwarded" in refused.log
    assert "ping receipt not forwarded" in down.log


CHECKERS = {
    "python": lambda exe, path: [exe, "-W", "error", "-m", "py_compile", path],
    "node": lambda exe, path: [exe, "--check", path],
    "ruby": lambda exe, path: [exe, "-wc", path],
    "php": lambda exe, path: [exe, "-l", path],
    "go": lambda exe, path: [exe, "vet", path],
}


def test_the_snippet_passes_its_languages_own_checker(language):
    snippet = SNIPPETS_BY_LANGUAGE[language]
    executable = snippet.find()

    checked = subprocess.run(
        CHECKERS[language](executable, str(snippet.path)), capture_output=True, text=True, timeout=120
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    warnings = [line for line in checked.stderr.splitlines() if "warning" in line.lower()]
    assert warnings == []
    if language == "go":
        gofmt = subprocess.run(["gofmt", "-l", str(snippet.path)], capture_output=True, text=True, timeout=60)
        assert (gofmt.returncode, gofmt.stdout) == (0, "")
