"""``stripe-monitor``'s subcommands against the local stack over real sockets: what each shows, with
``--json`` for machines, and the exit codes a deploy pipeline can gate on."""

import io
import json
import re
from argparse import Namespace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.cli.conftest import BRIDGE, DEMO, FAILING, HEALTHY, LOST
from tests.conftest import wait_until
from tools.cli.commands import history
from tools.cli.main import main

ESCAPE = "\033["


def now_ms() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def destinations(cli) -> dict[str, dict[str, Any]]:
    done = cli("status", "--json")
    return {d["destination_id"]: d for d in json.loads(done.stdout)["destinations"]}


def test_status_shows_every_destination_as_a_table_and_exits_0_when_none_is_down(stack, cli):
    stack.scheduled_run(now_ms())

    done = cli("status")

    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.split("\n\n")[0].splitlines()
    assert header.split() == ["DESTINATION", "HEALTH", "SINCE", "LAST", "CHECK", "DELIVERY", "MUTED", "UNTIL"]
    health = {row.split()[0]: row.split()[1] for row in rows}
    assert health == {HEALTHY: "healthy", BRIDGE: "healthy", LOST: "healthy", FAILING: "degraded"}
    failing = next(row for row in rows if row.startswith(FAILING))
    assert re.search(r"stripe_error, \d+s ago", failing)
    assert f"{FAILING}  degraded  stripe_error: " in done.stdout  # the why, below the table
    assert ESCAPE not in done.stdout  # no colours into a pipe


def test_status_exits_1_when_a_destination_is_down_and_names_it(stack, cli):
    for _ in range(2):  # two failures among the last three checks: down
        assert cli("ping", FAILING).returncode == 1

    done = cli("status")
    as_json = cli("status", "--json")

    assert done.returncode == 1
    assert f"1 of 1 destinations down: {FAILING}" in done.stdout
    assert as_json.returncode == 1
    assert [d["health"] for d in json.loads(as_json.stdout)["destinations"]] == ["down"]


def test_status_json_is_the_apis_list_with_each_last_check_as_it_is_now(stack, cli):
    stack.scheduled_run(now_ms())
    # The receipts of the run's pings arrive after the run: the last checks are settled later.
    assert wait_until(lambda: destinations(cli)[HEALTHY]["last_check"]["delivery_status"] == "delivered")

    found = destinations(cli)

    assert sorted(found) == sorted(DEMO)
    assert found[HEALTHY]["last_check"]["delivery_channel"] == "application"
    assert wait_until(lambda: destinations(cli)[BRIDGE]["last_check"]["delivery_channel"] == "eventbridge")
    assert found[LOST]["last_check"]["delivery_status"] == "pending"
    assert found[FAILING]["last_check"]["outcome"] == "stripe_error"


def test_status_before_any_check_says_so(cli):
    done = cli("status")

    assert (done.returncode, done.stdout.strip()) == (
        0,
        "No destination has been checked yet (the first scheduled run or ping records it).",
    )


@pytest.mark.parametrize(
    ("destination", "channel"),
    [(HEALTHY, "application"), (BRIDGE, "eventbridge")],
    ids=["forwarded", "eventbridge"],
)
def test_ping_and_wait_passes_when_the_receipt_arrives(cli, destination, channel):
    done = cli("ping", destination, "--wait", "5")

    assert done.returncode == 0, done.stdout + done.stderr
    first, delivery, verdict = done.stdout.splitlines()
    assert first.startswith(f"{destination}  ok  HTTP 200  1 attempt  ")
    assert re.fullmatch(
        rf"delivery: delivered via {channel}, \d+ ms after Stripe created the event", delivery
    )
    assert verdict == "verdict: pass (accepted and delivered)"


def test_ping_and_wait_fails_when_no_receipt_comes_in_time(cli):
    done = cli("ping", LOST, "--wait", "1")

    assert done.returncode == 1
    assert "delivery: no receipt within 1 s (pending)" in done.stdout
    assert done.stdout.endswith("verdict: fail (accepted, but not delivered within 1 s)\n")


def test_ping_without_wait_passes_once_stripe_accepts_it(cli):
    done = cli("ping", LOST)

    assert done.returncode == 0
    assert "delivery: pending (--wait N waits for the receipt)" in done.stdout


@pytest.mark.parametrize(
    ("destination", "outcome"),
    [
        (FAILING, "stripe_error  HTTP 500  4 attempts"),
        ("ed_test_61NotInThisAccount0009", "not_found  HTTP 404"),
    ],
    ids=["stripe-refuses", "unknown-to-stripe"],
)
def test_ping_fails_when_stripe_does_not_accept_it(cli, destination, outcome):
    done = cli("ping", destination)

    assert done.returncode == 1
    assert done.stdout.startswith(f"{destination}  {outcome}")
    assert done.stdout.splitlines()[-1].startswith("verdict: fail (Stripe did not accept the ping: ")


def test_ping_json_is_the_check_record_with_the_verdict(cli):
    done = cli("ping", HEALTHY, "--wait", "5", "--json")

    record = json.loads(done.stdout)
    assert done.returncode == 0
    assert (record["outcome"], record["trigger"], record["verdict"]["delivered"]) == ("ok", "api", True)


def test_history_lists_the_checks_newest_first_up_to_the_limit(stack, cli):
    stack.scheduled_run(now_ms())
    assert cli("ping", HEALTHY, "--wait", "5").returncode == 0

    table = cli("history", HEALTHY).stdout.splitlines()
    limited = json.loads(cli("history", HEALTHY, "--limit", "1", "--json").stdout)

    assert table[0].split() == [
        "PINGED",
        "AT",
        "TRIGGER",
        "OUTCOME",
        "HTTP",
        "LATENCY",
        "DELIVERY",
        "EVENT",
        "OR",
        "ERROR",
    ]
    assert [row.split()[2] for row in table[1:]] == ["api", "schedule"]
    assert "delivered" in table[1] and "(application)" in table[1]
    assert [p["trigger"] for p in limited["pings"]] == ["api"]


def test_transitions_lists_the_health_changes_newest_first(cli):
    for _ in range(2):
        cli("ping", FAILING)

    done = cli("transitions", FAILING)
    as_json = json.loads(cli("transitions", FAILING, "--json").stdout)

    assert done.returncode == 0
    rows = [row.split()[2:4] for row in done.stdout.splitlines()[1:]]
    assert rows == [["degraded", "down"], ["-", "degraded"]]
    assert [t["to_health"] for t in as_json["transitions"]] == ["down", "degraded"]


def test_a_known_destination_without_checks_or_changes_says_so(cli):
    # Muted before its first check: the monitor knows it (DESTINATION_IDS) but has recorded nothing of it.
    assert cli("mute", HEALTHY, "--for", "1h").returncode == 0

    history = cli("history", HEALTHY)
    changes = cli("transitions", HEALTHY)

    assert (history.returncode, history.stdout) == (0, f"No checks of {HEALTHY} are recorded.\n")
    assert (changes.returncode, changes.stdout) == (0, f"{HEALTHY} has not changed health yet.\n")


def test_mute_for_a_while_then_unmute(stack, cli):
    stack.scheduled_run(now_ms())

    muted = cli("mute", FAILING, "--for", "2h")
    shown = destinations(cli)[FAILING]
    unmuted = cli("unmute", FAILING)

    assert muted.returncode == 0
    assert re.fullmatch(
        rf"{FAILING} muted until \S+ \S+Z \(in 1h5\dm\): no alerts until then; checks go on\.\n", muted.stdout
    )
    until = datetime.fromisoformat(shown["muted_until"])
    assert timedelta(minutes=119) < until - datetime.now(UTC) <= timedelta(hours=2)
    assert shown["muted"] is True
    assert unmuted.returncode == 0
    assert unmuted.stdout == f"{FAILING} unmuted: its health changes are alerted again.\n"
    assert destinations(cli)[FAILING]["muted"] is False


def test_mute_until_a_time_without_a_zone_is_utc(stack, cli):
    stack.scheduled_run(now_ms())
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0, tzinfo=None)

    done = cli("mute", HEALTHY, "--until", until.isoformat(), "--json")

    assert done.returncode == 0
    assert json.loads(done.stdout)["muted_until"].startswith(until.isoformat())


@pytest.mark.parametrize(
    "args",
    [
        ["mute", HEALTHY],  # neither --until nor --for
        ["mute", HEALTHY, "--for", "soon"],
        ["mute", HEALTHY, "--until", "tomorrow"],
        ["ping", HEALTHY, "--wait", "26"],  # the API waits 25 s at most
        ["history", HEALTHY, "--limit", "0"],
        ["frobnicate"],
    ],
)
def test_a_usage_error_exits_2_before_asking_anything(offline_cli, args):
    done = offline_cli("--api-url", "http://127.0.0.1:9", *args)

    assert done.returncode == 2
    assert "usage: stripe-monitor" in done.stderr and "Traceback" not in done.stderr


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colours_only_on_a_terminal_and_never_with_no_color(stack, monkeypatch):
    stack.scheduled_run(now_ms())
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    screen, plain = Terminal(), Terminal()

    main(["--api-url", stack.api_url, "status"], out=screen)
    monkeypatch.setenv("NO_COLOR", "1")
    main(["--api-url", stack.api_url, "status"], out=plain)

    assert "\033[33mdegraded" in screen.getvalue()  # yellow
    assert "\033[32mhealthy" in screen.getvalue()  # green
    assert ESCAPE not in plain.getvalue()


class PagedApi:
    """An API whose history has ``total`` checks, in pages of at most ``limit`` with a cursor."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.asked: list[dict[str, str]] = []

    def call(self, method: str, path: str, query: dict[str, str] | None = None, **_: Any) -> dict[str, Any]:
        assert query is not None
        self.asked.append(query)
        start = int(query.get("cursor", "0"))
        end = min(start + int(query["limit"]), self.total)
        pings = [{"pinged_at": f"check-{i}"} for i in range(start, end)]
        return {"pings": pings, "next_cursor": str(end) if end < self.total else None}


def test_history_pages_through_the_api_beyond_its_largest_page():
    api = PagedApi(total=230)
    out = io.StringIO()

    code = history(api, Namespace(destination_id=HEALTHY, limit=150, json=True), out)  # type: ignore[arg-type]

    assert code == 0
    assert len(json.loads(out.getvalue())["pings"]) == 150
    assert api.asked == [{"limit": "100"}, {"limit": "50", "cursor": "100"}]
